"""cube.book: the chapter's worker line for line, on the real engine, flaws included."""

from dataclasses import replace
from pathlib import Path

from helpers import mine

import cube.book
from cube import DEMO_IMAGE, State, Task
from cube.book import STATE_TRANSITION_MAP, Skeleton, Worker, contains, valid_state_transition
from cube.docker import GONE, Docker
from cube.web import page

P, S, R, C, F = State.PENDING, State.SCHEDULED, State.RUNNING, State.COMPLETED, State.FAILED
LISTING_4_10 = {(P, S), (S, S), (S, R), (S, F), (R, R), (R, C), (R, F)}


def test_the_map_is_listing_4_10_exactly_without_the_moves_cube_adds():
    allowed = {(a, b) for a in State for b in State if valid_state_transition(a, b)}
    assert allowed == LISTING_4_10
    assert set(STATE_TRANSITION_MAP) == set(State)
    assert contains([R, F], F) and not contains([], P) and not contains((R,), C)


def test_the_skeleton_has_listing_4_3s_fields_and_4_4s_stubs(capsys):
    w = Skeleton("stubby")
    assert (w.name, len(w.queue), w.db, w.task_count) == ("stubby", 0, {}, 0)
    w.run_task(), w.start_task(Task(image=DEMO_IMAGE)), w.stop_task(Task(image=DEMO_IMAGE))
    assert capsys.readouterr().out.splitlines() == [
        "I will start or stop a task",
        "I will start a task",
        "I will stop a task",
    ]


def test_listing_4_13_starts_serves_and_stops_with_the_container_id_copied_by_the_caller(client, demo_image):
    w = Worker("test-book-closing")
    t = Task(name="test-book-closing-1", image=demo_image, state=State.SCHEDULED)
    try:
        w.add_task(t)
        result = w.run_task()
        assert result.error is None
        assert t.container_id == ""  # the worker worked on a copy: the caller's t is as it was
        assert page(result.host_ports["80/tcp"]) == f"Hello from {result.container_id[:12]}"
        rec = w.db[t.id]
        assert (rec.state, rec.container_id) == (State.RUNNING, result.container_id)
        assert rec.start_time is not None

        t.container_id = result.container_id  # listing 4.13
        t.state = State.COMPLETED
        w.add_task(t)
        assert w.run_task().error is None
        assert Docker().inspect(result.container_id).status == GONE
        assert w.db[t.id].state is State.COMPLETED and w.db[t.id].finish_time is not None
    finally:
        for c in mine(client, worker=w.name):
            c.remove(force=True)


def test_flaw_a_failed_stop_is_still_recorded_completed_while_the_container_runs(client, demo_image):
    w = Worker("test-book-failed-stop")
    t = Task(image=demo_image, state=State.SCHEDULED)
    try:
        w.add_task(t)
        started = w.run_task()
        w.add_task(replace(t, state=State.COMPLETED))  # the caller forgot the container id
        result = w.run_task()
        assert result.error == "no container id given: there is nothing to stop"
        assert w.db[t.id].state is State.COMPLETED
        assert Docker().inspect(started.container_id).status == "running"
    finally:
        for c in mine(client, worker=w.name):
            c.remove(force=True)


def test_flaw_a_refused_first_time_task_is_still_stored_and_nothing_is_counted():
    w = Worker("test-book-refused")
    draft = Task(image=DEMO_IMAGE)  # PENDING: PENDING -> PENDING is not in the map
    w.add_task(draft)
    assert w.run_task().error == "Invalid transition from PENDING to PENDING"
    assert w.db[draft.id].state is State.PENDING
    assert w.task_count == 0


def test_the_queue_holds_shallow_copies_as_go_does_so_a_port_added_later_shows_up():
    w = Worker("test-book-copies")
    t = Task(image=DEMO_IMAGE, state=State.SCHEDULED, exposed_ports={"80/tcp"})
    w.add_task(t)
    t.state = State.COMPLETED
    t.exposed_ports.add("8080/tcp")
    queued = w.queue[0]
    assert queued is not t and queued.state is State.SCHEDULED
    assert queued.exposed_ports == {"80/tcp", "8080/tcp"}


def test_an_empty_queue_returns_an_empty_result():
    assert Worker("test-book-empty").run_task().error is None


def test_it_is_readable_in_a_minute():
    assert len(Path(cube.book.__file__).read_text().splitlines()) <= 200
