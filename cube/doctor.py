"""What is wrong with this machine's Docker, for cube, and how to fix it.

`python -m cube doctor` (or `cube.doctor()` in a first notebook cell) checks, in order, the ways a
learner's set-up goes wrong, and prints a fix for each one that fails:

- the Docker SDK: 7.2 or later, which finds the engine the way the docker CLI does;
- which address cube talks to, and why: DOCKER_HOST, else the active docker context (Docker
  Desktop, Colima and OrbStack put the socket elsewhere than /var/run/docker.sock);
- the socket exists, and this user may use it (the `docker` group);
- an engine answers there, and speaks an API version this SDK accepts;
- the demo image is built, for the CPU architecture the engine runs;
- free disk where the engine keeps its images and containers.

Every client cube makes is docker.from_env()'s (as connect() makes it): what the doctor finds is
what the Worker, the Docker wrapper, the panel and the API will use. The doctor, too, asks the
engine only through the Docker wrapper.
"""

import os
import shutil
from dataclasses import dataclass, field
from importlib import metadata

from cube.docker import Docker, DockerClient, EngineError, context
from cube.image import DEMO_IMAGE, builds_offline

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"

SDK_VERSION = metadata.version("docker")  # the Docker SDK for Python installed here
MIN_SDK = (7, 2)
MIN_FREE = 2 * 2**30  # bytes


def connect(client: DockerClient | None = None) -> DockerClient:
    """`client` if given, else one made by docker.from_env(); EngineError if no engine answers."""
    engine = Docker(client=client)
    client or engine.version()  # else making the client asked the engine: it answers
    return engine.client


@dataclass
class Check:
    ok: bool
    what: str  # what was found, in a sentence
    fix: str = ""  # what to do, when not ok

    def __str__(self) -> str:
        return f"✓ {self.what}" if self.ok else f"✗ {self.what}\n    fix: {self.fix}"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __repr__(self) -> str:
        verdict = "all is well" if self.ok else f"{sum(not c.ok for c in self.checks)} problem(s) to fix"
        return "\n".join([*map(str, self.checks), f"cube doctor: {verdict}"])


def doctor() -> Report:
    """Check this machine's Docker for cube; the report prints as one line per check."""
    report = Report()
    add = report.checks.append
    add(_sdk())
    address, why = default_address()
    add(Check(True, f"cube talks to the engine at {address} ({why})"))
    if (name := os.environ.get("DOCKER_CONTEXT")) and not os.environ.get("DOCKER_HOST") and not context(name):
        add(Check(False, f"DOCKER_CONTEXT names the context {name!r}, which does not exist: the docker CLI "
                  "refuses it, and cube uses the default address", "`docker context ls` lists the contexts: "
                  "set DOCKER_CONTEXT to one of them, or unset it"))  # fmt: skip
    socket_check = _socket(address)
    if socket_check:
        add(socket_check)
        if not socket_check.ok:
            return report
    engine = Docker()
    try:
        version = engine.version()
        add(Check(True, f"Docker engine {version.get('Version')} answers (API {version.get('ApiVersion')})"))
        add(_api_version(version))
        add(_demo_image(engine.image(DEMO_IMAGE), version.get("Arch")))
        add(_disk(engine.info().get("DockerRootDir", "/var/lib/docker"), address))
    except EngineError as e:
        add(_no_answer(address, e))
    return report


def check_engine(client: DockerClient | None = None) -> str:
    """Say which Docker engine answers; raise RuntimeError saying what to do if none does."""
    try:
        return f"Docker engine {Docker(client=client).version()['Version']} answers"
    except EngineError as e:
        raise RuntimeError(str(e)) from None


def default_address() -> tuple[str, str]:
    """Where docker.from_env() looks for the engine, and why there: DOCKER_HOST, else the active
    docker context (as the docker CLI does), else the local socket."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"], "set by DOCKER_HOST"
    name = os.environ.get("DOCKER_CONTEXT")
    found, host = context(name) or ("default", None)
    if name and found == "default" and host is None:
        return DEFAULT_ADDRESS, f"the default: no DOCKER_HOST is set and the context {name!r} does not exist"
    if host is None or (found == "default" and not name):
        return DEFAULT_ADDRESS, "the default: no DOCKER_HOST is set and no docker context is chosen"
    source = "DOCKER_CONTEXT" if name else "`docker context use`"
    return host, f"docker context {found!r}, chosen by {source}"


def _sdk() -> Check:
    have = tuple(int(x) for x in SDK_VERSION.split(".")[:2])
    if have >= MIN_SDK:
        return Check(True, f"Docker SDK for Python {SDK_VERSION}")
    return Check(
        False,
        f"Docker SDK for Python {SDK_VERSION} is older than 7.2: it ignores the docker context",
        "pip install -U 'docker>=7.2' (or make setup again)",
    )


def _socket(address: str) -> Check | None:
    if not address.startswith("unix://"):
        return None
    path = address.removeprefix("unix://")
    denied = Check(
        False,
        f"this user may not use {path} (permission denied)",
        "add yourself to the docker group: `sudo usermod -aG docker $USER`, then log out and in again",
    )
    try:
        os.stat(path)
    except FileNotFoundError:
        return Check(
            False,
            f"there is no socket at {path}: no Docker engine runs here",
            "start Docker Desktop (or Colima, OrbStack), or `sudo systemctl start docker`; "
            "on Debian as root, `make engine` installs and starts one",
        )
    except PermissionError:
        return denied
    if not os.access(path, os.R_OK | os.W_OK):
        return denied
    return Check(True, f"the socket {path} is there and this user may use it")


def _no_answer(address: str, error: EngineError) -> Check:
    if error.unreachable:
        return Check(
            False,
            f"no Docker engine answers at {address}",
            "start the engine (Docker Desktop, `sudo systemctl start docker`, or `make engine`), "
            "or point DOCKER_HOST / the docker context at one that runs",
        )
    if error.status is None:  # no engine said anything: the address, or the TLS settings, cannot be used
        return Check(
            False,
            f"cube cannot use the address {address}: {error}",
            "set DOCKER_HOST to an engine's address (unix:///path/to/docker.sock, tcp://host:2375) or unset "
            "it; for TLS, DOCKER_CERT_PATH must hold the certificates",
        )
    return Check(
        False,
        f"the engine at {address} answered, but this SDK cannot talk to it: {error}",
        "upgrade Docker (this SDK needs an engine with API 1.24 or later), or check the TLS settings",
    )


def _api_version(version: dict) -> Check:
    wanted, low, high = (
        version["ClientApiVersion"],
        version.get("MinAPIVersion", "1.12"),
        version.get("ApiVersion", ""),
    )
    if _v(low) <= _v(wanted) <= _v(high or wanted):
        return Check(True, f"API version {wanted} is one the engine speaks ({low} to {high})")
    return Check(
        False,
        f"this client asks for API {wanted}, the engine speaks {low} to {high}",
        "make the client with docker.from_env() (it agrees a version with the engine), or upgrade Docker",
    )


def _demo_image(image: dict | None, engine_arch: str | None) -> Check:
    """The demo image is here, built for the architecture the engine runs (a copy made on another
    machine, or for another one, would not start)."""
    if image is None:
        source = (
            "built from this machine's static busybox, no download"
            if builds_offline()
            else "built FROM busybox:stable, which Docker pulls from Docker Hub"
        )
        return Check(False, f"the demo image {DEMO_IMAGE} is not built yet", f"`make image` ({source})")
    arch = image.get("Architecture")
    if arch != engine_arch:
        return Check(
            False,
            f"the demo image is built for {arch}, the engine runs {engine_arch}",
            f"docker rmi {DEMO_IMAGE} && make image",
        )
    return Check(True, f"the demo image {DEMO_IMAGE} is here, built for {arch} as the engine runs")


def _disk(root: str, address: str) -> Check:
    path = root if address.startswith("unix://") and os.path.isdir(root) else os.path.abspath(os.sep)
    free = shutil.disk_usage(path).free
    what = f"{free / 2**30:.1f} GiB free on the disk of {path}"
    if free >= MIN_FREE:
        return Check(True, what)
    return Check(False, what, "make room: `docker system prune` removes stopped containers and unused images")


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))
