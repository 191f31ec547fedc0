"""What is wrong with this machine's Docker, for cube, and how to fix it.

`python -m cube doctor` (or `cube.doctor()` in a first notebook cell) checks, in order, the ways a
learner's set-up goes wrong, and prints a fix for each one that fails:

- the Docker SDK: 7.2 or later, which finds the engine the way the docker CLI does;
- which address cube talks to, and why: DOCKER_HOST, else the active docker context (Docker
  Desktop, Colima and OrbStack put the socket elsewhere than /var/run/docker.sock);
- the socket exists, and this user may use it (the `docker` group);
- an engine answers there, and speaks an API version this SDK accepts;
- the engine's CPU architecture, and the demo image (built for it);
- free disk where the engine keeps its images and containers.

Every client cube makes comes from cube.docker.connect(), which is docker.from_env(): what the
doctor finds is what the Worker, the Docker wrapper, the panel and the API will use.
"""

import os
import platform
import shutil
from dataclasses import dataclass, field

import docker

from cube.docker import ENGINE_ERRORS, connect, default_address, is_unreachable
from cube.image import DEMO_IMAGE, builds_offline

MIN_SDK = (7, 2)
MIN_FREE = 2 * 2**30  # bytes


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
    socket_check = _socket(address)
    if socket_check:
        add(socket_check)
        if not socket_check.ok:
            return report
    try:
        client = connect()
        version = client.version()
    except ENGINE_ERRORS as e:
        add(_no_answer(address, e))
        return report
    add(Check(True, f"Docker engine {version.get('Version')} answers (API {version.get('ApiVersion')})"))
    add(_api_version(client, version))
    add(_architecture(version))
    add(_demo_image(client, version))
    add(_disk(client, address))
    return report


def _sdk() -> Check:
    have = tuple(int(x) for x in docker.__version__.split(".")[:2])
    if have >= MIN_SDK:
        return Check(True, f"Docker SDK for Python {docker.__version__}")
    return Check(
        False,
        f"Docker SDK for Python {docker.__version__} is older than 7.2: it ignores the docker context",
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


def _no_answer(address: str, error: Exception) -> Check:
    if is_unreachable(error):
        return Check(
            False,
            f"no Docker engine answers at {address}",
            "start the engine (Docker Desktop, `sudo systemctl start docker`, or `make engine`), "
            "or point DOCKER_HOST / the docker context at one that runs",
        )
    return Check(
        False,
        f"the engine at {address} answered, but this SDK cannot talk to it: {error}",
        "upgrade Docker (this SDK needs an engine with API 1.24 or later), or check the TLS settings",
    )


def _api_version(client: docker.DockerClient, version: dict) -> Check:
    wanted, low, high = (
        client.api.api_version,
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


def _architecture(version: dict) -> Check:
    engine, here = version.get("Arch", "?"), platform.machine()
    same = {"x86_64": "amd64", "aarch64": "arm64"}.get(here, here) == engine
    where = "as this machine" if same else f"while this machine is {here}: the engine runs in a VM"
    return Check(True, f"the engine runs {engine} containers, {where}")


def _demo_image(client: docker.DockerClient, version: dict) -> Check:
    try:
        image = client.images.get(DEMO_IMAGE)
    except docker.errors.ImageNotFound:
        source = (
            "built from this machine's static busybox, no download"
            if builds_offline()
            else "built FROM busybox:stable, which Docker pulls from Docker Hub"
        )
        return Check(False, f"the demo image {DEMO_IMAGE} is not built yet", f"`make image` ({source})")
    arch = image.attrs.get("Architecture")
    if arch != version.get("Arch"):
        return Check(
            False,
            f"the demo image is built for {arch}, the engine runs {version.get('Arch')}",
            f"docker rmi {DEMO_IMAGE} && make image",
        )
    return Check(True, f"the demo image {DEMO_IMAGE} is here ({arch})")


def _disk(client: docker.DockerClient, address: str) -> Check:
    root = client.info().get("DockerRootDir", "/var/lib/docker")
    path = root if address.startswith("unix://") and os.path.isdir(root) else os.path.abspath(os.sep)
    free = shutil.disk_usage(path).free
    what = f"{free / 2**30:.1f} GiB free on the disk of {path}"
    if free >= MIN_FREE:
        return Check(True, what)
    return Check(False, what, "make room: `docker system prune` removes stopped containers and unused images")


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))
