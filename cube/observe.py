"""What the engine says (Observed, DockerResult of listing 4.6, EngineError), and the worker's pure
rules for what it means for a task: no engine, no store. A container that runs (or that Docker
restarts) is RUNNING; exit 0 is COMPLETED; another code, an out-of-memory kill or a container gone is
FAILED, with the code and why; a stop asked for is COMPLETED; a start or stop begins only as the map
allows, one at a time on a task.
"""

import copy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from cube.state import FINAL_STATES, State, valid_state_transition
from cube.task import LABEL_ATTEMPT, Config, Task

GONE = "gone"  # the status of a container the engine no longer has
PAUSED = "its container is paused"
WAITING = "waiting for the Docker engine to answer"  # a request it did not answer waits to be tried again


@dataclass
class Observed:
    """What the engine says of one container now. status is Docker's word (created, running, paused,
    restarting, removing, exited, dead), or "gone"; started_at is None for one that never started."""

    container_id: str
    status: str = GONE
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    started_at: datetime | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    host_ports: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    error: str = ""  # the engine's own error for this container, e.g. why it could not start
    memory: int = 0  # its memory limit in bytes, as the engine applies it (0: none)

    @property
    def ended(self) -> bool:
        """True if the container will not run again by itself."""
        return self.status in ("exited", "dead", GONE)

    @classmethod
    def from_inspect(cls, attrs: dict) -> "Observed":
        state, ports = attrs["State"], attrs["NetworkSettings"].get("Ports") or {}
        return cls(
            container_id=attrs["Id"],
            status=state["Status"],
            exit_code=state["ExitCode"] if state["Status"] in ("exited", "dead") else None,
            oom_killed=state.get("OOMKilled", False),
            restart_count=attrs.get("RestartCount", 0),
            started_at=_time(state.get("StartedAt")),
            created_at=_time(attrs.get("Created")),
            finished_at=_time(state.get("FinishedAt")),
            host_ports={
                p: _ipv4_first([(b["HostIp"], b["HostPort"]) for b in bs]) for p, bs in ports.items() if bs
            },
            labels=attrs["Config"].get("Labels") or {},
            error=state.get("Error", ""),
            memory=(attrs.get("HostConfig") or {}).get("Memory") or 0,
        )

    @classmethod
    def from_summary(cls, summary: dict) -> "Observed":
        """From one entry of a container list: status, ports and labels only."""
        published: dict[str, list] = {}
        for p in (p for p in summary["Ports"] if "PublicPort" in p):
            port = f"{p['PrivatePort']}/{p['Type']}"
            published.setdefault(port, []).append((p.get("IP", ""), p["PublicPort"]))
        ports = {port: _ipv4_first(bindings) for port, bindings in published.items()}
        return cls(summary["Id"], summary["State"], host_ports=ports, labels=summary.get("Labels") or {})


@dataclass
class DockerResult:
    """The outcome of one operation on the engine (listing 4.6).

    error is None on success, else a sentence a person can act on; unreachable is True when no engine
    answered, or when run() could not read what its start became (with adopt=True: what a start cut
    short left): the outcome is not known; ask again later, adopting it. host_ports maps each
    published container port to its host port after a successful run, e.g. {"80/tcp": 49153}.
    observed is what the engine said of the container at the end of the operation, when it was asked.
    """

    error: str | None = None
    action: str = ""
    container_id: str = ""
    result: str = ""
    host_ports: dict[str, int] = field(default_factory=dict)
    observed: Observed | None = None
    unreachable: bool = False


class EngineError(Exception):
    """A call to the engine failed; str() says what failed, for what, and what to do. step is what was
    asked ("create", "pull", "start", "stop", "inspect", "list", "stats", ...); unreachable: no engine
    answered; status: the engine's HTTP status."""

    def __init__(self, step: str, message: str, unreachable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.step, self.unreachable, self.status = step, unreachable, status


def explain(step: str, status: int | None, name: str, image: str) -> str | None:
    """What the engine's refusal of a step means, where its own words would mislead; else None."""
    if step == "pull":
        registry = "has no such image" if status == 404 else "could not be reached"
        return (
            f"image {image!r} is not on this machine and the registry {registry}. Check the image name, or "
            "build the image here first (cube.ensure_demo_image() builds the demo web server)."
        )
    if (step, status) == ("create", 409):
        return f"a container named {name!r} already exists. Name the task otherwise, or `docker rm -f {name}`"
    if (step, status) == ("start", 409):  # created a moment ago: someone is removing it, or paused it
        return (
            "the engine refused to start it: someone else (another worker, `docker rm`) removes or changes it"
        )
    return None


def refusal(task: Task, known: Task | None, op: str, busy: str, worker: str) -> str | None:
    """Why `op` ("start", "stop") may not begin now, or None; known: the record, busy: the op under way."""
    label = task.name or task.id
    if busy:
        doing = {"start": "started", "stop": "stopped"}[busy]
        return f"task {label} is being {doing} by another thread; try again when it is done"
    if op == "stop" and known is None:
        return f"worker {worker} has no record of task {label}: there is nothing to stop"
    wanted = State.SCHEDULED if op == "start" else State.COMPLETED
    if known and not valid_state_transition(known.state, wanted):
        if op == "stop":
            return f"task {label} is already {known.state}: there is nothing to stop"
        where = f" in container {known.container_id[:12]}" if known.container_id else ""
        return (
            f"task {label} is already {known.state}{where}: it cannot start again; add a new Task to rerun it"
        )
    return None


def intent(task: Task, since: datetime | None = None) -> Task:
    """The task as recorded before it is started: SCHEDULED, nothing observed yet, and its start time (now,
    or `since`: that of a start cut short being finished, so that its container's label is found)."""
    start_time = since or datetime.now(UTC)
    return replace(copy.deepcopy(task), state=State.SCHEDULED, container_id="", host_ports={}, exit_code=None,
                   restarts=0, reason="starting", start_time=start_time, finish_time=None)  # fmt: skip


def started(task: Task, result: DockerResult) -> Task:
    """The task after Docker.run() answered: RUNNING, or COMPLETED or FAILED if it has ended."""
    seen, done = result.observed, replace(task, container_id=result.container_id)
    if result.error:
        done.state, done.reason = State.FAILED, result.error
        done.exit_code, done.finish_time = seen and seen.exit_code, seen and seen.finished_at
        done.finish_time = done.finish_time or datetime.now(UTC)
        return done
    if seen.ended:  # it did its work before anyone saw it run
        ended, how = observed(replace(done, state=State.RUNNING), seen), describe_exit(seen)
        unseen = f"its container {how} while no worker watched" if result.result == "adopted" else ""
        return replace(ended, reason=unseen or f"finished its work at once: {how}")
    done.state, done.host_ports, done.restarts = State.RUNNING, result.host_ports, seen.restart_count
    verb = "adopted its running" if result.result == "adopted" else "started"
    done.reason = f"{verb} container {done.container_id[:12]}"
    if seen.status == "restarting":
        done.reason += ", which Docker is restarting under its restart policy"
    return done


def stopped(task: Task, result: DockerResult) -> Task:
    """The task after a stop it was asked for succeeded: COMPLETED, when its container ended."""
    ended = result.observed and result.observed.finished_at
    done = replace(task, state=State.COMPLETED, finish_time=ended or datetime.now(UTC))
    done.exit_code = result.observed.exit_code if result.observed else None
    done.reason = "stopped on request" + ("" if result.result == "success" else f": {result.result}")
    return done


def unstopped(task: Task, result: DockerResult) -> Task:
    """The task after a stop that failed: as it was, but not waiting for the engine, which has answered."""
    return replace(task, reason=f"its stop failed: {result.error}") if task.reason == WAITING else task


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
        elif new.restarts < task.restarts:  # as `docker restart` does: it sets the count back to 0
            new.reason = "its container was restarted outside cube; Docker counts its restarts from 0 again"
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


def of_attempt(seen: Observed, config: Config) -> bool:
    """True if the container was made by the start the config is for (the LABEL_ATTEMPT it gives); one an
    older cube made, with no such label, if it was created after that start's intent was recorded."""
    if (attempt := config.labels.get(LABEL_ATTEMPT)) is None:  # a Config made by hand: any start's
        return True
    if LABEL_ATTEMPT in seen.labels:
        return seen.labels[LABEL_ATTEMPT] == attempt
    return bool(seen.created_at and seen.created_at >= datetime.fromisoformat(attempt))


def unneeded(task: Task | None, seen: Observed) -> bool:
    """True if no task needs this container of the worker's: its task has finished, or runs in another."""
    running_elsewhere = task and task.state is State.RUNNING and task.container_id != seen.container_id
    return bool(task and task.state in FINAL_STATES or running_elsewhere)


def describe_exit(seen: Observed) -> str:
    """How a container ended, in words: "exited with code 3", "was killed: out of memory"."""
    code = seen.exit_code
    if seen.status == GONE:
        return "was removed outside cube"
    if seen.oom_killed:
        return "was killed: out of memory"
    if code is not None and code - 128 in _SIGNALS:
        return f"exited with code {code} (killed by {_SIGNALS[code - 128]})"
    return f"exited with code {code}" + (f": {seen.error}" if seen.error else "")


_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 15: "SIGTERM"}


def _ipv4_first(bindings: list[tuple[str, str | int]]) -> int:
    """The host port of a published port: its IPv4 binding's. Docker may publish one port twice,
    on 0.0.0.0 and on ::, with two different host ports."""
    return int(sorted(bindings, key=lambda b: ":" in b[0])[0][1])  # stable: IPv4 addresses first


def _time(text: str | None) -> datetime | None:
    """A Docker timestamp ("2024-05-01T10:00:00.123456789Z") as a UTC datetime; None if unset."""
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(rest[:6] or '0').ljust(6, '0')}+00:00")
