"""What a task is: the Task record (listing 4.1), checked by a table of RULES, and the container
Config made from it. Besides the book's fields a Task keeps what was last observed of its container."""

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime

from cube.state import State

# Docker's restart policies; "on-failure:N" gives up after N restarts, "no" is the same as "".
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure", "on-failure:N")
MIN_MEMORY = 6 * 2**20  # Docker refuses a memory limit below 6 MiB
MIN_CPU = 0.01  # Docker's smallest CPU limit: below it the container is made, then fails to start
MAX_BYTES = 2**63 - 1  # the engine reads limits as int64

# Every container cube creates carries LABEL_TASK; `docker ps --filter label=cube.task` lists them.
LABEL_TASK = "cube.task"
LABEL_WORKER = "cube.worker"
LABEL_ATTEMPT = "cube.attempt"  # which start of the task made it: the time its intent was recorded


class TaskError(ValueError):
    """A field of a Task holds an impossible value, or one the engine would refuse or ignore."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class Task:
    """One piece of work for a worker, run as one container.

    cpu is in cores (0.5: half a core), memory and disk in bytes; 0 means "no limit". exposed_ports
    holds container ports ("80/tcp"), port_bindings maps one to a host port (else a random one); cmd
    replaces the image's command. The worker fills in what it observes: host_ports, exit_code,
    restarts and reason (why the task is in its state). Times are timezone-aware UTC, or None.

    Raises:
        TaskError: a field holds an impossible value; .field names it.
    """

    name: str = ""
    image: str = ""
    state: State = State.PENDING
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    container_id: str = ""
    cpu: float = 0.0
    memory: int = 0
    disk: int = 0
    exposed_ports: set[str] = field(default_factory=set)
    port_bindings: dict[str, str] = field(default_factory=dict)
    restart_policy: str = ""
    cmd: list[str] = field(default_factory=list)
    start_time: datetime | None = None
    finish_time: datetime | None = None
    host_ports: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    restarts: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field against RULES; raise TaskError for the first rule a value breaks."""
        for name, ok, says in RULES:
            value = getattr(self, name)
            if not ok(value):
                raise TaskError(name, says(value) if callable(says) else says.format(value))

    def to_dict(self) -> dict:
        """The task as plain JSON types: states by name, times in ISO 8601, sets as sorted lists."""
        d = {f.name: copy.copy(getattr(self, f.name)) for f in fields(self)}  # asdict() is 4x slower
        d["id"], d["state"], d["exposed_ports"] = str(self.id), self.state.name, sorted(self.exposed_ports)
        for name in ("start_time", "finish_time"):
            d[name] = d[name] and d[name].isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        """The inverse of to_dict; TaskError names a field that is unknown or impossible."""
        if not isinstance(d, dict):
            raise TaskError("task", f"expected a dict of a Task's fields, got {type(d).__name__}")
        d = dict(d)
        unknown = sorted(map(str, set(d) - {f.name for f in fields(cls)}))
        if unknown:
            raise TaskError(unknown[0], f"{', '.join(unknown)}: not a field of Task")
        for name, parse in _PARSERS.items():
            if d.get(name) is not None:
                try:
                    d[name] = parse(d[name])
                except (KeyError, ValueError, TypeError, AttributeError):
                    raise TaskError(name, f"cannot read {d[name]!r} as a {name}") from None
        ports = d.get("exposed_ports", ())
        if isinstance(ports, list | tuple) and all(isinstance(p, str) for p in ports):  # else RULES refuse it
            d["exposed_ports"] = set(ports)
        return cls(**d)


def _fits(pattern: str, value: object) -> bool:  # ASCII: \d would let "٨٠" through as 80
    return isinstance(value, str) and re.fullmatch(pattern, value, re.ASCII) is not None


def _text(value: object) -> bool:  # a string JSON and the engine can carry: no lone surrogate
    return isinstance(value, str) and not re.search("[\ud800-\udfff]", value)


def _port(value: object) -> bool:  # a container port such as "80/tcp" ("80" is TCP), 1-65535
    return _fits(r"\d{1,5}(/tcp|/udp|/sctp)?", value) and 0 < int(value.partition("/")[0]) < 65536


def _host_port(value: object) -> bool:  # five digits at most: int() refuses a string of 4,301
    return _fits(r"\d{1,5}", str(value)) and 0 < int(value) < 65536


def _published(ports: object) -> bool:  # what the engine published: a container port -> its host port
    return isinstance(ports, dict) and all(
        _port(p) and type(h) is int and 0 < h < 65536 for p, h in ports.items()
    )


def _not_a_port(ports) -> str:
    return next(f"{p!r} is not a port like '80/tcp'" for p in ports if not _port(p))


def _bytes(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_BYTES


def _when(value: object) -> bool:
    return value is None or isinstance(value, datetime) and value.tzinfo is not None


_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # Docker's own rule: two characters at least
_LEAST_MEMORY = f"Docker's smallest limit is 6 MiB ({MIN_MEMORY} bytes), got {{}}"
_NEEDS_IMAGE = "a task needs an image to run, e.g. image='cube/helloworld-http'"
_NAMING = "{!r} cannot name a container; use two or more letters, digits, '_', '.' or '-', starting with "
_NAMING += "a letter or digit (or '' to let Docker choose)"

# The rules of a Task, in the order they are checked: a field, a test its value must pass, and what
# to say of a value that fails it ({!r} is the value).
RULES: list[tuple[str, Callable[[object], bool], str | Callable[[object], str]]] = [
    ("id", lambda v: isinstance(v, uuid.UUID), "expected a uuid.UUID, got {!r}"),
    ("state", lambda v: isinstance(v, State), "expected a cube.State such as State.SCHEDULED, got {!r}"),
    ("image", lambda v: v and isinstance(v, str), _NEEDS_IMAGE),
    ("image", _text, "{!r} holds a lone surrogate (half of a UTF-16 pair): it cannot name an image"),
    ("name", lambda v: isinstance(v, str) and (not v or _NAME.fullmatch(v)), _NAMING),
    ("cpu", lambda v: type(v) in (int, float) and (v == 0 or MIN_CPU <= v < 1e6),
     f"must be 0 (no limit) or a number of cores from {MIN_CPU}, got {{!r}}"),
    ("memory", _bytes, "must be a whole number of bytes >= 0 (0: no limit), got {!r}"),
    ("memory", lambda v: not 0 < v < MIN_MEMORY, _LEAST_MEMORY),
    ("disk", _bytes, "must be a whole number of bytes >= 0 (0: no limit), got {!r}"),
    ("restart_policy", lambda v: v in RESTART_POLICIES[:5] or _fits(r"on-failure:\d{1,9}", v),
     "{!r} is not one of " + ", ".join(map(repr, RESTART_POLICIES))),
    ("cmd", lambda v: isinstance(v, list) and all(map(_text, v)),
     "must be a list of strings such as ['sh', '-c', 'exit 3'] (no lone surrogate), got {!r}"),
    ("exposed_ports", lambda v: isinstance(v, set | frozenset | list | tuple),
     "must be a set of ports like {{'80/tcp'}}, got {!r}"),
    ("exposed_ports", lambda v: all(map(_port, v)), _not_a_port),
    ("port_bindings", lambda v: isinstance(v, dict), "must be a dict like {{'80/tcp': '8080'}}, got {!r}"),
    ("port_bindings", lambda v: all(map(_port, v)), _not_a_port),
    ("port_bindings", lambda v: all(map(_host_port, v.values())), lambda v: next(
        f"host port {h!r} for {p} is not in 1-65535" for p, h in v.items() if not _host_port(h))),
    ("start_time", _when, "must be a timezone-aware datetime or None, got {!r}"),
    ("finish_time", _when, "must be a timezone-aware datetime or None, got {!r}"),
    ("host_ports", _published, "must be a dict of host ports like {{'80/tcp': 32768}}, got {!r}"),
    ("exit_code", lambda v: v is None or type(v) is int, "must be a whole number or None, got {!r}"),
    ("restarts", lambda v: type(v) is int and v >= 0, "must be a whole number >= 0, got {!r}"),
]  # fmt: skip

_PARSERS = {"id": uuid.UUID, "state": lambda name: State[name], "start_time": datetime.fromisoformat,
            "finish_time": datetime.fromisoformat}  # fmt: skip


@dataclass
class Config:
    """How to create a task's container: what the Docker wrapper needs and no more."""

    name: str
    image: str
    cpu: float = 0.0
    memory: int = 0
    disk: int = 0
    exposed_ports: set[str] = field(default_factory=set)
    port_bindings: dict[str, str] = field(default_factory=dict)
    restart_policy: str = ""
    env: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def host_config(self) -> dict:
        """How the engine should host the container: its HostConfig, as `docker inspect` shows it."""
        policy, _, retries = self.restart_policy.partition(":")  # Docker's spelling: "on-failure:3"
        return {
            "PortBindings": {p: [{"HostIp": "", "HostPort": str(h or "")}] for p, h in self.ports().items()},
            # Publish what the image EXPOSEs too, as the book does; but not when the task binds ports
            # itself: the engine would publish those a second time, on random host ports.
            "PublishAllPorts": not self.port_bindings,
            "Init": True,  # a PID 1 that passes SIGTERM on: a stop takes no 10 s
            "NanoCpus": int(self.cpu * 1e9),
            "Memory": self.memory,
            "RestartPolicy": {"Name": policy or "no", "MaximumRetryCount": int(retries or 0)},
        }

    def ports(self) -> dict[str, str | None]:
        """Each container port to publish ("80" is "80/tcp"), and its host port (None: the engine picks)."""
        full = {p: p if "/" in p else f"{p}/tcp" for p in [*self.exposed_ports, *self.port_bindings]}
        bound = {full[p]: host for p, host in self.port_bindings.items()}  # the engine reads "80" as no port
        return {full[p]: bound.get(full[p]) for p in self.exposed_ports} | bound

    @classmethod
    def from_task(cls, task: Task, worker: str = "") -> "Config":
        """The book's NewConfig. Labels mark the container as cube's, for its task, worker and attempt."""
        task.validate()  # a field set since the Task was made, too: TaskError names it
        labels = {LABEL_TASK: str(task.id)} | ({LABEL_WORKER: worker} if worker else {})
        labels |= {LABEL_ATTEMPT: task.start_time.isoformat()} if task.start_time else {}
        shared = {f.name: copy.deepcopy(getattr(task, f.name)) for f in fields(cls) if hasattr(task, f.name)}
        return cls(**shared, labels=labels)
