"""cube/observe.py: the rules that turn what the engine says into a task's state. Pure logic, so
the engine's answers here are made up (Observed and DockerResult values), not asked for."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cube import Config, DockerResult, State, Task
from cube.docker import Observed
from cube.observe import observed, of_attempt, started, stopped
from cube.task import LABEL_ATTEMPT

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def running() -> Task:
    return Task(image="img", state=State.RUNNING, container_id="c1", host_ports={"80/tcp": 1000})


def seen(status: str, **kw) -> Observed:
    return Observed("c1", status, **kw)


@pytest.mark.parametrize(
    ("observation", "state", "exit_code", "reason"),
    [
        (
            seen("exited", exit_code=0, finished_at=NOW),
            State.COMPLETED,
            0,
            "its container exited with code 0",
        ),
        (seen("exited", exit_code=3, finished_at=NOW), State.FAILED, 3, "its container exited with code 3"),
        (
            seen("exited", exit_code=137, oom_killed=True, finished_at=NOW),
            State.FAILED,
            137,
            "its container was killed: out of memory",
        ),
        (
            seen("exited", exit_code=137, finished_at=NOW),
            State.FAILED,
            137,
            "its container exited with code 137 (killed by SIGKILL)",
        ),
        (seen("dead", exit_code=1), State.FAILED, 1, "its container exited with code 1"),
        (seen("gone"), State.FAILED, None, "its container was removed outside cube"),
    ],
    ids=["exit-0", "exit-3", "oom", "sigkill", "dead", "gone"],
)
def test_an_ended_container_finishes_the_task(running, observation, state, exit_code, reason):
    new = observed(running, observation)
    assert (new.state, new.exit_code, new.reason) == (state, exit_code, reason)
    assert new.finish_time is not None


def test_a_container_that_runs_as_recorded_changes_nothing(running):
    assert observed(running, seen("running", host_ports={"80/tcp": 1000})) is None


def test_new_host_ports_are_recorded_with_the_reason(running):
    new = observed(running, seen("running", host_ports={"80/tcp": 2000}))
    assert new.state is State.RUNNING and new.host_ports == {"80/tcp": 2000}
    assert new.reason == "its container was restarted; host ports are now 80/tcp -> 2000"


def test_restarting_under_a_restart_policy_is_still_running_and_counted(running):
    new = observed(running, seen("restarting", restart_count=2))
    assert (new.state, new.restarts) == (State.RUNNING, 2)
    assert new.reason == "restarted by Docker under its restart policy (2 restarts so far)"
    assert observed(new, seen("restarting", restart_count=2)) is None, "no news is no change"


def test_a_restart_outside_cube_that_sets_the_count_back_is_not_called_the_policys(running):
    restarted = replace(running, restarts=2)  # `docker restart` sets Docker's count back to 0 (helper-33)
    new = observed(restarted, seen("running", restart_count=0, host_ports={"80/tcp": 1000}))
    assert (new.state, new.restarts) == (State.RUNNING, 0)
    assert new.reason == "its container was restarted outside cube; Docker counts its restarts from 0 again"


def test_paused_and_unpaused(running):
    paused = observed(running, seen("paused", host_ports={"80/tcp": 1000}))
    assert paused.state is State.RUNNING and paused.reason == "its container is paused"
    again = observed(paused, seen("running", host_ports={"80/tcp": 1000}))
    assert again.reason == "its container runs again"


@pytest.mark.parametrize("status", ["created", "removing"])
def test_a_container_in_between_tells_nothing_yet(running, status):
    assert observed(running, seen(status)) is None


def test_a_start_is_running_completed_or_failed_as_the_engine_says():
    intent = Task(image="img", state=State.SCHEDULED)
    ok = started(
        intent, DockerResult(action="start", container_id="c1", result="success", observed=seen("running"))
    )
    assert (ok.state, ok.container_id, ok.reason) == (State.RUNNING, "c1", "started container c1")

    job = started(
        intent, DockerResult(container_id="c1", observed=seen("exited", exit_code=0, finished_at=NOW))
    )
    assert (job.state, job.exit_code, job.finish_time) == (State.COMPLETED, 0, NOW)

    error = "could not start task: its container exited with code 127 right after it started"
    bad = started(
        intent, DockerResult(error=error, container_id="c1", observed=seen("exited", exit_code=127))
    )
    assert (bad.state, bad.exit_code, bad.reason) == (State.FAILED, 127, error)
    assert bad.finish_time is not None

    adopted = started(intent, DockerResult(container_id="c2", result="adopted", observed=seen("running")))
    assert adopted.reason == "adopted its running container c2"


def test_a_stop_that_was_asked_for_is_completed_whatever_the_exit_code(running):
    done = stopped(
        running, DockerResult(action="stop", result="success", observed=seen("exited", exit_code=143))
    )
    assert (done.state, done.exit_code, done.reason) == (State.COMPLETED, 143, "stopped on request")
    gone = stopped(running, DockerResult(action="stop", result="already gone"))
    assert (gone.state, gone.exit_code, gone.reason) == (
        State.COMPLETED,
        None,
        "stopped on request: already gone",
    )
    said = "it had already exited with code 3"  # Docker.stop found it exited by itself: its code, its time
    exited = stopped(
        running, DockerResult(result=said, observed=seen("exited", exit_code=3, finished_at=NOW))
    )
    assert (exited.state, exited.exit_code, exited.finish_time) == (State.COMPLETED, 3, NOW)
    assert exited.reason == f"stopped on request: {said}"


def test_a_container_is_of_the_start_its_attempt_label_names_or_unlabelled_made_after_the_intent_pure():
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    config = Config.from_task(Task(image="x", start_time=at))
    mine, other = {LABEL_ATTEMPT: at.isoformat()}, {LABEL_ATTEMPT: "2026-11-30T10:00:00+00:00"}
    assert of_attempt(Observed("a", labels=mine), config)
    assert not of_attempt(Observed("b", labels=other), config)
    # an older cube labelled no attempt: made after the intent, it is this start's; before, an older one's
    assert of_attempt(Observed("c", created_at=at.replace(second=1)), config)
    assert not of_attempt(Observed("d", created_at=at.replace(hour=9)), config)
    assert not of_attempt(Observed("e"), config), "no creation time known: not this start's"
    assert of_attempt(Observed("f", labels=other), Config("n", "x")), "a Config by hand: any start's"
