"""cube/crashlab.py, and what it shows: a worker killed with SIGKILL at any point of a start, and a
new worker on the same db that carries the start out exactly once. Starts are counted by the engine
itself (`docker events`), containers by listing them."""

import uuid

import pytest
from faults import FaultyEngine
from helpers import Starts, eventually, mine, remove_containers

from cube import State, Task, Worker
from cube.crashlab import AT, crash

pytestmark = pytest.mark.sigkill


@pytest.fixture
def lab(client, tmp_path):
    """A db file and a worker name for one crash; the worker's containers are removed afterwards."""
    name = f"test-crash-{uuid.uuid4().hex[:8]}"
    yield str(tmp_path / "worker.db"), name
    remove_containers(client, name)


@pytest.mark.parametrize("at", AT)
def test_a_start_cut_short_at_any_point_is_carried_out_once_by_the_next_worker(lab, client, demo_image, at):
    db, name = lab
    task = Task(image=demo_image, state=State.SCHEDULED)
    starts = Starts(client, f"cube.task={task.id}")
    said = crash(db, name, task, at)  # the child's last words
    left = [c.id for c in mine(client, task=str(task.id))]

    with Worker(name, client, db_path=db) as w:  # it reconciles
        t = w.db[task.id]
        assert t.state is State.RUNNING and w.store.busy() == {}, t.reason
        assert [c.id for c in mine(client, task=str(task.id))] == [t.container_id], "one container, no leak"
        assert [(m.src, m.dst) for m in w.history(task.id)] == [
            (None, State.SCHEDULED),
            (State.SCHEDULED, State.RUNNING),
        ]
        assert starts.close()[str(task.id)] == 1
    if at == "before create":
        assert left == [] and said.startswith("creating a container")
    elif at == "after create":  # never started: replaced
        assert (
            len(left) == 1
            and t.container_id not in left
            and said.startswith(f"created container {left[0][:12]}")
        )
    elif at == "after start":  # it ran: adopted, not started again
        assert left == [t.container_id] and t.reason == f"adopted its running container {t.container_id[:12]}"
    else:  # recorded before the crash: nothing was half done
        assert left == [t.container_id] and t.reason == f"started container {t.container_id[:12]}"
        assert said.endswith(f"SCHEDULED -> RUNNING: {t.reason}")


@pytest.mark.parametrize("code", [0, 3])
@pytest.mark.parametrize("at", AT)
def test_a_short_job_cut_short_at_any_point_runs_once_and_its_exit_code_is_recorded(
    lab, client, demo_image, at, code
):
    db, name = lab
    job = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", f"sleep 0.3; exit {code}"])
    starts = Starts(client, f"cube.task={job.id}")
    crash(db, name, job, at)
    running = {"label": f"cube.worker={name}", "status": "running"}
    assert eventually(lambda: not client.containers.list(filters=running))  # a job started ends unseen

    with Worker(name, client, db_path=db) as w:
        assert eventually(lambda: w.update_tasks() is not None and w.db[job.id].state is not State.RUNNING)
        t = w.db[job.id]
        assert starts.close()[str(job.id)] == 1, "the job ran once"
        assert (t.state, t.exit_code) == (State.COMPLETED if code == 0 else State.FAILED, code), t.reason
        if at == "after start":  # it ran and ended unseen: adopted with its exit code
            assert t.reason == f"its container exited with code {code} while no worker watched"
    assert mine(client, worker=name) == [], "a finished task has no container"


def test_a_point_that_is_not_one_of_a_start_is_a_value_error_naming_them(lab, demo_image):
    with pytest.raises(
        ValueError, match="'before create', 'after create', 'after start', 'after the record'"
    ):
        crash(*lab, Task(image=demo_image), "after lunch")


def test_a_start_that_fails_before_the_point_is_an_error_not_a_hang(lab, client):
    db, name = lab
    with pytest.raises(RuntimeError, match="never reached 'after start'"):
        crash(db, name, Task(image="cube/no-such-image:1", state=State.SCHEDULED), "after start")
    with Worker(name, client, db_path=db) as w:
        assert [t.state for t in w.db.values()] == [State.FAILED], "the child recorded its failure"


def test_an_adoption_the_engine_refuses_to_list_for_waits_and_adopts_the_running_job_with_a_faked_500(
    lab, client, demo_image
):
    db, name = lab
    task = Task(image=demo_image, state=State.SCHEDULED, cmd=["sleep", "30"])
    starts = Starts(client, f"cube.task={task.id}")
    crash(db, name, task, "after start")  # the job runs; no worker recorded it
    refused = []  # the survivor's first list of the task's containers gets a made-up 500

    def rule(method, path):
        return (
            "forward" if refused or not path.endswith("/containers/json") else refused.append(1) or "refuse"
        )

    engine = FaultyEngine(rule)
    try:
        with Worker(name, engine.client(), db_path=db) as survivor:  # reconciles: the adoption is refused
            waiting = survivor.db[task.id]
            assert waiting.state is State.SCHEDULED, f"not a verdict on the job: {waiting.reason}"
            (running,) = mine(client, task=str(task.id))
            assert running.status == "running", "the job that runs is kept"
            assert survivor.run_task().result == "adopted", "asked again, the start adopts it"
            assert survivor.db[task.id].container_id == running.id
        assert starts.close()[str(task.id)] == 1, "the job was started once"
    finally:
        engine.close()
