"""What a task is: the Task record (listing 4.1) and the container Config made from it.

A task is the smallest unit of work, and it runs as exactly one container. Besides the book's
fields, a Task records what the worker last observed of its container: the host ports, the exit
code, how many times Docker restarted it, and a reason for its state, in words.
"""

import re
import uuid
from dataclasses import asdict, dataclass, field, fields
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

# Docker's own rule for container names: two characters at least.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_ON_FAILURE = re.compile(r"on-failure(:\d+)?")


@dataclass
class Task:
    """One unit of work for a worker, run as one container.

    cpu is in cores (0.5 is half a core), memory and disk in bytes; 0 means "no limit".
    exposed_ports holds container ports such as "80/tcp"; port_bindings maps a container port to
    the host port to publish it on (an exposed port with no binding gets a random host port).
    cmd replaces the image's command, e.g. ["sh", "-c", "exit 3"]; empty keeps the image's own.
    The worker fills in the rest from what the engine reports: host_ports (container port -> host
    port, as published now), exit_code (None until the container exits), restarts (how many times
    Docker restarted the container under its restart policy) and reason (why the task is in its
    state, e.g. "exited with code 3"). Times are timezone-aware UTC datetimes, or None until they
    happen.

    Raises:
        ValueError: a field holds an impossible value; the message names the field.
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
        """Check every field; raise ValueError naming the first one that is impossible, or that the
        engine would refuse or quietly ignore."""
        if not isinstance(self.id, uuid.UUID):
            raise ValueError(f"id: expected a uuid.UUID, got {self.id!r}")
        if not isinstance(self.state, State):
            raise ValueError(f"state: expected a cube.State such as State.SCHEDULED, got {self.state!r}")
        if not self.image or not isinstance(self.image, str):
            raise ValueError("image: a task needs an image to run, e.g. image='cube/helloworld-http'")
        if not isinstance(self.name, str) or self.name and not _NAME.fullmatch(self.name):
            raise ValueError(
                f"name: {self.name!r} cannot name a container; use two or more letters, digits, "
                "'_', '.' or '-', starting with a letter or digit (or '' to let Docker choose)"
            )
        self._check_limits()
        policy = self.restart_policy
        if not isinstance(policy, str) or not (
            policy in RESTART_POLICIES[:4] or _ON_FAILURE.fullmatch(policy)
        ):
            choices = ", ".join(map(repr, RESTART_POLICIES))
            raise ValueError(f"restart_policy: {policy!r} is not one of {choices}")
        if not isinstance(self.cmd, list) or not all(isinstance(arg, str) for arg in self.cmd):
            raise ValueError(
                f"cmd: must be a list of strings such as ['sh', '-c', 'exit 3'], got {self.cmd!r}"
            )
        self._check_ports()
        for name in ("start_time", "finish_time"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise ValueError(f"{name}: must be a timezone-aware datetime or None, got {value!r}")
        if self.exit_code is not None and (type(self.exit_code) is not int):
            raise ValueError(f"exit_code: must be a whole number or None, got {self.exit_code!r}")
        if type(self.restarts) is not int or self.restarts < 0:
            raise ValueError(f"restarts: must be a whole number >= 0, got {self.restarts!r}")

    def _check_limits(self) -> None:
        cpu = self.cpu
        if (
            isinstance(cpu, bool)
            or not isinstance(cpu, int | float)
            or not (cpu == 0 or MIN_CPU <= cpu < 1e6)
        ):
            raise ValueError(f"cpu: must be 0 (no limit) or a number of cores from {MIN_CPU}, got {cpu!r}")
        for name in ("memory", "disk"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_BYTES:
                raise ValueError(f"{name}: must be a whole number of bytes >= 0 (0: no limit), got {value!r}")
        if 0 < self.memory < MIN_MEMORY:
            raise ValueError(
                f"memory: Docker's smallest limit is 6 MiB ({MIN_MEMORY} bytes), got {self.memory}"
            )

    def _check_ports(self) -> None:
        if not isinstance(self.exposed_ports, set | frozenset | list | tuple):
            raise ValueError(
                f"exposed_ports: must be a set of ports like {{'80/tcp'}}, got {self.exposed_ports!r}"
            )
        if not isinstance(self.port_bindings, dict):
            raise ValueError(
                f"port_bindings: must be a dict like {{'80/tcp': '8080'}}, got {self.port_bindings!r}"
            )
        for field_name, ports in (
            ("exposed_ports", self.exposed_ports),
            ("port_bindings", self.port_bindings),
        ):
            for port in ports:
                number, _, protocol = str(port).partition("/")
                if (
                    not isinstance(port, str)
                    or not _is_port(number)
                    or protocol not in ("", "tcp", "udp", "sctp")
                ):
                    raise ValueError(f"{field_name}: {port!r} is not a port like '80/tcp'")
        for port, host_port in self.port_bindings.items():
            if not _is_port(str(host_port)):
                raise ValueError(f"port_bindings: host port {host_port!r} for {port} is not in 1-65535")

    def to_dict(self) -> dict:
        """The task as plain JSON types: states by name, times in ISO 8601, sets as sorted lists."""
        d = asdict(self)
        d["id"], d["state"] = str(self.id), self.state.name
        d["exposed_ports"] = sorted(self.exposed_ports)
        for name in ("start_time", "finish_time"):
            d[name] = d[name] and d[name].isoformat()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        """The inverse of to_dict.

        Raises:
            ValueError: a field is unknown or impossible; the message names it.
        """
        d = dict(d)
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{', '.join(sorted(unknown))}: not a field of Task")
        for name, parse in _PARSERS.items():
            if d.get(name) is not None:
                try:
                    d[name] = parse(d[name])
                except (KeyError, ValueError, TypeError, AttributeError):
                    raise ValueError(f"{name}: cannot read {d[name]!r} as a {name}") from None
        d["exposed_ports"] = set(d.get("exposed_ports", ()))
        return cls(**d)


_PARSERS = {
    "id": uuid.UUID,
    "state": lambda name: State[name],
    "start_time": datetime.fromisoformat,
    "finish_time": datetime.fromisoformat,
}


def _is_port(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


@dataclass
class Config:
    """How to create the container for a task: what the Docker wrapper needs and no more."""

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

    @classmethod
    def from_task(cls, task: Task, worker: str = "") -> "Config":
        """The book's NewConfig. Labels mark the container as cube's, for its task and worker."""
        labels = {LABEL_TASK: str(task.id)}
        if worker:
            labels[LABEL_WORKER] = worker
        return cls(
            name=task.name,
            image=task.image,
            cpu=task.cpu,
            memory=task.memory,
            disk=task.disk,
            exposed_ports=set(task.exposed_ports),
            port_bindings=dict(task.port_bindings),
            restart_policy=task.restart_policy,
            cmd=list(task.cmd),
            labels=labels,
        )
