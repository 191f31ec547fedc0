"""The Docker wrapper (listing 4.2): the one place where cube talks to the Docker engine.

The worker never calls the SDK itself. It hands Docker a Config, calls run() or stop(), and reads
the DockerResult. Every error from the engine is caught here, at this one boundary, and comes back
as DockerResult.error: a sentence saying what failed, for which image or container, and what to do.

Where cube differs from the book:
- run() pulls the image only when it is not on this machine; the book pulls on every run, which
  costs seconds with a registry and fails without one.
- Containers get an init process as PID 1. A PID 1 that ignores SIGTERM (as the book's web server
  does) makes Docker wait its full 10 s before killing it; with init, stop() takes well under 1 s.
- stop() stops *and* removes, and a container that is already gone counts as stopped.
- An engine that does not answer is an error in the result, never an exception, including when
  the client itself cannot be made (the book's NewDocker drops that error).
"""

import logging
import os
from contextlib import suppress
from dataclasses import dataclass, field

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from cube.task import Config

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
STOP_TIMEOUT = 10  # seconds Docker waits after SIGTERM before it sends SIGKILL
# The SDK lets connection errors from requests through unwrapped, so both count as engine errors.
ENGINE_ERRORS = (DockerException, requests.RequestException)


@dataclass
class DockerResult:
    """The outcome of one operation on the engine (listing 4.6).

    error is None on success, else a sentence a person can act on. host_ports maps each published
    container port to its host port after a successful run, e.g. {"80/tcp": 49153}.
    """

    error: str | None = None
    action: str = ""
    container_id: str = ""
    result: str = ""
    host_ports: dict[str, int] = field(default_factory=dict)


class Docker:
    """Runs and stops the container described by one Config.

    Args:
        config: what to run.
        client: a docker.DockerClient; None connects with docker.from_env() on first use.
    """

    def __init__(self, config: Config, client: docker.DockerClient | None = None) -> None:
        self.config = config
        self.client = client

    def run(self) -> DockerResult:
        """Create and start the container, pulling its image first only if it is missing."""
        c = self.config
        try:
            client = self._connect()
            try:
                container = client.containers.create(**self._create_args())
            except ImageNotFound:
                self._pull(c.image)
                container = client.containers.create(**self._create_args())
        except (*ENGINE_ERRORS, _PullFailed) as e:
            return DockerResult(error=self._explain(e, "start"), action="start")
        try:
            container.start()
            container.reload()  # the host ports are chosen at start
        except ENGINE_ERRORS as e:
            with suppress(*ENGINE_ERRORS):
                container.remove(force=True)  # leave nothing half-made behind
            return DockerResult(error=self._explain(e, "start"), action="start")
        ports = {p: int(b[0]["HostPort"]) for p, b in container.ports.items() if b}
        log.info("started container %s (%s) from %s", container.short_id, c.name, c.image)
        return DockerResult(action="start", container_id=container.id, result="success", host_ports=ports)

    def stop(self, container_id: str) -> DockerResult:
        """Stop and remove the container. One that is already gone counts as stopped."""
        if not container_id:
            return DockerResult(error="no container id given: there is nothing to stop", action="stop")
        try:
            api = self._connect().api
            api.stop(container_id, timeout=STOP_TIMEOUT)
            api.remove_container(container_id)
        except NotFound:
            log.info("container %s was already gone", container_id[:12])
            return DockerResult(action="stop", container_id=container_id, result="already gone")
        except ENGINE_ERRORS as e:
            return DockerResult(
                error=self._explain(e, "stop", container_id), action="stop", container_id=container_id
            )
        log.info("stopped and removed container %s", container_id[:12])
        return DockerResult(action="stop", container_id=container_id, result="success")

    def _connect(self) -> docker.DockerClient:
        if self.client is None:
            self.client = docker.from_env()
        return self.client

    def _create_args(self) -> dict:
        c = self.config
        ports = {p: c.port_bindings.get(p) for p in c.exposed_ports}
        ports.update(c.port_bindings)
        return dict(
            image=c.image,
            name=c.name or None,
            command=c.cmd or None,
            environment=c.env or None,
            labels=c.labels,
            nano_cpus=int(c.cpu * 1e9) or None,
            mem_limit=c.memory or None,
            restart_policy={"Name": c.restart_policy} if c.restart_policy else None,
            ports=ports,
            publish_all_ports=True,  # also publish what the image EXPOSEs, as the book does
            init=True,
            detach=True,
        )

    def _pull(self, image: str) -> None:
        log.info("image %s is not here; pulling it", image)
        try:
            self.client.images.pull(image)
        except ENGINE_ERRORS as e:
            raise _PullFailed(e) from e

    def _explain(self, error: Exception, action: str, container_id: str = "") -> str:
        """Turn an SDK error into a sentence: what failed, for what, and what to do."""
        c = self.config
        subject = f"container {container_id[:12]}" if container_id else f"task {c.name or c.image!r}"
        if isinstance(error, _PullFailed):
            why = getattr(error.__cause__, "explanation", None) or str(error.__cause__)
            return (
                f"could not {action} {subject}: image {c.image!r} is not on this machine and "
                f"could not be pulled ({why}). Check the image name, or build the image here "
                "first (cube.ensure_demo_image() builds the demo web server)."
            )
        if isinstance(error, APIError) and error.response is not None:
            if error.status_code == 409 and action == "start":
                return (
                    f"could not {action} {subject}: a container named {c.name!r} already exists. "
                    f"Give the task another name, or remove the old one with `docker rm -f {c.name}`."
                )
            return f"could not {action} {subject}: the Docker engine said: {error.explanation}"
        if isinstance(error, requests.ConnectionError) or "fetching server API version" in str(error):
            return (
                f"could not {action} {subject}: no Docker engine answers at "
                f"{_engine_address(self.client)} ({error}). Start Docker Desktop or dockerd "
                "(`make engine` in the cube folder), then try again."
            )
        return f"could not {action} {subject}: {error}"


class _PullFailed(Exception):
    """The image was missing and the registry could not supply it."""


def _engine_address(client: docker.DockerClient | None) -> str:
    """Where `client` looks for the engine; with no client, where docker.from_env() would look."""
    if client is None:
        return os.environ.get("DOCKER_HOST", DEFAULT_ADDRESS)
    # docker-py keeps a unix socket's path on its adapter, not in base_url.
    path = getattr(getattr(client.api, "_custom_adapter", None), "socket_path", None)
    return f"unix://{path}" if path else client.api.base_url


def check_engine(client: docker.DockerClient | None = None) -> str:
    """Say which Docker engine answers; raise RuntimeError saying what to do if none does."""
    try:
        client = client or docker.from_env()
        version = client.version()["Version"]
    except ENGINE_ERRORS as e:
        address = _engine_address(client)  # the client's own address, not always DOCKER_HOST's
        raise RuntimeError(
            f"no Docker engine answers at {address} ({e}). Start Docker Desktop or dockerd "
            "(`make engine` in the cube folder starts one on Debian), then run this cell again."
        ) from None
    return f"Docker engine {version} answers"
