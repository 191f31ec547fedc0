"""cube/worker.py: the queue, the db and run_task's algorithm; then the chapter's program on a
real Docker engine, and what the worker does when the engine or the container lets it down."""

import copy
import dataclasses
import itertools
import socket
import threading
import time
from datetime import UTC, datetime

import docker
import pytest
from helpers import eventually, mine, page, remove_containers

from cube import LABEL_TASK, LABEL_WORKER, Config, Docker, State, Task, Worker, valid_state_transition
from cube.task import LABEL_ATTEMPT

NO_ENGINE = "unix:///tmp/cube-no-such.sock"
MiB = 2**20

INVALID = [(a, b) for a, b in itertools.product(State, State) if not valid_state_transition(a, b)]
# Valid moves whose target state is neither SCHEDULED (start) nor COMPLETED (stop).
ASK_FOR_NOTHING = [
    (State.SCHEDULED, State.RUNNING),
    (State.SCHEDULED, State.FAILED),
    (State.RUNNING, State.RUNNING),
    (State.RUNNING, State.FAILED),
]


def ids(pairs):
    return [f"{a}->{b}" for a, b in pairs]


@pytest.fixture
def offline():
    """A worker with no client yet: it connects only if it touches the engine, so a worker
    whose client is still None afterwards has not touched it."""
    return Worker("offline")


@pytest.fixture
def no_engine() -> docker.DockerClient:
    """A client for an address where no engine listens (making it does not connect)."""
    return docker.DockerClient(base_url=NO_ENGINE, version="1.41")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def refused(error: str) -> str:
    """The task named in a "task NAME: invalid transition ...; nothing was done" error."""
    return error.removeprefix("task ").split(":")[0]


# --- the queue and the db, without the engine -------------------------------------------------


def test_an_empty_queue_gives_a_result_with_no_error(offline):
    result = offline.run_task()
    assert result.error is None
    assert result.action == "none"


def test_tasks_come_off_the_queue_first_in_first_out(offline):
    # A PENDING task seen for the first time is refused (PENDING -> PENDING is not a move),
    # and the refusal names the task: that tells us the order without an engine.
    for name in ("first", "second", "third"):
        offline.add_task(Task(name=name, image="img"))
    errors = [offline.run_task().error for _ in range(3)]
    assert [refused(e) for e in errors] == ["first", "second", "third"]


def test_no_task_is_lost_with_one_thread_adding_while_another_runs(offline):
    n = 300
    names = [f"t{i}" for i in range(n)]
    seen: list[str] = []

    def add():
        for name in names:
            offline.add_task(Task(name=name, image="img"))

    def run():
        deadline = time.monotonic() + 20
        while len(seen) < n and time.monotonic() < deadline:
            result = offline.run_task()
            if result.error:  # an empty queue gives no error: nothing to count
                seen.append(refused(result.error))

    threads = [threading.Thread(target=add), threading.Thread(target=run)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == names
    assert offline.queue == ()
    assert offline.task_count == n


def test_task_count_counts_each_task_once(offline):
    a, b = Task(image="img"), Task(image="img")
    offline.add_task(a)
    offline.add_task(a)
    offline.add_task(b)
    assert len(offline.queue) == 3
    assert offline.task_count == 2


def test_add_task_queues_a_copy(offline):
    t = Task(name="before", image="img", state=State.RUNNING)
    offline.add_task(t)
    t.name, t.state = "after", State.SCHEDULED
    (queued,) = offline.queue
    assert (queued.name, queued.state) == ("before", State.RUNNING)
    assert queued is not t


def test_add_task_refuses_an_invalid_task_and_queues_nothing(offline):
    t = Task(image="img")
    t.memory = -1  # a dataclass does not check on assignment; add_task does
    with pytest.raises(ValueError, match="memory"):
        offline.add_task(t)
    assert offline.queue == ()
    assert offline.task_count == 0


@pytest.mark.parametrize(("src", "dst"), INVALID, ids=ids(INVALID))
def test_an_invalid_transition_is_refused_and_changes_nothing(offline, src, dst):
    known = Task(name="known", image="img", state=src, container_id="abc123")
    offline.store.save(known)  # a record as if the worker had made it
    before = copy.deepcopy(known)

    offline.add_task(dataclasses.replace(known, state=dst))
    result = offline.run_task()

    assert f"from {src} to {dst}" in result.error
    assert offline.db == {known.id: before}
    assert offline.client is None  # the engine was never asked


@pytest.mark.parametrize(("src", "dst"), ASK_FOR_NOTHING, ids=ids(ASK_FOR_NOTHING))
def test_a_valid_transition_that_asks_for_nothing_is_refused(offline, src, dst):
    known = Task(name="known", image="img", state=src, container_id="abc123")
    offline.store.save(known)
    before = copy.deepcopy(known)

    offline.add_task(dataclasses.replace(known, state=dst))
    result = offline.run_task()

    assert "SCHEDULED to start it or COMPLETED to stop it" in result.error
    assert offline.db == {known.id: before}
    assert offline.client is None


def test_a_task_refused_on_first_sighting_is_not_stored(offline):
    offline.add_task(Task(image="img", state=State.COMPLETED))
    assert offline.run_task().error
    assert offline.db == {}


# --- the chapter's program, on the real engine ------------------------------------------------


def test_the_chapters_program_starts_and_stops_the_demo_web_server(worker, client, demo_image, task_name):
    t = Task(name=task_name, image=demo_image, state=State.SCHEDULED)
    worker.add_task(t)
    result = worker.run_task()
    assert result.error is None

    running = worker.db[t.id]
    assert running.state is State.RUNNING
    assert running.container_id == result.container_id
    text = page(running.host_ports["80/tcp"])
    assert text.strip() == "Hello from " + running.container_id[:12]
    labels = client.containers.get(running.container_id).labels
    assert labels[LABEL_TASK] == str(t.id)
    assert labels[LABEL_WORKER] == worker.name

    # Stop it with the same Task object: the worker finds the container id in its own db.
    t.state = State.COMPLETED
    assert t.container_id == ""
    worker.add_task(t)
    started = time.monotonic()
    result = worker.run_task()
    took = time.monotonic() - started

    assert result.error is None
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(running.container_id)
    done = worker.db[t.id]
    assert done.state is State.COMPLETED
    assert done.start_time.tzinfo is not None
    assert done.finish_time.tzinfo is not None
    assert done.start_time <= done.finish_time
    assert took < 1.0, f"stopping took {took:.1f} s: is the init process missing?"


def test_a_task_gets_its_limits_restart_policy_and_host_port(worker, client, demo_image):
    port = free_port()
    t = Task(
        image=demo_image,
        state=State.SCHEDULED,
        cpu=0.5,
        memory=64 * MiB,
        restart_policy="unless-stopped",
        port_bindings={"80/tcp": str(port)},
    )
    worker.add_task(t)
    assert worker.run_task().error is None

    running = worker.db[t.id]
    host = client.containers.get(running.container_id).attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 64 * MiB
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["PortBindings"]["80/tcp"][0]["HostPort"] == str(port)
    assert running.host_ports["80/tcp"] == port
    published = client.api.inspect_container(running.container_id)["NetworkSettings"]["Ports"]["80/tcp"]
    assert {b["HostPort"] for b in published} == {str(port)}, "published there only, not again elsewhere"
    assert page(port).startswith("Hello from ")


# --- when things go wrong ---------------------------------------------------------------------


def test_an_image_that_cannot_be_found_fails_the_task_and_names_the_image(worker, client):
    t = Task(image="cube/no-such-image:latest", state=State.SCHEDULED)
    worker.add_task(t)
    result = worker.run_task()
    assert "cube/no-such-image:latest" in result.error
    assert worker.db[t.id].state is State.FAILED
    assert client.containers.list(all=True, filters={"label": f"{LABEL_TASK}={t.id}"}) == []


def test_no_engine_at_the_address_is_an_error_naming_it_and_the_request_waits(no_engine, demo_image):
    w = Worker("nowhere", no_engine)
    t = Task(image=demo_image, state=State.SCHEDULED)
    w.add_task(t)
    result = w.run_task()
    assert NO_ENGINE in result.error
    assert result.unreachable
    assert w.db[t.id].state is State.SCHEDULED, "nothing was observed, so nothing is reported"
    assert [q.id for q in w.queue] == [t.id], "the request is kept, first in the queue"


def test_a_container_removed_behind_the_workers_back_counts_as_stopped(worker, client, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED)
    worker.add_task(t)
    assert worker.run_task().error is None
    client.containers.get(worker.db[t.id].container_id).remove(force=True)

    t.state = State.COMPLETED
    worker.add_task(t)
    result = worker.run_task()
    assert result.error is None
    assert worker.db[t.id].state is State.COMPLETED


def test_a_stop_of_a_container_that_already_failed_says_so_and_keeps_its_exit_code(
    worker, client, demo_image
):
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "sleep 1; exit 3"])  # seen running
    worker.add_task(t)
    assert worker.run_task().error is None
    container_id = worker.db[t.id].container_id
    assert eventually(lambda: client.containers.get(container_id).status == "exited")
    finished = client.api.inspect_container(container_id)["State"]["FinishedAt"]

    worker.add_task(dataclasses.replace(t, state=State.COMPLETED))  # nobody looked since it started
    result = worker.run_task()
    assert (result.error, result.result) == (None, "it had already exited with code 3")
    done = worker.db[t.id]
    assert (done.state, done.exit_code) == (State.COMPLETED, 3), "asked to stop: COMPLETED, with its code"
    assert done.reason == "stopped on request: it had already exited with code 3"
    assert done.finish_time.isoformat()[:19] == finished[:19], "when it ended, not when it was asked"
    assert mine(client, task=str(t.id)) == [], "its container is removed all the same"


def test_a_stop_that_cannot_reach_the_engine_leaves_the_task_running(worker, client, no_engine, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED)
    worker.add_task(t)
    assert worker.run_task().error is None
    container_id = worker.db[t.id].container_id

    worker.client = no_engine
    t.state = State.COMPLETED
    worker.add_task(t)
    result = worker.run_task()
    assert NO_ENGINE in result.error
    assert worker.db[t.id].state is State.RUNNING
    assert worker.db[t.id].finish_time is None
    assert client.containers.get(container_id).status == "running"
    assert [(q.id, q.state) for q in worker.queue] == [(t.id, State.COMPLETED)], "the stop waits"

    worker.client = client  # the engine is back: the waiting request goes through
    assert worker.run_task().error is None
    assert worker.db[t.id].state is State.COMPLETED
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)


def test_running_tasks_observed_again_change_nothing(worker, demo_image):
    tasks = [Task(image=demo_image, state=State.SCHEDULED) for _ in range(4)]
    for t in tasks:
        worker.add_task(t)
        assert worker.run_task().error is None
    before = dict(worker.db)  # a copy: worker.db is a live view
    assert worker.update_tasks() == []
    assert worker.update_tasks() == []
    assert worker.db == before


def test_a_task_with_an_operation_under_way_is_not_started_again_by_another_caller(offline):
    t = Task(name="busy", image="img", state=State.SCHEDULED)
    offline.store.save(t, op="start")  # as if another thread were starting it right now
    result = offline.start_task(t)
    assert result.error == "task busy is being started by another thread; try again when it is done"
    assert offline.client is None


def test_a_dict_given_to_add_task_is_a_value_error_saying_what_to_pass(offline):
    with pytest.raises(ValueError, match=r"^task: add_task takes a cube.Task, got a dict.*Task.from_dict"):
        offline.add_task({"image": "img", "state": "SCHEDULED"})
    assert offline.queue == ()


@pytest.mark.slow
def test_the_engine_takes_the_smallest_limits_and_a_counted_restart_policy(worker, client, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED, memory=6 * MiB, cpu=0.01, restart_policy="on-failure:3")
    worker.add_task(t)
    assert worker.run_task().error is None
    host = client.containers.get(worker.db[t.id].container_id).attrs["HostConfig"]
    assert (host["Memory"], host["NanoCpus"]) == (6 * MiB, 10_000_000)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}


def test_the_queued_request_shares_nothing_with_the_callers_task(offline):
    t = Task(image="img", state=State.SCHEDULED, exposed_ports={"80/tcp"}, port_bindings={"80/tcp": "8080"})
    offline.add_task(t)
    t.exposed_ports.add("443/tcp")
    t.port_bindings["80/tcp"] = "9090"
    (queued,) = offline.queue
    assert (queued.exposed_ports, queued.port_bindings) == ({"80/tcp"}, {"80/tcp": "8080"})


def test_db_and_queue_refuse_writes_saying_to_use_add_task(offline):
    t = Task(name="web", image="img", state=State.SCHEDULED)
    with pytest.raises(TypeError, match=r"worker.db is read-only.*worker.add_task\(task\)"):
        offline.db[t.id] = t  # as Go's w.Db[t.ID] = &t
    with pytest.raises(TypeError, match="add_task"):
        del offline.db[t.id]
    with pytest.raises(TypeError, match=r"worker.queue is a copy .*worker.add_task\(task\)"):
        offline.queue.append(t)
    with pytest.raises(TypeError, match="add_task"):
        offline.queue += (t,)
    assert (offline.queue, len(offline.db), offline.task_count) == ((), 0, 0), "nothing was queued or stored"


def test_db_is_a_live_view_that_reads_the_task_asked_for(offline):
    db, t = offline.db, Task(name="web", image="img", state=State.RUNNING)
    assert t.id not in db and db.get(t.id) is None
    with pytest.raises(KeyError):
        db[t.id]
    offline.store.save(t)  # recorded after the view was taken
    assert db[t.id] == t and list(db) == [t.id] and len(db) == 1 and db == {t.id: t}
    assert db[t.id] is not db[t.id], "each lookup reads the record afresh: changing it changes nothing"


def test_a_task_that_finishes_at_once_keeps_no_container(worker, client, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["true"])
    worker.add_task(t)
    worker.run_task()
    assert (worker.db[t.id].state, worker.db[t.id].exit_code) == (State.COMPLETED, 0)
    assert mine(client, task=str(t.id)) == [], "a finished task keeps no container"


class FakeCrash(BaseException):
    """Stands for SIGKILL at one exact point, which no real signal can hit on demand."""


def crashed_then_reopened(first: Worker, client, path: str, monkeypatch) -> Worker:
    """first's next request, cut short by a FakeCrash; then the worker a new process opens on its db file
    (it reconciles first, with the fakes undone)."""
    with pytest.raises(FakeCrash):
        first.run_task()
    first.store.close()  # what the kernel does for a process that died: the db file is free again
    monkeypatch.undo()
    return Worker(first.name, client, db_path=path)


@pytest.mark.parametrize("cmd, code", [(["true"], 0), (["sh", "-c", "exit 3"], 3)])
def test_a_job_that_ended_before_a_fake_crash_cut_its_record_short_is_adopted_not_run_again(
    client, demo_image, tmp_path, monkeypatch, cmd, code
):
    name, path = f"test-once-{code}-{time.monotonic_ns() % 10**8}", str(tmp_path / "w.db")
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=cmd)
    first = Worker(name, client, db_path=path)
    real_save = first.store.save

    def save_then_crash(task, op="", transition=None):
        if transition and transition.dst in (State.COMPLETED, State.FAILED):
            raise FakeCrash  # the engine has run the job; the worker dies before it records how it ended
        real_save(task, op, transition)

    monkeypatch.setattr(first.store, "save", save_then_crash)
    first.add_task(t)
    with pytest.raises(FakeCrash):
        first.run_task()
    first.store.close()  # what the kernel does for a process that died: the db file is free again
    try:
        (left,) = mine(client, task=str(t.id))  # it ran, and is kept until its end is recorded
        assert left.status == "exited"
        survivor = Worker(name, client, db_path=path)  # reconciles first
        done = survivor.db[t.id]
        assert (done.state, done.exit_code) == (State.COMPLETED if code == 0 else State.FAILED, code)
        assert done.container_id == left.id, "the job that ran is adopted, not run a second time"
        assert "while no worker watched" in done.reason
        assert mine(client, task=str(t.id)) == [], "and its container is removed once that is recorded"
        survivor.close()
    finally:
        for c in mine(client, worker=name):
            c.remove(force=True)


def test_a_start_cut_short_before_create_runs_its_job_and_adopts_no_older_attempts_container(
    client, demo_image, tmp_path, monkeypatch
):
    name, path = f"test-attempt-{time.monotonic_ns() % 10**8}", str(tmp_path / "w.db")
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "exit 3"])
    first = Worker(name, client, db_path=path)
    first.add_task(t)
    first.run_task()
    assert first.db[t.id].exit_code == 3
    # An earlier attempt's container that ran and exited 3, left behind (its removal failed, say).
    old = client.containers.run(demo_image, ["sh", "-c", "exit 3"], detach=True,
                                labels={LABEL_TASK: str(t.id), LABEL_WORKER: name})  # fmt: skip
    try:
        assert old.wait()["StatusCode"] == 3

        def crash(*_, **__):
            raise FakeCrash  # the intent is recorded; the worker dies before it creates anything

        monkeypatch.setattr(Docker, "run", crash)
        first.add_task(dataclasses.replace(t, cmd=["true"]))  # run it again, a job that exits 0 this time
        with crashed_then_reopened(first, client, path, monkeypatch) as survivor:  # it finishes the start
            done = survivor.db[t.id]
            assert (done.state, done.exit_code) == (State.COMPLETED, 0), (done, survivor.history())
            assert done.container_id != old.id, "the older attempt's container is not this start's"
            assert mine(client, task=str(t.id)) == [], "and the older one is removed: no task needs it"
    finally:
        remove_containers(client, name)


def test_a_start_an_older_cube_cut_short_after_its_job_ran_is_adopted_not_run_again(
    client, demo_image, tmp_path, monkeypatch
):
    name, path = f"test-legacy-{time.monotonic_ns() % 10**8}", str(tmp_path / "w.db")
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "exit 3"])
    made = []

    def older_cube(d, *_, **__):  # as cube did before cube.attempt: labels for the task and worker only
        labels = {k: v for k, v in d.config.labels.items() if k != LABEL_ATTEMPT}
        made.append(client.containers.run(demo_image, t.cmd, detach=True, labels=labels))
        assert made[0].wait()["StatusCode"] == 3
        raise FakeCrash  # the job ran and ended; the worker dies before it records anything

    first = Worker(name, client, db_path=path)
    first.add_task(t)
    monkeypatch.setattr(Docker, "run", older_cube)
    try:
        with crashed_then_reopened(first, client, path, monkeypatch) as survivor:  # it finishes the start
            done = survivor.db[t.id]
            assert (done.state, done.exit_code) == (State.FAILED, 3), survivor.history()
            assert done.container_id == made[0].id, "the job that ran is adopted: it is not run a second time"
    finally:
        remove_containers(client, name)


def test_the_loop_outlives_a_request_that_raises_and_runs_the_next(worker, demo_image, monkeypatch, caplog):
    real = worker.run_task
    calls = []

    def raises_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a fault no engine makes on demand")
        return real()

    monkeypatch.setattr(worker, "run_task", raises_once)
    t = Task(image=demo_image, state=State.SCHEDULED)
    worker.add_task(t)
    worker.start()
    assert eventually(lambda: worker.db.get(t.id) and worker.db[t.id].state is State.RUNNING, 10)
    assert worker.running and "failed to run a request" in caplog.text


def test_start_after_a_stop_that_timed_out_starts_again(worker, demo_image):
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "sleep 30"])
    worker.add_task(t)
    worker.start()
    assert eventually(lambda: worker.db.get(t.id) and worker.db[t.id].state is State.RUNNING, 10)
    worker.add_task(dataclasses.replace(t, state=State.COMPLETED))  # a stop takes ~0.2 s
    time.sleep(0.05)
    worker.stop(timeout=0)  # returns while the stop is under way
    worker.start()
    assert worker.running
    again = Task(image=demo_image, state=State.SCHEDULED)
    worker.add_task(again)
    assert eventually(lambda: worker.db.get(again.id) and worker.db[again.id].state is State.RUNNING, 10)


def test_a_port_without_its_protocol_is_published_where_the_task_binds_it(
    worker, client, demo_image, task_name
):
    host = free_port()
    t = Task(name=task_name, image=demo_image, state=State.SCHEDULED, port_bindings={"80": str(host)})
    worker.add_task(t)
    assert worker.run_task().error is None
    assert worker.db[t.id].host_ports == {"80/tcp": host}  # "80" bound nothing, and was published nowhere
    assert "Hello from" in page(host)


@pytest.mark.parametrize("state", [State.PENDING, State.RUNNING, State.COMPLETED, State.FAILED])
def test_a_new_task_queued_as_anything_but_scheduled_is_told_only_a_start_can_begin(offline, state):
    offline.add_task(Task(name="new", image="cube/helloworld-http", state=state))
    error = offline.run_task().error
    assert error == (
        "task new: the worker has no record of it, so only a start can begin: enqueue it as SCHEDULED; "
        "nothing was done"
    )
    assert offline.client is None and len(offline.db) == 0 and len(offline.queue) == 0


def test_a_start_of_a_task_that_ran_says_to_add_a_new_task_not_to_stop_it(worker, demo_image, task_name):
    t = Task(name=task_name, image=demo_image, state=State.SCHEDULED)
    assert worker.start_task(t).error is None
    running = worker.start_task(t).error
    worker.add_task(dataclasses.replace(t, state=State.COMPLETED))
    assert worker.run_task().error is None
    completed = worker.start_task(t).error
    for error, state in ((running, "RUNNING"), (completed, "COMPLETED")):
        assert f"is already {state}" in error and "it cannot start again; add a new Task to rerun it" in error
        assert "stop it" not in error


def test_a_named_task_run_again_takes_its_name_back_from_its_own_ended_container_not_from_others(
    worker, client, demo_image
):
    t = Task(name=f"test-rename-{time.monotonic_ns() % 10**8}", image=demo_image, state=State.SCHEDULED)
    ours = {LABEL_TASK: str(t.id), LABEL_WORKER: worker.name}
    # An earlier start of this task that exited 3, its end recorded, and its container left behind
    # (a removal that failed, or one that another of the worker's threads is still making).
    worker.add_task(dataclasses.replace(t, cmd=["sh", "-c", "exit 3"]))
    assert worker.run_task().error and worker.db[t.id].state is State.FAILED
    old = client.containers.run(demo_image, ["sh", "-c", "exit 3"], name=t.name, labels=ours, detach=True)
    old.wait()
    worker.add_task(t)  # run it again: the demo web server this time
    result = worker.run_task()
    assert result.error is None, result.error
    assert worker.db[t.id].state is State.RUNNING
    assert [c.id for c in mine(client, task=str(t.id))] == [result.container_id], "the old one is removed"

    other = Task(name=f"{t.name}-x", image=demo_image, state=State.SCHEDULED)
    theirs = client.containers.create(demo_image, name=other.name, labels={LABEL_TASK: "someone-else"})
    try:
        worker.add_task(other)
        refused = worker.run_task()
        assert "already exists" in refused.error, "a name another task holds is not taken from it"
        assert client.containers.get(theirs.id).status == "created", "and that container is left alone"
        # One of this task's own, of another start, that was made and not started yet: a start under way
        # (two threads of a worker that lets them race, as the book's does) is not cut short either.
        made = client.containers.create(
            demo_image, name=f"{t.name}-y", labels=ours | {LABEL_ATTEMPT: "earlier"}
        )
        try:
            again = Docker(
                Config.from_task(
                    dataclasses.replace(t, name=made.name, start_time=datetime.now(UTC)), worker.name
                )
            )
            assert "already exists" in again.run().error
            assert client.containers.get(made.id).status == "created", "a container made, not started, stays"
        finally:
            made.remove(force=True)
    finally:
        theirs.remove(force=True)


def test_a_job_that_fails_while_its_stop_only_waits_in_the_queue_is_recorded_failed(
    worker, client, demo_image
):
    t = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "sleep 0.5; exit 3"])
    worker.add_task(t)
    assert worker.run_task().error is None
    worker.add_task(dataclasses.replace(t, state=State.COMPLETED))  # a stop queued, not taken yet
    client.containers.get(worker.db[t.id].container_id).wait()
    (change,) = worker.update_tasks()  # the stop was never sent: what the engine says is recorded
    assert (change.dst, worker.db[t.id].exit_code) == (State.FAILED, 3), change
