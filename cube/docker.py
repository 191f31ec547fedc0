"""The Docker wrapper (listing 4.2): the one place where cube talks to the Docker engine.

Every call to the engine, and every error of the SDK, is here. run() and stop() return a
DockerResult whose error is a sentence: what failed, for what, what to do. The other calls return
what the engine said, or raise EngineError: which step failed, and whether any engine answered.

Where cube differs from the book, and why:
- run() pulls the image only when it is missing: the book pulls on every run, slow or impossible
  without a registry.
- Containers get an init process: with the book's web server as PID 1, deaf to SIGTERM, every stop
  waits Docker's full 10 s.
- run() succeeds once the container's command runs: under init, Docker says "running" even for a
  command that cannot be executed (init exits 127 a moment later).
- run(adopt=True) finishes an attempt cut short (a crash, an engine gone) instead of repeating it.
- stop() only touches a container labelled for this task and worker.
- inspect() says "gone" for a container that does not exist; the book's Inspect returns nil.
- No error escapes run() or stop(), not even a client that cannot be made (the book's NewDocker
  drops that error); clients cube makes give up after ENGINE_TIMEOUT s, not docker-py's 60.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import suppress

import docker
import requests
import urllib3
from docker import DockerClient
from docker.context import ContextAPI
from docker.errors import APIError, DockerException, ImageNotFound

from cube.observe import GONE, DockerResult, Observed, describe_exit
from cube.task import Config

__all__ = ["Docker", "DockerClient", "DockerResult", "EngineError", "Observed", "connect", "context"]
log = logging.getLogger(__name__)

ENGINE_TIMEOUT = 5  # seconds to wait for an engine that accepted a request to answer it
STOP_TIMEOUT = 10  # seconds Docker waits after SIGTERM before it sends SIGKILL
SETTLE_TIMEOUT = 2.0  # how long run() watches for the command to show up beside init
SDK_VERSION = docker.__version__
_SDK_ERRORS = (DockerException, requests.RequestException)  # the SDK lets requests' own through
_STREAM_ERRORS = (*_SDK_ERRORS, urllib3.exceptions.HTTPError, OSError, ValueError)  # and, in a stream, these


class EngineError(Exception):
    """A call to the engine failed; str() says what failed, for what, and what to do.

    step is what was asked ("create", "pull", "start", "stop", "inspect", "list", "remove", "kill",
    "stats", ...); unreachable is True if no engine answered; status is the engine's HTTP status.
    """

    def __init__(self, step: str, message: str, unreachable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.step, self.unreachable, self.status = step, unreachable, status


def connect(client: DockerClient | None = None) -> DockerClient:
    """`client` if given, else a client made by docker.from_env(); EngineError if no engine answers."""
    engine = Docker(client=client)
    if client is None:
        engine._call("version", about="the Docker engine")  # making the client asked the engine already
    return engine.client


def context(name: str | None = None) -> tuple[str, str] | None:
    """The docker CLI's context `name` (else the current one) as (its name, its engine's address);
    None if there is none, or the CLI's configuration cannot be read."""
    with suppress(DockerException):
        found = ContextAPI.get_context(name) if name else ContextAPI.get_current_context()
        return found and (found.Name, found.Host)
    return None


class Docker:
    """Runs, stops and inspects the container described by one Config.

    Args:
        config: what to run; calls that name a container, or the engine, do not need one.
        client: a docker.DockerClient; None connects with docker.from_env() on first use.
    """

    def __init__(self, config: Config | None = None, client: docker.DockerClient | None = None) -> None:
        self.config = config
        self.client = client

    def run(self, adopt: bool = False) -> DockerResult:
        """Create and start the container, pulling its image first only if it is missing.

        Succeeds once the container's command runs, or if it finished at once with exit code 0; one
        that ended any other way is removed, its exit code in the error. adopt: first finish an
        earlier attempt: a container made for this config that runs, or ran, is adopted as it is
        (result "adopted"); one that never started is replaced.
        """
        container_id = ""
        try:
            if adopt and (adopted := self._adopt()):
                return adopted
            container_id = self._create()
            self._call("start", container_id)
            log.info("started container %s", container_id[:12], extra={"at": "after start"})
            seen = self._settle(container_id)
        except EngineError as e:
            with suppress(EngineError):
                if container_id:
                    self.remove(container_id)  # leave nothing half-made behind
            return DockerResult(str(e), "start", container_id, unreachable=e.unreachable)
        if seen.ended and seen.exit_code != 0:
            output = self._last_line(container_id)
            with suppress(EngineError):
                self.remove(container_id)  # what matters of it is in `seen`
            why = describe_exit(seen) + (f" ({output})" if output else "")
            error = f"could not start {self._about()}: its container {why} right after it started"
            return DockerResult(error, "start", container_id, observed=seen)
        return DockerResult(None, "start", container_id, "success", seen.host_ports, seen)

    def stop(self, container_id: str) -> DockerResult:
        """Stop and remove the container, if it carries the config's labels (this task, this worker).

        One that is already gone counts as stopped; one labelled for someone else is not touched.
        """
        if not container_id:
            return DockerResult(error="no container id given: there is nothing to stop", action="stop")
        done = DockerResult(action="stop", container_id=container_id, result="success")
        try:
            seen = self.inspect(container_id)
            if seen.status in ("removing", GONE):  # someone (a worker that died, say) removes it
                done.result = self._until_gone(container_id)
                return done
            if wrong := ", ".join(
                f"{k}={v}" for k, v in self.config.labels.items() if seen.labels.get(k) != v
            ):
                done.error = f"container {container_id[:12]} is not labelled {wrong}: cube stops only the "
                done.error += "containers it made for this task and worker, and left it alone"
                return done
            self._call("stop", container_id, timeout=STOP_TIMEOUT)
            done.observed = self.inspect(container_id)
            self.remove(container_id)
        except EngineError as e:
            if e.status not in (404, 409):
                return DockerResult(str(e), "stop", container_id, unreachable=e.unreachable)
            # removed by someone else meanwhile (404), or being removed by someone else right now (409)
            done.result = "already gone" if e.status == 404 else self._until_gone(container_id)
        log.info("stopped and removed container %s", container_id[:12])
        return done

    def inspect(self, container_id: str) -> Observed:
        """What the engine says of the container now; status "gone" if it has none by that id."""
        try:
            return Observed.from_inspect(self._call("inspect", container_id))
        except EngineError as e:
            if e.status != 404:
                raise
            return Observed(container_id)

    def containers(self, labels: dict[str, str]) -> list[Observed]:
        """Every container, running or not, that carries all of `labels` (one request)."""
        wanted = {"label": [f"{k}={v}" for k, v in labels.items()]}
        return [Observed.from_summary(s) for s in self._call("list", all=True, filters=wanted, about="them")]

    def remove(self, container_id: str) -> None:
        """Remove the container, running or not; one that is already gone is fine."""
        with suppress(_Gone):
            self._call("remove", container_id, force=True)

    def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Send the container's main process a signal, as `docker kill` does."""
        self._call("kill", container_id, signal=signal)

    def pause(self, container_id: str) -> None:
        self._call("pause", container_id)

    def unpause(self, container_id: str) -> None:
        self._call("unpause", container_id)

    def restart(self, container_id: str, timeout: int = 1) -> None:
        """Stop the container (killing it after `timeout` s) and start it again, as `docker restart`."""
        self._call("restart", container_id, timeout=timeout)

    def stats(self, container_id: str) -> Iterator[dict]:
        """The engine's stats of the container, a frame a second, until it is removed or you stop."""
        yield from self._stream("stats", container_id, stream=True, decode=True)

    def build(self, context, tag: str) -> Iterator[dict]:
        """Build image `tag` from a tar archive (a file object) holding a Dockerfile: its output."""
        about = f"image {tag!r}"
        yield from self._stream(
            "build", fileobj=context, custom_context=True, tag=tag, rm=True, decode=True, about=about
        )

    def image(self, name: str) -> dict | None:
        """What the engine says of an image (its Architecture, ...); None if it has none by that name."""
        with suppress(_Gone):
            return self._call("image", name, about=f"image {name!r}")

    def version(self) -> dict:
        """The engine's `docker version`, with the API version this client asks for (ClientApiVersion)."""
        return self._call("version", about="the Docker engine") | {
            "ClientApiVersion": self.client.api.api_version
        }

    def info(self) -> dict:
        return self._call("info", about="the Docker engine")

    def _create(self) -> str:
        """Create the container, pulling the image first if the engine has none by that name."""
        c, about = self.config, self._about()
        ports = {p: c.port_bindings.get(p) for p in c.exposed_ports} | c.port_bindings
        policy, _, retries = c.restart_policy.partition(":")  # Docker's spelling: "on-failure:3"
        host = {  # the engine's own HostConfig, as `docker inspect` shows it
            "PortBindings": {p: [{"HostIp": "", "HostPort": str(h or "")}] for p, h in ports.items()},
            "PublishAllPorts": True,  # also publish what the image EXPOSEs, as the book does
            "Init": True,
            "NanoCpus": int(c.cpu * 1e9),
            "Memory": c.memory,
            "RestartPolicy": {"Name": policy or "no", "MaximumRetryCount": int(retries or 0)},
        }
        args = dict(
            environment=c.env, labels=c.labels, name=c.name or None, ports=list(ports), host_config=host
        )
        log.info("creating a container for %s", about, extra={"at": "before create"})
        try:
            made = self._call("create", c.image, c.cmd or None, **args, about=about)
        except EngineError as e:
            if not isinstance(e.__cause__, ImageNotFound):
                raise
            log.info("image %s is not here; pulling it", c.image)
            self._call("pull", c.image, about=about)
            made = self._call("create", c.image, c.cmd or None, **args, about=about)
        log.info("created container %s for %s", made["Id"][:12], about, extra={"at": "after create"})
        return made["Id"]

    def _adopt(self) -> DockerResult | None:
        """Adopt a container of this config that runs, or ran (then removing it: a finished task has
        no container); remove those that never started. None if none is adopted."""
        # Each is inspected, not judged by the list: the engine answers an inspect only once a start
        # under way has ended (both lock the container), so one sent by a worker that died counts.
        found = [self.inspect(s.container_id) for s in self.containers(self.config.labels)]
        seen = min(
            (s for s in found if s.started_at and s.status != GONE), key=lambda s: s.ended, default=None
        )
        for other in found:
            if other.status != GONE and (other is not seen or seen.ended):
                self.remove(other.container_id)
        if seen:
            log.info("adopted container %s of %s: %s", seen.container_id[:12], self._about(), seen.status)
            return DockerResult(None, "start", seen.container_id, "adopted", seen.host_ports, seen)
        return None

    def _settle(self, container_id: str) -> Observed:
        """Wait until the command runs beside init, or the container stops; then inspect it."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                top = self._call("top", container_id)
            except EngineError as e:
                if e.unreachable:
                    raise
                break  # not running any more (409), or exiting as we asked (a 500): inspect says which
            commands = [p[top["Titles"].index("CMD")] for p in top["Processes"] or []]
            if any(cmd != commands[0] for cmd in commands[1:]):  # init has exec'd the command
                break
            time.sleep(0.005)
        return self.inspect(container_id)

    def _until_gone(self, container_id: str) -> str:
        deadline = time.monotonic() + STOP_TIMEOUT
        while (status := self.inspect(container_id).status) != GONE:
            if time.monotonic() > deadline:
                raise EngineError(
                    "remove", f"{self._about(container_id)} is still {status} after {STOP_TIMEOUT} s"
                )
            time.sleep(0.02)
        return "already gone"

    def _last_line(self, container_id: str) -> str:
        """The last line the container wrote: often the reason it failed."""
        with suppress(EngineError):
            lines = self._call("logs", container_id, tail=1).decode(errors="replace").splitlines()
            return lines[-1].strip() if lines else ""
        return ""

    def _call(self, step: str, *args, about: str = "", **kwargs):
        """The SDK's call for `step` (docker.APIClient's method of that name, or _CALLS's), connecting
        first if need be; an error of the SDK is raised as an EngineError explained by the step."""
        try:
            if self.client is None:  # docker.from_env() asks the engine its API version at once
                self.client = docker.from_env(timeout=ENGINE_TIMEOUT, max_pool_size=32)
            return getattr(self.client.api, _CALLS.get(step, step))(*args, **kwargs)
        except _SDK_ERRORS as e:
            raise self._error(step, e, about or self._about(args[0])) from e

    def _stream(self, step: str, *args, about: str = "", **kwargs) -> Iterator[dict]:
        about = about or self._about(*args)
        try:
            yield from self._call(step, *args, about=about, **kwargs)  # closing this closes the SDK's
        except _STREAM_ERRORS as e:
            raise self._error(step, e, about) from e

    def _about(self, container_id: str = "") -> str:
        """What a call is about, for its error: the container, of which task."""
        task = f"task {self.config.name or self.config.image!r}" if self.config else "the Docker engine"
        return f"container {container_id[:12]} of {task}" if container_id else task

    def _error(self, step: str, error: Exception, about: str) -> EngineError:
        """An SDK error as an EngineError explained by the step that failed. The SDK's own words (a
        connection error's repr, a registry's DNS server) go to the log, not into the sentence."""
        log.info("could not %s %s: %r", step, about, error)
        failed, silence = f"could not {_VERBS.get(step, step)} {about}", _silence(error)
        if silence:
            return EngineError(
                step,
                f"{failed}: no Docker engine answers at {_address(self.client)}: {silence}. Start Docker "
                "Desktop or dockerd (`make engine` in the cube folder), then try again.",
                unreachable=True,
            )
        status = error.status_code if isinstance(error, APIError) else None
        name, image = (self.config.name, self.config.image) if self.config else ("", "")
        here = f"image {image!r} is not on this machine and "
        build = "build the image here first (cube.ensure_demo_image() builds the demo web server)"
        why = {
            ("create", 409): f"a container named {name!r} already exists. Give the task another name, or "
            f"remove the old one with `docker rm -f {name}`",
            ("start", 409): "the engine refused to start it: someone else (another worker, `docker rm`) is "
            "removing it or has changed it. Start the task again to get a new container",
            ("pull", 404): f"{here}the registry has no such image. Check the image name, or {build}",
            ("pull", None): f"{here}its registry could not be reached. Check the image name, or {build}",
        }.get((step, None if step == "pull" and status != 404 else status))
        if why is None:
            why = error.explanation if status else str(error)
        return (_Gone if status == 404 else EngineError)(step, f"{failed}: {why}", status=status)


class _Gone(EngineError):
    """The engine has no such container or image (404)."""


# docker.APIClient's name for a step, where it is not the step's own; how a step reads in a sentence.
_CALLS = {"inspect": "inspect_container", "image": "inspect_image", "list": "containers"}
_CALLS |= {"remove": "remove_container", "create": "create_container"}
_VERBS = {
    "list": "list the containers of",
    "version": "ask the version of",
    "info": "ask about",
    "image": "inspect",
}


def _silence(error: BaseException | None) -> str:
    """If no engine answered (refused, reset, timed out: nothing was decided), why, in words; else ""."""
    why = ""
    while error is not None:  # docker.from_env() wraps what requests raised
        if isinstance(error, requests.Timeout):
            return "it accepted the connection but did not answer in time"
        if isinstance(error, requests.ConnectionError):
            why = "the connection failed (no engine listens there, or it went away)"
        error = error.__cause__ or error.__context__
    return why


def _address(client: DockerClient | None) -> str:
    """Where `client` looks for the engine; with no client, where docker.from_env() looks."""
    with suppress(DockerException):
        client = client or docker.from_env(version="1.24")  # a fixed API version: made without asking
        # A unix socket's path is on the transport adapter (requests' public get_adapter), not in base_url.
        path = getattr(client.api.get_adapter(client.api.base_url), "socket_path", None)
        return (
            f"unix://{path}"
            if path
            else client.api.base_url.replace("https:", "tcp:").replace("http:", "tcp:")
        )
    return "the address docker.from_env() finds (DOCKER_HOST, or the docker context)"
