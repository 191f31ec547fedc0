"""What the engine's answer means for a task: the worker's rules for observed state.

Pure functions, no engine and no store: each takes the worker's record of a task and what the
engine said, and returns the record as it should be now. The worker asks the engine, calls these,
and records the result. Kept apart so that the rules can be read, and tested, on their own:

- a container that runs (or that Docker is restarting under the task's restart policy) is RUNNING;
- exit code 0 is COMPLETED; any other exit code, an out-of-memory kill, or a container that is
  gone is FAILED, with the exit code and a reason in words;
- a stop the worker was asked for is COMPLETED, whatever code the container exited with.
"""

from dataclasses import replace
from datetime import UTC, datetime

from cube.docker import DockerResult, Observed, describe_exit
from cube.state import State
from cube.task import Task

PAUSED = "its container is paused"


def started(task: Task, result: DockerResult) -> Task:
    """The task after Docker.run() (or an adoption) answered: RUNNING, COMPLETED or FAILED."""
    seen, container_id = result.observed, result.container_id
    if result.error:
        done = replace(task, state=State.FAILED, container_id=container_id, reason=result.error)
        if seen:
            done.exit_code, done.finish_time = seen.exit_code, seen.finished_at
        done.finish_time = done.finish_time or datetime.now(UTC)
        return done
    if seen.ended:  # it did its work and exited 0 before anyone saw it run
        done = replace(task, state=State.COMPLETED, container_id=container_id, exit_code=0)
        done.finish_time, done.reason = seen.finished_at, "finished its work at once: exited with code 0"
        return done
    done = replace(task, state=State.RUNNING, container_id=container_id, host_ports=result.host_ports)
    done.restarts = seen.restart_count
    verb = "adopted its running" if result.result == "adopted" else "started"
    done.reason = f"{verb} container {container_id[:12]}"
    if seen.status == "restarting":
        done.reason += ", which Docker is restarting under its restart policy"
    return done


def stopped(task: Task, result: DockerResult) -> Task:
    """The task after a stop it was asked for succeeded: COMPLETED."""
    done = replace(task, state=State.COMPLETED, finish_time=datetime.now(UTC))
    done.exit_code = result.observed.exit_code if result.observed else None
    done.reason = "stopped on request" + ("" if result.result == "success" else f" ({result.result})")
    return done


def observed(task: Task, seen: Observed) -> Task | None:
    """A RUNNING task as its container is now; None if there is nothing new to record."""
    if seen.ended:
        failed = seen.oom_killed or seen.exit_code != 0
        new = replace(task, state=State.FAILED if failed else State.COMPLETED, exit_code=seen.exit_code)
        new.finish_time = seen.finished_at or datetime.now(UTC)
        new.reason = f"its container {describe_exit(seen)}"
    elif seen.status in ("running", "restarting", "paused"):
        new = replace(task, host_ports=seen.host_ports or task.host_ports, restarts=seen.restart_count)
        if seen.status == "paused":
            new.reason = PAUSED
        elif seen.status == "restarting" or new.restarts != task.restarts:
            new.reason = f"restarted by Docker under its restart policy ({new.restarts} restarts so far)"
        elif new.host_ports != task.host_ports:
            ports = ", ".join(f"{p} -> {h}" for p, h in new.host_ports.items())
            new.reason = f"its container was restarted; host ports are now {ports}"
        elif task.reason == PAUSED:
            new.reason = "its container runs again"
    else:  # created, or being removed: nothing to tell yet
        return None
    return None if new == task else new
