"""What a new user saw the worker do wrong (issue 6, "What was seen"), each as a test on the real
engine. The child-process kill tests are in test_recovery.py, the two-engine test in
test_two_engines.py."""

import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace

import docker
import pytest
from faults import FaultyEngine, engine_dies_at
from helpers import eventually, mine, page

from cube import Config, Docker, State, Task, Worker
from cube.observe import WAITING
from cube.task import LABEL_TASK


def start(worker: Worker, task: Task) -> Task:
    worker.add_task(replace(task, state=State.SCHEDULED))
    result = worker.run_task()
    assert result.error is None, result.error
    return worker.db[task.id]


@pytest.mark.slow
def test_a_task_queued_twice_and_run_by_two_threads_at_once_gets_one_container(worker, client, demo_image):
    for _ in range(10):
        t = Task(image=demo_image, state=State.SCHEDULED)
        worker.add_task(t)
        worker.add_task(t)
        together = threading.Barrier(2)
        results = []

        def run(together=together, results=results):
            together.wait()
            results.append(worker.run_task())

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        (container,) = mine(client, task=str(t.id))
        assert worker.db[t.id].container_id == container.id
        assert sorted(r.action for r in results) == ["none", "start"]  # the second waited its turn
        assert "invalid transition from RUNNING to SCHEDULED" in worker.run_task().error
        assert len(mine(client, task=str(t.id))) == 1


def test_a_command_that_does_not_exist_is_a_failed_start_with_exit_code_127(worker, client, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["no-such-command"])
    worker.add_task(t)
    result = worker.run_task()

    assert "exited with code 127" in result.error
    assert "no-such-command" in result.error  # the init process's own message, quoted
    rec = worker.db[t.id]
    assert (rec.state, rec.exit_code) == (State.FAILED, 127)
    assert rec.finish_time is not None
    assert mine(client, task=str(t.id)) == []


@pytest.mark.slow  # waits seconds by design
def test_a_container_that_exits_by_itself_is_seen_completed_or_failed(worker, client, demo_image):
    ok = start(worker, Task(image=demo_image, cmd=["sh", "-c", "sleep 0.5"]))
    bad = start(worker, Task(image=demo_image, cmd=["sh", "-c", "sleep 0.5; exit 3"]))
    assert ok.state is bad.state is State.RUNNING

    eventually(lambda: worker.update_tasks() and False or worker.db[bad.id].state is not State.RUNNING)
    eventually(lambda: worker.update_tasks() and False or worker.db[ok.id].state is not State.RUNNING)

    ok, bad = worker.db[ok.id], worker.db[bad.id]
    assert (ok.state, ok.exit_code, ok.reason) == (State.COMPLETED, 0, "its container exited with code 0")
    assert (bad.state, bad.exit_code, bad.reason) == (State.FAILED, 3, "its container exited with code 3")
    assert ok.finish_time > ok.start_time
    assert mine(client, worker=worker.name) == [], "containers of finished tasks are removed"


@pytest.mark.parametrize(
    ("how", "exit_code", "reason"),
    [
        ("kill", 137, "its container exited with code 137 (killed by SIGKILL)"),
        ("stop", 143, "its container exited with code 143 (killed by SIGTERM)"),
        ("remove", None, "its container was removed outside cube"),
    ],
)
def test_a_container_killed_stopped_or_removed_behind_the_workers_back_fails_the_task(
    worker, client, demo_image, how, exit_code, reason
):
    t = start(worker, Task(image=demo_image))
    container = client.containers.get(t.container_id)
    {"kill": container.kill, "stop": container.stop, "remove": lambda: container.remove(force=True)}[how]()

    (change,) = worker.update_tasks()
    assert (change.src, change.dst, change.reason) == (State.RUNNING, State.FAILED, reason)
    rec = worker.db[t.id]
    assert (rec.state, rec.exit_code, rec.reason) == (State.FAILED, exit_code, reason)
    assert mine(client, task=str(t.id)) == []
    assert worker.update_tasks() == [], "nothing changed since"


def test_after_docker_restart_the_task_has_the_new_host_port(worker, client, demo_image):
    t = start(worker, Task(image=demo_image))
    container = client.containers.get(t.container_id)
    container.restart(timeout=1)
    container.reload()
    now = int(container.ports["80/tcp"][0]["HostPort"])

    worker.update_tasks()
    rec = worker.db[t.id]
    assert rec.state is State.RUNNING
    assert rec.host_ports["80/tcp"] == now
    assert page(now).strip() == f"Hello from {t.container_id[:12]}"
    if now != t.host_ports["80/tcp"]:  # Docker usually picks a new port
        (change,) = worker.history(t.id)[-1:]
        assert (change.src, change.dst) == (State.RUNNING, State.RUNNING)
        assert f"80/tcp -> {now}" in change.reason


@contextmanager
def through_a_faulty_engine(rule, prefix: str, task_name: str, client, demo_image):
    """A worker that reaches the real engine through FaultyEngine(rule) (a fake boundary), and a
    SCHEDULED task queued on it; then the worker and the proxy closed and the task's containers removed."""
    engine = FaultyEngine(rule)
    w = Worker(f"test-{prefix}-{task_name}", engine.client())
    t = Task(name=task_name, image=demo_image, state=State.SCHEDULED)
    try:
        w.add_task(t)
        yield w, t
    finally:
        w.close()
        engine.close()
        for c in mine(client, task=str(t.id)):
            c.remove(force=True)


def test_an_engine_that_dies_between_create_and_start_leaves_no_container_and_no_409(
    client, demo_image, task_name
):
    rule = engine_dies_at("POST", "/start")  # the real engine, reached through a proxy that drops
    with through_a_faulty_engine(rule, "dies", task_name, client, demo_image) as (w, t):
        result = w.run_task()
        assert result.unreachable and "stays first in the queue" in result.error
        assert w.db[t.id].state is State.SCHEDULED, "nothing was observed, so nothing is reported"
        (left,) = mine(client, task=str(t.id))  # created, never started: the engine died
        assert left.status == "created"

        rule.revive()
        result = w.run_task()  # the request was kept; the same name works
        assert result.error is None, result.error
        (container,) = mine(client, task=str(t.id))
        assert container.status == "running" and container.name == task_name
        assert w.db[t.id].container_id == container.id


def test_a_start_whose_answer_is_lost_keeps_its_container_and_the_retry_adopts_it_with_a_faked_reply_loss(
    client, demo_image, task_name
):
    lost = []  # the first start's answer is lost on the way back: the engine did start the container

    def rule(method, path):
        return "forward" if lost or not path.endswith("/start") else lost.append(1) or "unanswered"

    with through_a_faulty_engine(rule, "lost", task_name, client, demo_image) as (w, t):
        first = w.run_task()
        assert first.unreachable and "stays first in the queue" in first.error
        (left,) = mine(client, task=str(t.id))
        assert left.id == first.container_id and left.status == "running", "it started: it is kept"

        again = w.run_task()  # the request was kept, and finds what the first attempt did
        assert (again.error, again.result) == (None, "adopted")
        (container,) = mine(client, task=str(t.id))
        assert container.id == first.container_id, "the job is not started a second time"
        assert w.db[t.id].state is State.RUNNING and w.db[t.id].container_id == container.id


def test_a_stop_whose_answer_is_lost_is_left_to_its_retry_not_taken_for_a_removal_with_a_faked_reply_loss(
    client, demo_image, task_name
):
    lost = []  # the engine stops the container, and its answer is lost on the way back

    def rule(method, path):
        return "forward" if lost or not path.endswith("/stop") else lost.append(1) or "unanswered"

    with through_a_faulty_engine(rule, "lost-stop", task_name, client, demo_image) as (w, t):
        assert w.run_task().error is None
        w.add_task(replace(t, state=State.COMPLETED))
        assert w.run_task().unreachable, "no answer: the stop stays first in the queue"
        assert eventually(lambda: client.containers.get(w.db[t.id].container_id).status == "exited")
        assert w.update_tasks() == [], "the stop, tried again, will say how it ended"
        again = w.run_task()
        assert again.error is None, again.error
        done = w.db[t.id]
        assert done.state is State.COMPLETED and done.reason.startswith("stopped on request"), done.reason
        assert [(m.src, m.dst) for m in w.history(t.id)][-1] == (State.RUNNING, State.COMPLETED)


def test_a_stop_put_back_while_update_tasks_reads_is_not_taken_for_a_removal_with_a_faked_interleaving(
    worker, client, demo_image, monkeypatch
):
    t = start(worker, Task(image=demo_image))
    running, put_back, real = worker.db[t.id], [], worker.store.tasks
    worker.store.save(running, "stop")  # another thread stops it; the engine does so and its answer is lost
    client.containers.get(running.container_id).remove(force=True)

    def tasks(state=None):  # read by update_tasks(); that thread puts its stop back right after, as it may
        before = real(state)
        if not put_back:
            worker.store.put_back(replace(running, reason=WAITING), replace(t, state=State.COMPLETED))
            put_back.append(1)
        return before

    monkeypatch.setattr(worker.store, "tasks", tasks)
    assert worker.update_tasks() == [] and put_back, "the stop, tried again, says how it ended"
    monkeypatch.undo()
    assert worker.run_task().error is None
    done = worker.db[t.id]
    assert (done.state, done.reason) == (State.COMPLETED, "stopped on request: already gone"), done


def test_a_stop_unanswered_twice_while_update_tasks_looks_is_no_removal_with_a_faked_interleaving(
    worker, client, demo_image, monkeypatch
):
    t = start(worker, Task(image=demo_image))
    waiting, stop = replace(worker.db[t.id], reason=WAITING), replace(t, state=State.COMPLETED)
    worker.store.put_back(waiting, stop)  # a first stop went unanswered
    worker.store.take(worker.store.dequeue())  # it is tried again (as _intend does): under way
    worker.store.save(waiting, "stop")
    client.containers.get(waiting.container_id).remove(force=True)  # the engine carries it out; no answer
    put_back, inspect = [], Docker.inspect

    def second_try_unanswered_too(d, container_id):  # while update_tasks() looks at the container
        if not put_back:
            worker.store.put_back(waiting, stop)  # the record is as it was before the second try
            put_back.append(1)
        return inspect(d, container_id)

    monkeypatch.setattr(Docker, "inspect", second_try_unanswered_too)
    assert worker.update_tasks() == [], "a stop went unanswered: it says how the container ended"
    monkeypatch.undo()
    put_back or worker.store.put_back(waiting, stop)  # update_tasks() did not look: the second try ends now
    assert worker.run_task().error is None
    done = worker.db[t.id]
    assert (done.state, done.reason) == (State.COMPLETED, "stopped on request: already gone"), done


def test_a_stop_met_by_a_conflict_then_no_answer_returns_a_result_and_keeps_the_request_with_faked_answers(
    client, demo_image, task_name
):
    said = []  # a made-up 409 to the stop (as if someone removed it), then an engine that does not answer

    def rule(method, path):
        if method == "POST" and path.endswith("/stop"):
            said.append("409")
            return "conflict"
        return "drop" if said else "forward"

    with through_a_faulty_engine(rule, "409-stop", task_name, client, demo_image) as (w, t):
        assert w.run_task().error is None
        w.add_task(replace(t, state=State.COMPLETED))
        result = w.run_task()  # raised an EngineError before
        assert result.unreachable and "stays first in the queue" in result.error
        assert w.store.busy() == {}, "the stop is over"
        assert w.db[t.id].state is State.RUNNING and [r.state for r in w.queue] == [State.COMPLETED]


def test_a_stop_the_engine_refuses_keeps_the_task_and_tells_the_listeners_why_with_a_faked_500(
    client, demo_image, task_name
):
    rule = lambda method, path: "refuse" if method == "POST" and path.endswith("/stop") else "forward"  # noqa: E731
    with through_a_faulty_engine(rule, "500-stop", task_name, client, demo_image) as (w, t):
        assert w.run_task().error is None
        heard = []
        w.subscribe(heard.append)
        w.add_task(replace(t, state=State.COMPLETED))
        result = w.run_task()
        assert "a made-up failure of the engine" in result.error and not result.unreachable
        assert w.db[t.id].state is State.RUNNING and w.store.busy() == {} and list(w.queue) == []
        assert eventually(lambda: result in heard), "the listeners were not told of the stop that failed"
        (container,) = mine(client, task=str(t.id))
        assert container.status == "running"


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        pytest.param("refuse", "not removed", id="500"),  # as "device or resource busy" does
        pytest.param("conflict", "after 10 s", id="409", marks=pytest.mark.slow),  # waits its 10 s
    ],
)
def test_a_stop_whose_container_the_engine_fails_to_remove_is_completed_and_removed_later_with_a_faked_answer(
    client, demo_image, task_name, answer, said
):
    refused = []  # the stop is carried out; the removal after it is refused (500), or said under way (409)

    def rule(method, path):
        if method == "DELETE" and "/containers/" in path and not refused:
            return refused.append(path) or answer
        return "forward"

    with through_a_faulty_engine(rule, f"{answer}-remove", task_name, client, demo_image) as (w, t):
        assert w.run_task().error is None
        w.add_task(replace(t, state=State.COMPLETED))
        result = w.run_task()
        assert result.error is None and refused, "the container stopped: the stop succeeded"
        done = w.db[t.id]
        assert done.state is State.COMPLETED and done.exit_code is not None, (done, w.history(t.id))
        assert said in done.reason and w.update_tasks() == []
        assert mine(client, task=str(t.id)) == [], "the next round removed the container no task needs"


INSPECT = re.compile(r"/containers/[0-9a-f]{64}/json$")


def test_a_start_whose_inspect_is_refused_after_the_start_keeps_its_job_and_adopts_it_with_a_faked_500(
    client, demo_image, task_name
):
    said = []  # the container starts; the engine refuses the inspect that follows (a made-up 500)

    def rule(method, path):
        if method == "POST" and path.endswith("/start"):
            said.append("started")
        elif said == ["started"] and method == "GET" and INSPECT.search(path):
            return said.append("refused") or "refuse"
        return "forward"

    with through_a_faulty_engine(rule, "500-inspect", task_name, client, demo_image) as (w, t):
        result = w.run_task()
        assert said == ["started", "refused"] and result.unreachable, result
        assert "stays first in the queue" in result.error and w.db[t.id].state is State.SCHEDULED
        (kept,) = mine(client, task=str(t.id))
        assert kept.status == "running", "cube removed a container whose job had begun"
        assert w.run_task().error is None  # tried again: adopted, not started a second time
        assert (w.db[t.id].state, w.db[t.id].container_id) == (State.RUNNING, kept.id)
        assert [c.id for c in mine(client, task=str(t.id))] == [kept.id] and said.count("started") == 1


def test_a_stop_whose_inspect_is_refused_after_the_stop_is_completed_and_removed_later_with_a_faked_500(
    client, demo_image, task_name
):
    said = []  # the container stops; the engine refuses the inspect that follows (a made-up 500)

    def rule(method, path):
        if method == "POST" and path.endswith("/stop"):
            said.append("stopped")
        elif said == ["stopped"] and method == "GET" and INSPECT.search(path):
            return said.append("refused") or "refuse"
        return "forward"

    with through_a_faulty_engine(rule, "500-inspect-stop", task_name, client, demo_image) as (w, t):
        assert w.run_task().error is None
        w.add_task(replace(t, state=State.COMPLETED))
        result = w.run_task()
        assert said == ["stopped", "refused"] and result.error is None, result
        done = w.db[t.id]
        assert done.state is State.COMPLETED and "not removed" in done.reason, (done, w.history(t.id))
        assert w.update_tasks() == [] and mine(client, task=str(t.id)) == [], "removed: no task needs it"


def test_a_stop_tried_again_and_refused_no_longer_says_it_waits_for_the_engine_with_faked_answers(
    client, demo_image, task_name
):
    said = []  # the first stop is not answered (the connection drops); the engine refuses the second

    def rule(method, path):
        if method == "POST" and path.endswith("/stop"):
            said.append(1)
            return "drop" if len(said) == 1 else "refuse"
        return "forward"

    with through_a_faulty_engine(rule, "refused-retry", task_name, client, demo_image) as (w, t):
        assert w.run_task().error is None
        w.add_task(replace(t, state=State.COMPLETED))
        assert w.run_task().unreachable and w.db[t.id].reason == WAITING
        again = w.run_task()
        assert "a made-up failure of the engine" in again.error and not again.unreachable
        rec = w.db[t.id]
        assert rec.state is State.RUNNING and rec.reason.startswith("its stop failed: "), rec.reason


def test_a_start_that_cube_itself_fails_at_is_recorded_failed_not_left_half_done_with_a_faked_bug(
    worker, client, demo_image, task_name, monkeypatch
):
    def bug(self, container_id):  # a fake: a bug in cube after the engine started the container
        raise ValueError("a made-up bug")

    monkeypatch.setattr(Docker, "_settle", bug)
    t = Task(name=task_name, image=demo_image, state=State.SCHEDULED)
    worker.add_task(t)
    result = worker.run_task()
    assert "a bug in cube (ValueError('a made-up bug'))" in result.error
    assert worker.db[t.id].state is State.FAILED and worker.store.busy() == {}, "not stuck half started"
    assert mine(client, task=str(t.id)) == [], "its container was removed"
    monkeypatch.undo()
    worker.add_task(t)  # FAILED -> SCHEDULED: asked again, it runs
    assert worker.run_task().error is None and worker.db[t.id].state is State.RUNNING


def test_a_new_worker_on_the_same_db_takes_over_the_containers_of_a_killed_one(client, demo_image, tmp_path):
    db, name = str(tmp_path / "w.db"), f"test-orphans-{tmp_path.name[-8:]}"
    script = (
        "import sys, time\n"
        "from cube import Worker, Task, State\n"
        f"w = Worker({name!r}, db_path={db!r})\n"
        f"t = Task(name='', image={demo_image!r}, state=State.SCHEDULED)\n"
        "w.add_task(t)\n"
        "assert w.run_task().error is None\n"
        "print(t.id, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        task_id = child.stdout.readline().strip()
    finally:
        child.kill()  # SIGKILL: no clean-up of any kind
        child.wait()
    (orphan,) = mine(client, worker=name)
    assert orphan.status == "running"

    with Worker(name, client, db_path=db) as w:
        (t,) = w.db.values()
        assert (str(t.id), t.state, t.container_id) == (task_id, State.RUNNING, orphan.id)
        w.add_task(replace(t, state=State.COMPLETED))
        assert w.run_task().error is None
        assert w.db[t.id].state is State.COMPLETED
    assert mine(client, worker=name) == []


def test_start_task_twice_on_a_named_task_is_refused_and_keeps_the_record(
    worker, client, demo_image, task_name
):
    t = Task(name=task_name, image=demo_image, state=State.SCHEDULED)
    assert worker.start_task(t).error is None
    first = worker.db[t.id]

    again = worker.start_task(t)
    assert "is already RUNNING" in again.error
    assert worker.db[t.id] == first
    (container,) = mine(client, task=str(t.id))
    assert container.id == first.container_id and container.status == "running"


def test_stop_task_refuses_a_container_cube_did_not_make(worker, client, demo_image):
    stranger = client.containers.run(demo_image, detach=True, init=True)  # no cube labels
    try:
        # Given in the task: the worker has no record of it, so it stops nothing.
        t = Task(image=demo_image, state=State.COMPLETED, container_id=stranger.id)
        assert "has no record of task" in worker.stop_task(t).error
        # Even when the worker's own record names it (a db from elsewhere), its labels decide.
        worker.store.save(replace(t, state=State.RUNNING))
        assert "is not labelled cube.task=" in worker.stop_task(t).error
        assert worker.db[t.id].state is State.RUNNING
        stranger.reload()
        assert stranger.status == "running"
    finally:
        stranger.remove(force=True)


def test_a_client_that_is_not_a_docker_client_is_refused_at_construction():
    with pytest.raises(TypeError, match="expected a docker.DockerClient, got APIClient"):
        Worker("w", docker.APIClient(base_url="unix:///var/run/docker.sock", version="1.41"))
    with pytest.raises(TypeError, match="pass docker.from_env()|Pass docker.from_env()"):
        Worker("w", "unix:///var/run/docker.sock")


@pytest.mark.slow
def test_an_engine_that_never_answers_is_an_error_within_seconds(monkeypatch, demo_image):
    engine = FaultyEngine(lambda method, path: "hang")  # a fake: accepts connections, never answers
    monkeypatch.setenv("DOCKER_HOST", engine.url)
    try:
        w = Worker("hung")  # the client cube makes itself
        w.add_task(Task(image=demo_image, state=State.SCHEDULED))
        began = time.monotonic()
        result = w.run_task()
        took = time.monotonic() - began
    finally:
        engine.close()
    assert result.unreachable and engine.url in result.error
    assert took < 8, f"gave up after {took:.1f} s"


def test_reconcile_finishes_only_what_a_dead_worker_left_not_a_start_ended_since_with_a_faked_interleaving(
    client, demo_image, task_name, tmp_path, monkeypatch
):
    down = [True]  # the engine does not answer while the worker opens: it is not reconciled yet
    engine = FaultyEngine(lambda method, path: "drop" if down[0] else "forward")
    w = Worker(f"test-stale-{task_name}", engine.client(), db_path=str(tmp_path / "w.db"))
    failed = Task(name=task_name, image=demo_image, state=State.FAILED, reason="exited with code 3")
    try:
        w.store.save(failed)  # a start another thread began once the worker could go on, and that failed
        monkeypatch.setattr(w.store, "busy", lambda: {failed.id: "start"})  # under way as reconcile read
        down[0] = False
        assert w.reconcile() == []
        assert w.db[failed.id].state is State.FAILED and mine(client, task=str(failed.id)) == []
    finally:
        w.close()
        engine.close()
        for c in mine(client, task=str(failed.id)):
            c.remove(force=True)


def test_a_named_start_whose_create_lands_late_takes_its_name_back_from_that_unstarted_container_faked(
    client, demo_image, task_name
):
    creates, made = [], []  # the first create is not answered; it lands late, just before the one tried again

    def rule(method, path):
        if method == "POST" and path.endswith("/containers/create"):
            creates.append(path)
            if len(creates) == 1:
                return "drop"
            if len(creates) == 2:
                w, t = made[0]
                labels = {LABEL_TASK: ""} | Config.from_task(w.db[t.id], w.name).labels  # as run() labels it
                client.api.create_container(demo_image, name=task_name, labels=labels)
        return "forward"

    with through_a_faulty_engine(rule, "late-create", task_name, client, demo_image) as (w, t):
        made.append((w, t))
        assert w.run_task().unreachable
        result = w.run_task()
        assert result.error is None and w.db[t.id].state is State.RUNNING, result
        (only,) = mine(client, task=str(t.id))
        assert (only.id, only.status) == (result.container_id, "running") and len(creates) == 3
