"""The worker in the background (start/stop, parallel), its history and listeners, and its public
methods called from many threads at once, on the real engine."""

import threading
import time
from dataclasses import replace

import pytest
from helpers import eventually, mine

from cube import Docker, State, Task, Worker
from cube.loop import Gate
from cube.state import Transition
from cube.store import StoreClosed


def threads_of(worker: Worker) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"cube-{worker.name}-")]


def states(worker: Worker) -> dict:
    return {t.id: t.state for t in worker.db.values()}


@pytest.fixture
def looping(client, demo_image):
    """A started worker with parallel=4; stopped and its containers removed afterwards."""
    w = Worker(f"test-loop-{time.monotonic_ns() % 10**8}", client, parallel=4)
    w.start()
    yield w
    w.close()
    for c in mine(client, worker=w.name):
        c.remove(force=True)


def test_a_started_worker_runs_requests_as_they_come_and_stops_cleanly_within_2_s(client, demo_image):
    w = Worker("test-loop-basic", client)
    w.start()
    assert w.running and len(threads_of(w)) == 2  # one for requests (parallel=1), one observer
    t = Task(image=demo_image, state=State.SCHEDULED)
    w.add_task(t)
    assert eventually(lambda: states(w).get(t.id) is State.RUNNING)
    w.add_task(replace(t, state=State.COMPLETED))
    assert eventually(lambda: states(w).get(t.id) is State.COMPLETED)

    began = time.monotonic()
    w.stop()
    assert time.monotonic() - began < 2
    assert not w.running and threads_of(w) == []
    assert w.store.busy() == {}, "no task is left half done"
    assert mine(client, worker=w.name) == []
    w.close()


@pytest.mark.slow
def test_stop_lets_an_operation_under_way_finish_and_keeps_the_queue(client, demo_image):
    w = Worker("test-loop-busy", client)
    tasks = [Task(image=demo_image, state=State.SCHEDULED) for _ in range(3)]
    w.start()
    for t in tasks:
        w.add_task(t)
    assert eventually(lambda: w.store.busy(), every=0.001), "a start is under way"
    w.stop(timeout=10)  # the start under way finishes first; on a busy machine it can take seconds
    assert threads_of(w) == [] and w.store.busy() == {}
    done = [t for t in w.db.values() if t.state is State.RUNNING]
    assert done and len(done) + len(w.queue) == 3, "each task is either started or still queued"
    for t in done:
        (container,) = mine(client, task=str(t.id))
        assert container.id == t.container_id
    w.start()  # picks up where it left off
    assert eventually(lambda: sum(s is State.RUNNING for s in states(w).values()) == 3)
    w.close()
    for c in mine(client, worker=w.name):
        c.remove(force=True)


@pytest.mark.slow  # a create made 2.5 s slow, by design
def test_close_waits_too_for_a_start_an_earlier_stop_left_busy_after_a_restart_with_a_faked_slow_create(
    client, demo_image, monkeypatch
):
    real = Docker._create
    monkeypatch.setattr(Docker, "_create", lambda d: time.sleep(2.5) or real(d))
    w = Worker(f"test-close-{time.monotonic_ns() % 10**8}", client)
    try:
        w.start()
        w.add_task(Task(image=demo_image, state=State.SCHEDULED))
        assert eventually(lambda: w.store.busy(), every=0.001), "a start is under way"
        w.stop()  # gives up after 2 s: the start goes on
        w.start()
        w.close()
        assert threads_of(w) == [], "close() returned with the first start still under way"
    finally:
        for c in mine(client, worker=w.name):
            c.remove(force=True)


@pytest.mark.slow  # a create made 2.5 s slow, by design
def test_close_waits_for_a_start_under_way_so_no_next_worker_starts_it_again_with_a_faked_slow_create(
    client, demo_image, tmp_path, monkeypatch
):
    real, path = Docker._create, str(tmp_path / "w.db")

    def slow(d):  # as a pull from a slow registry would be: longer than stop()'s 2 s
        time.sleep(2.5)
        return real(d)

    monkeypatch.setattr(Docker, "_create", slow)
    w = Worker(f"test-close-{time.monotonic_ns() % 10**8}", client, db_path=path)
    t = Task(image=demo_image, state=State.SCHEDULED)
    try:
        w.start()
        w.add_task(t)
        assert eventually(lambda: w.store.busy(), every=0.001), "a start is under way"
        w.close()
        assert threads_of(w) == [], "close() returned with a request still under way"
        with Worker(w.name, client, db_path=path) as again:
            (container,) = mine(client, task=str(t.id))
            assert again.db[t.id].container_id == container.id and again.db[t.id].state is State.RUNNING
    finally:
        for c in mine(client, worker=w.name):
            c.remove(force=True)


def test_close_waits_for_a_start_on_a_callers_thread_so_it_ends_and_no_next_worker_starts_it_again(
    client, demo_image, tmp_path, monkeypatch
):  # with a faked slow create (1 s), as in the loop's test above; found by a random probe (helper-33)
    real, path, ended = Docker._create, str(tmp_path / "w.db"), []
    monkeypatch.setattr(Docker, "_create", lambda d: time.sleep(1) or real(d))
    w = Worker(f"test-close-{time.monotonic_ns() % 10**8}", client, db_path=path)
    t = Task(image=demo_image, state=State.SCHEDULED)
    caller = threading.Thread(target=lambda: ended.append(w.run_task()))  # the worker is not started
    try:
        w.add_task(t)
        caller.start()
        assert eventually(lambda: w.store.busy(), every=0.001), "a start is under way"
        w.close()
        assert not caller.is_alive(), "close() returned with a start under way on the caller's thread"
        assert ended and ended[0].error is None, f"the start did not end well: {ended}"
        with Worker(w.name, client, db_path=path) as again:
            (container,) = mine(client, task=str(t.id))
            assert again.db[t.id].container_id == container.id and again.db[t.id].state is State.RUNNING
        with pytest.raises(StoreClosed, match="is closed: make a new Worker"):
            w.run_task()  # after close(): refused at once, as every other call
    finally:
        caller.join(10)
        for c in mine(client, worker=w.name):
            c.remove(force=True)


@pytest.mark.slow
def test_a_started_worker_sees_a_container_exit_without_being_asked(looping, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "sleep 0.5; exit 4"])
    looping.add_task(t)
    assert eventually(lambda: states(looping).get(t.id) is State.RUNNING)
    assert eventually(lambda: states(looping)[t.id] is State.FAILED, seconds=4)
    assert looping.db[t.id].exit_code == 4


@pytest.mark.slow
def test_one_tasks_requests_stay_in_order_whatever_parallel_is(looping, client, demo_image):
    tasks = [Task(image=demo_image, state=State.SCHEDULED) for _ in range(6)]
    for t in tasks:  # start and stop each at once: the stop must wait for the start
        looping.add_task(t)
        looping.add_task(replace(t, state=State.COMPLETED))
    assert eventually(lambda: all(states(looping).get(t.id) is State.COMPLETED for t in tasks), seconds=30)
    for t in tasks:
        moves = [(m.src, m.dst) for m in looping.history(t.id)]
        assert moves == [
            (None, State.SCHEDULED),
            (State.SCHEDULED, State.RUNNING),
            (State.RUNNING, State.COMPLETED),
        ]
    assert mine(client, worker=looping.name) == []


@pytest.mark.slow
def test_fifty_tasks_added_from_five_threads_while_the_loop_runs(looping, client, demo_image):
    tasks = [Task(image=demo_image, state=State.SCHEDULED) for _ in range(50)]

    def add(share):
        for t in share:
            looping.add_task(t)

    adders = [threading.Thread(target=add, args=(tasks[i::5],)) for i in range(5)]
    for a in adders:
        a.start()
    for a in adders:
        a.join()
    assert looping.task_count == 50
    assert eventually(lambda: sum(s is State.RUNNING for s in states(looping).values()) == 50, seconds=90)

    containers = mine(client, worker=looping.name)
    assert len(containers) == 50
    assert {c.id for c in containers} == {t.container_id for t in looping.db.values()}
    assert {c.labels["cube.task"] for c in containers} == {str(t.id) for t in tasks}

    for t in tasks:
        looping.add_task(replace(t, state=State.COMPLETED))
    assert eventually(lambda: all(s is State.COMPLETED for s in states(looping).values()), seconds=60)
    assert mine(client, worker=looping.name) == []


@pytest.mark.slow
def test_the_observer_never_mistakes_the_workers_own_stops_for_removals(worker, client, demo_image):
    tasks = [Task(image=demo_image, state=State.SCHEDULED) for _ in range(6)]
    for t in tasks:
        worker.add_task(t)
        assert worker.run_task().error is None
    observing = threading.Event()

    def observe():
        while not observing.is_set():
            worker.update_tasks()

    observers = [threading.Thread(target=observe) for _ in range(3)]
    for o in observers:
        o.start()
    try:
        for t in tasks:
            worker.add_task(replace(t, state=State.COMPLETED))
            assert worker.run_task().error is None
    finally:
        observing.set()
        for o in observers:
            o.join()
    assert [worker.db[t.id].state for t in tasks] == [State.COMPLETED] * 6
    assert all(m.dst is not State.FAILED for m in worker.history())


def test_history_and_listeners_see_every_change_in_order(worker, demo_image):
    heard: list = []
    unsubscribe = worker.subscribe(heard.append)
    worker.subscribe(lambda change: 1 / 0)  # a broken listener does not stop the others

    t = Task(name="", image=demo_image, state=State.SCHEDULED)
    worker.add_task(t)
    worker.run_task()
    worker.add_task(replace(t, state=State.COMPLETED))
    worker.run_task()

    moves = worker.history(t.id)
    assert [(m.src, m.dst) for m in moves] == [
        (None, State.SCHEDULED),
        (State.SCHEDULED, State.RUNNING),
        (State.RUNNING, State.COMPLETED),
    ]
    assert [m.time for m in moves] == sorted(m.time for m in moves)
    assert eventually(lambda: len(heard) == 5), heard  # told on the notifier's thread, soon after
    assert [c for c in heard if isinstance(c, Transition)] == moves
    assert [type(c) for c in heard] == [Task, Transition, Transition, Task, Transition], "in order"
    assert [c.state for c in heard if isinstance(c, Task)] == [State.SCHEDULED, State.COMPLETED]
    assert worker.history() == moves

    unsubscribe()
    later: list = []
    worker.subscribe(later.append)  # told after the first listener would be, of the same change
    worker.add_task(t)
    assert eventually(lambda: later), "the request was told"
    assert len(heard) == 5, "nothing heard after unsubscribing"


def test_a_request_the_worker_drops_is_told_to_its_listeners_as_the_result_that_says_why(worker, demo_image):
    heard: list = []
    worker.subscribe(heard.append)
    t = Task(image=demo_image, state=State.RUNNING)  # a request that asks for nothing
    worker.add_task(t)
    dropped = worker.run_task()
    assert dropped.action == "none" and "nothing was done" in dropped.error
    assert worker.queue == ()
    assert eventually(lambda: len(heard) == 2), heard
    assert heard == [t, dropped], "the request, then why it was dropped"


def test_a_failed_task_started_again_gets_a_new_container_under_the_same_id(worker, client, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "exit 5"])
    worker.add_task(t)
    first = worker.run_task()
    assert worker.db[t.id].state is State.FAILED and worker.db[t.id].exit_code == 5

    worker.add_task(replace(t, cmd=[]))  # the same task, asked to run again (now it will serve)
    again = worker.run_task()
    assert again.error is None
    rec = worker.db[t.id]
    assert rec.state is State.RUNNING and rec.exit_code is None
    assert rec.container_id != first.container_id
    assert [(m.src, m.dst) for m in worker.history(t.id)][-2:] == [
        (State.FAILED, State.SCHEDULED),
        (State.SCHEDULED, State.RUNNING),
    ]
    assert [c.id for c in mine(client, task=str(t.id))] == [rec.container_id]


@pytest.mark.slow  # waits seconds by design
def test_a_listener_that_takes_a_second_does_not_slow_a_start_and_hears_every_change_in_order(
    worker, demo_image
):
    heard: list = []
    let_go = threading.Event()  # the listener holds on until the start has returned (or for 30 s)

    def slow(change) -> None:
        let_go.wait(30)
        time.sleep(1)
        heard.append((change, threading.current_thread().name))

    worker.subscribe(slow)
    t = Task(image=demo_image, state=State.SCHEDULED)
    began = time.monotonic()
    assert worker.start_task(t).error is None
    took = time.monotonic() - began
    assert heard == [], "the listener was told on the start's thread"
    assert took < 30, f"the start took {took:.0f} s: it waited for its listener"
    let_go.set()
    assert eventually(lambda: len(heard) == 2, seconds=10)
    assert [(c.src, c.dst) for c, _ in heard] == [(None, State.SCHEDULED), (State.SCHEDULED, State.RUNNING)]
    assert {thread for _, thread in heard} == {f"cube-{worker.name}-notifier_0"}, "one thread of its own"


def test_a_listener_that_closes_the_worker_releases_its_db_file_and_hears_the_rest(
    client, demo_image, tmp_path
):
    db, heard, queued, closed = str(tmp_path / "w.db"), [], threading.Event(), threading.Event()
    w = Worker("test-loop-closed-by-a-listener", client, db_path=db)

    def close_when_queued(change) -> None:
        heard.append(change)
        if len(heard) == 1 and queued.wait(10):
            w.close()  # on the notifier's own thread: it must not wait for itself
            closed.set()

    w.subscribe(close_when_queued)
    first, second = (Task(image=demo_image, state=State.SCHEDULED) for _ in range(2))
    w.add_task(first)
    w.add_task(second)
    queued.set()
    assert closed.wait(10), "close() in a listener did not return"
    assert eventually(lambda: len(heard) == 2), "the change told before the close was not heard"
    with Worker(w.name, client, db_path=db) as again:  # the file is free: no StoreInUse
        assert [r.id for r in again.queue] == [first.id, second.id]


@pytest.mark.parametrize("parallel", [0, 65, 1000, 2.0, True])
def test_a_parallel_out_of_1_to_64_is_refused_saying_the_bounds(parallel):
    with pytest.raises(ValueError, match=f"parallel: must be a whole number from 1 to 64, got {parallel!r}"):
        Worker("w", parallel=parallel)


def test_a_named_failing_task_asked_twice_on_four_threads_runs_twice_under_its_name(client, demo_image):
    name = f"test-twice-{time.monotonic_ns() % 10**8}"
    with Worker(name, client, parallel=4) as w:
        w.start()
        tasks = [Task(name=f"{name}-{i}", image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "exit 3"])
                 for i in range(3)]  # fmt: skip
        for t in tasks:
            w.add_task(t)
            w.add_task(t)  # asked again at once: the second start races the first one's removal
        # Each start fails at once, or is seen RUNNING for the instant `sh` runs, then FAILED by the observer.
        failed_twice = lambda t: sum(m.dst is State.FAILED for m in w.history(t.id)) == 2  # noqa: E731
        done = eventually(lambda: not w.queue and all(map(failed_twice, tasks)), 20)
        assert done, [list(map(str, w.history(t.id))) for t in tasks]
        for t in tasks:
            failures = [m.reason for m in w.history(t.id) if m.dst is State.FAILED]
            assert len(failures) == 2 and all("exited with code 3" in r for r in failures), failures
            assert w.db[t.id].exit_code == 3
        assert eventually(lambda: not mine(client, worker=name)), "and neither container is left"


class _Guarded:  # an object whose methods go through a Gate, as a Worker's do (pure logic: no engine)
    def __init__(self) -> None:
        self._gate, self.began, self.go_on = Gate(), threading.Event(), threading.Event()

    def outer(self) -> str:
        self.began.set()
        self.go_on.wait(5)
        return self.inner()  # nested on the same thread: let through, even once close() has begun

    def inner(self) -> str:
        return "done"

    def closes(self) -> str:
        self._gate.close(lambda: RuntimeError("closed"))
        return "closed from inside"


Guarded = Gate.guards("outer", "inner", "closes")(_Guarded)


def test_the_gate_lets_close_wait_for_an_operation_and_its_nested_one_then_refuses_new_ones():
    g, ended, closed = Guarded(), [], threading.Event()
    caller = threading.Thread(target=lambda: ended.append(g.outer()))
    caller.start()
    assert g.began.wait(5)
    closer = threading.Thread(target=lambda: (g._gate.close(lambda: RuntimeError("closed")), closed.set()))
    closer.start()
    assert not closed.wait(0.3), "close() returned with an operation under way"
    g.go_on.set()
    assert closed.wait(5) and ended == ["done"], "the operation and its nested one did not end first"
    with pytest.raises(RuntimeError, match="closed"):
        g.inner()


def test_close_from_inside_an_operation_does_not_wait_for_itself():
    g, ended = Guarded(), []
    caller = threading.Thread(target=lambda: ended.append(g.closes()))
    caller.start()
    caller.join(5)
    assert ended == ["closed from inside"], "close() inside an operation waited for itself"
