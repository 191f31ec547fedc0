"""The Docker wrapper (listing 4.2): the one place where cube talks to the Docker engine.

The worker never calls the SDK itself. It hands Docker a Config and calls run() or stop(), or asks
what the engine says of its containers now (inspect(), containers()). Every error from the engine
is caught here, at this one boundary, and comes back as DockerResult.error: a sentence saying what
failed, for which image or container, and what to do. DockerResult.unreachable tells an engine that
could not be heard at all (nothing was decided) from one that answered "no".

Where cube differs from the book:
- run() pulls the image only when it is not on this machine; the book pulls on every run, which
  costs seconds with a registry and fails without one.
- Containers get an init process as PID 1. A PID 1 that ignores SIGTERM (as the book's web server
  does) makes Docker wait its full 10 s before killing it; with init, stop() takes well under 1 s.
- run() reports success only once the container's own command runs. Under an init process Docker
  says "running" even when the command cannot be executed: init starts, fails to exec it, and the
  container exits with code 127 a few milliseconds later. run() watches the container's processes
  until the command shows up beside init, or the container stops.
- run(adopt=True) first looks for a container already made for the same config (by its labels): a
  start that was cut short (a crash, an engine that went away) is finished, not repeated, so a
  task never gets two containers.
- stop() only touches a container that carries the config's labels (this task, this worker).
- inspect() says "gone" for a container that no longer exists; the book's later Inspect hands back
  nothing and its caller dereferences it.
- An engine that does not answer is an error in the result, never an exception, including when
  the client itself cannot be made (the book's NewDocker drops that error). Clients cube makes give
  up after ENGINE_TIMEOUT seconds instead of docker-py's 60.
"""

import logging
import os
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

import docker
import requests
from docker.context import ContextAPI
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from cube.task import Config

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
ENGINE_TIMEOUT = 5  # seconds to wait for an engine that accepted a request to answer it
STOP_TIMEOUT = 10  # seconds Docker waits after SIGTERM before it sends SIGKILL
SETTLE_TIMEOUT = 2.0  # how long run() watches for the command to show up beside init
GONE = "gone"  # the status of a container the engine no longer has
# The SDK lets connection errors from requests through unwrapped, so both count as engine errors.
ENGINE_ERRORS = (DockerException, requests.RequestException)


class Unreachable(DockerException):
    """No engine answered: nothing was decided, so asking again later may work."""


def connect(client: docker.DockerClient | None = None) -> docker.DockerClient:
    """The client cube uses: `client` if given, else one made by docker.from_env().

    Raises:
        Unreachable: no client was given and no engine answers where docker.from_env() looks.
    """
    if client is not None:
        return client
    try:
        return docker.from_env(timeout=ENGINE_TIMEOUT, max_pool_size=32)
    except ENGINE_ERRORS as e:  # docker-py asks the engine for its API version right away
        raise Unreachable(str(e)) from e


@dataclass
class Observed:
    """What the engine says of one container now.

    status is Docker's word (created, running, paused, restarting, removing, exited, dead), or
    "gone" if there is no such container. restart_count counts restarts under the restart policy.
    """

    container_id: str
    status: str = GONE
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    host_ports: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    error: str = ""  # the engine's own error for this container, e.g. why it could not start

    @property
    def ended(self) -> bool:
        """True if the container will not run again by itself."""
        return self.status in ("exited", "dead", GONE)

    @classmethod
    def from_inspect(cls, attrs: dict) -> "Observed":
        state = attrs["State"]
        ports = attrs["NetworkSettings"].get("Ports") or {}
        return cls(
            container_id=attrs["Id"],
            status=state["Status"],
            exit_code=state["ExitCode"] if state["Status"] in ("exited", "dead") else None,
            oom_killed=state.get("OOMKilled", False),
            restart_count=attrs.get("RestartCount", 0),
            started_at=_time(state.get("StartedAt")),
            finished_at=_time(state.get("FinishedAt")),
            host_ports={
                p: _ipv4_first([(b["HostIp"], b["HostPort"]) for b in bs]) for p, bs in ports.items() if bs
            },
            labels=attrs["Config"].get("Labels") or {},
            error=state.get("Error", ""),
        )

    @classmethod
    def from_summary(cls, summary: dict) -> "Observed":
        """From one entry of a container list: status, ports and labels only."""
        published: dict[str, list] = {}
        for p in summary["Ports"]:
            if "PublicPort" in p:
                published.setdefault(f"{p['PrivatePort']}/{p['Type']}", []).append(
                    (p.get("IP", ""), p["PublicPort"])
                )
        ports = {port: _ipv4_first(bindings) for port, bindings in published.items()}
        return cls(summary["Id"], summary["State"], host_ports=ports, labels=summary.get("Labels") or {})


@dataclass
class DockerResult:
    """The outcome of one operation on the engine (listing 4.6).

    error is None on success, else a sentence a person can act on; unreachable is True when no
    engine answered. host_ports maps each published container port to its host port after a
    successful run, e.g. {"80/tcp": 49153}. observed is what the engine said of the container
    at the end of the operation, when it was asked.
    """

    error: str | None = None
    action: str = ""
    container_id: str = ""
    result: str = ""
    host_ports: dict[str, int] = field(default_factory=dict)
    observed: Observed | None = None
    unreachable: bool = False


class Docker:
    """Runs, stops and inspects the container described by one Config.

    Args:
        config: what to run; inspect() and containers() do not need one.
        client: a docker.DockerClient; None connects with connect() on first use.
    """

    def __init__(self, config: Config | None = None, client: docker.DockerClient | None = None) -> None:
        self.config = config
        self.client = client

    def run(self, adopt: bool = False) -> DockerResult:
        """Create and start the container, pulling its image first only if it is missing.

        Succeeds once the container's command runs, or if it already finished with exit code 0;
        a container that ended any other way is removed and its exit code is in the error.

        Args:
            adopt: first look for containers that carry the config's labels (made by an earlier
                attempt that may not have finished): a running one is adopted instead of making
                another (result "adopted"), any other is removed.
        """
        c = self.config
        try:
            client = self._connect()
            if adopt and (adopted := self._adopt()):
                return adopted
            try:
                container = client.containers.create(**self._create_args())
            except ImageNotFound:
                self._pull(c.image)
                container = client.containers.create(**self._create_args())
        except (*ENGINE_ERRORS, _PullFailed) as e:
            return self._failed("start", e)
        try:
            container.start()
            seen = self._settle(container.id)
            if seen.ended:
                output = self._last_line(container.id)
                container.remove(force=True)  # what matters of it is in `seen`
        except ENGINE_ERRORS as e:
            with suppress(*ENGINE_ERRORS):
                container.remove(force=True)  # leave nothing half-made behind
            return self._failed("start", e, container.id)
        if seen.ended and seen.exit_code != 0:
            why = describe_exit(seen) + (f" ({output})" if output else "")
            error = f"could not start task {c.name or c.image!r}: its container {why} right after it started"
            return DockerResult(error=error, action="start", container_id=container.id, observed=seen)
        log.info("started container %s (%s) from %s: %s", container.short_id, c.name, c.image, seen.status)
        return _started(seen, "success")

    def _adopt(self) -> DockerResult | None:
        """Adopt a running container made for this config, removing any other; None if none runs."""
        found = self.containers(self.config.labels)
        running = [seen for seen in found if seen.status == "running"][:1]
        for seen in found:
            if seen not in running:
                self.remove(seen.container_id)
        if not running:
            return None
        seen = self.inspect(running[0].container_id)
        log.info("adopted running container %s (%s)", seen.container_id[:12], self.config.name)
        return _started(seen, "adopted")

    def stop(self, container_id: str) -> DockerResult:
        """Stop and remove the container, if it carries the config's labels (this task, this worker).

        One that is already gone counts as stopped; one labelled for someone else is not touched.
        """
        if not container_id:
            return DockerResult(error="no container id given: there is nothing to stop", action="stop")
        try:
            seen = self.inspect(container_id)
            if seen.status in ("removing", GONE):  # someone (a worker that died, say) removes it
                gone = self._until_gone(container_id)
                return DockerResult(action="stop", container_id=container_id, result=gone)
            wrong = {k: v for k, v in self.config.labels.items() if seen.labels.get(k) != v}
            if wrong:
                labels = ", ".join(f"{k}={v}" for k, v in wrong.items())
                return DockerResult(
                    error=f"container {container_id[:12]} is not labelled {labels}: cube stops only the "
                    "containers it made for this task and worker, and left it alone",
                    action="stop",
                    container_id=container_id,
                )
            self._connect().api.stop(container_id, timeout=STOP_TIMEOUT)
            seen = self.inspect(container_id)
            self.remove(container_id)
        except NotFound:  # removed by someone else while we were stopping it
            return DockerResult(action="stop", container_id=container_id, result="already gone")
        except APIError as e:
            if e.status_code == 409:  # a conflict: someone else is removing it right now
                gone = self._until_gone(container_id)
                return DockerResult(action="stop", container_id=container_id, result=gone)
            return self._failed("stop", e, container_id)
        except ENGINE_ERRORS as e:
            return self._failed("stop", e, container_id)
        log.info("stopped and removed container %s", container_id[:12])
        return DockerResult(action="stop", container_id=container_id, result="success", observed=seen)

    def inspect(self, container_id: str) -> Observed:
        """What the engine says of the container now; status "gone" if it has none by that id.

        Raises:
            docker.errors.DockerException, requests.RequestException: the engine did not answer.
        """
        try:
            return Observed.from_inspect(self._connect().api.inspect_container(container_id))
        except NotFound:
            return Observed(container_id)

    def containers(self, labels: dict[str, str]) -> list[Observed]:
        """Every container, running or not, that carries all of `labels` (one request).

        Raises:
            docker.errors.DockerException, requests.RequestException: the engine did not answer.
        """
        wanted = [f"{k}={v}" for k, v in labels.items()]
        found = self._connect().api.containers(all=True, filters={"label": wanted})
        return [Observed.from_summary(s) for s in found]

    def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        """Send the container's main process a signal, as `docker kill` does (SIGKILL ends it at once).

        Raises:
            docker.errors.DockerException, requests.RequestException: the engine did not answer, or
                refused (no such container, or it is not running).
        """
        self._connect().api.kill(container_id, signal=signal)

    def remove(self, container_id: str) -> None:
        """Remove the container, running or not; one that is already gone is fine.

        Raises:
            docker.errors.DockerException, requests.RequestException: the engine did not answer.
        """
        with suppress(NotFound):
            self._connect().api.remove_container(container_id, force=True)

    def _connect(self) -> docker.DockerClient:
        self.client = connect(self.client)
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
            restart_policy=_restart_policy(c.restart_policy),
            ports=ports,
            publish_all_ports=True,  # also publish what the image EXPOSEs, as the book does
            init=True,
            detach=True,
        )

    def _settle(self, container_id: str) -> Observed:
        """Wait until the command runs beside init, or the container stops; then inspect it."""
        api = self.client.api
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                top = api.top(container_id)
            except APIError:  # not running any more (409), or exiting as we asked (a 500 from containerd)
                break  # either way, inspect() below says what it is
            column = top["Titles"].index("CMD")
            commands = [p[column] for p in top["Processes"] or []]
            if any(cmd != commands[0] for cmd in commands[1:]):  # init has exec'd the command
                break
            time.sleep(0.005)
        return self.inspect(container_id)

    def _until_gone(self, container_id: str) -> str:
        """Wait (up to STOP_TIMEOUT) for a container that is being removed to be gone.

        Raises:
            docker.errors.DockerException: it is still there after STOP_TIMEOUT seconds.
        """
        deadline = time.monotonic() + STOP_TIMEOUT
        while (status := self.inspect(container_id).status) != GONE:
            if time.monotonic() > deadline:
                raise DockerException(
                    f"container {container_id[:12]} is still {status} after {STOP_TIMEOUT} s"
                )
            time.sleep(0.02)
        log.info("container %s was already gone", container_id[:12])
        return "already gone"

    def _last_line(self, container_id: str) -> str:
        """The last line the container wrote: often the reason it failed."""
        with suppress(*ENGINE_ERRORS):
            lines = self.client.api.logs(container_id, tail=1).decode(errors="replace").splitlines()
            return lines[-1].strip() if lines else ""
        return ""

    def _pull(self, image: str) -> None:
        log.info("image %s is not here; pulling it", image)
        try:
            self.client.images.pull(image)
        except ENGINE_ERRORS as e:
            raise _PullFailed(e) from e

    def _failed(self, action: str, error: Exception, container_id: str = "") -> DockerResult:
        return DockerResult(
            error=self._explain(error, action, container_id),
            action=action,
            container_id=container_id,
            unreachable=is_unreachable(error),
        )

    def _explain(self, error: Exception, action: str, container_id: str = "") -> str:
        """Turn an SDK error into a sentence: what failed, for what, and what to do.

        The SDK's own words (a connection error's repr, a registry's message naming this machine's
        DNS server) go to the log, not into the sentence.
        """
        log.info("could not %s: %r", action, error)
        c = self.config
        subject = f"container {container_id[:12]}" if container_id else f"task {c.name or c.image!r}"
        if isinstance(error, _PullFailed):
            pulled = error.__cause__
            why = (
                "has no such image" if getattr(pulled, "status_code", None) == 404 else "could not be reached"
            )
            return (
                f"could not {action} {subject}: image {c.image!r} is not on this machine and the "
                f"registry {why}. Check the image name, or build the image here first "
                "(cube.ensure_demo_image() builds the demo web server)."
            )
        if isinstance(error, APIError) and error.response is not None:
            if error.status_code == 409 and action == "start":
                return (
                    f"could not {action} {subject}: a container named {c.name!r} already exists. "
                    f"Give the task another name, or remove the old one with `docker rm -f {c.name}`."
                )
            return f"could not {action} {subject}: the Docker engine said: {error.explanation}"
        if is_unreachable(error):
            return (
                f"could not {action} {subject}: no Docker engine answers at "
                f"{engine_address(self.client)}: {_silence(error)}. Start Docker Desktop or dockerd "
                "(`make engine` in the cube folder), then try again."
            )
        return f"could not {action} {subject}: {error}"


def _restart_policy(policy: str) -> dict | None:
    """Docker's spelling ("on-failure:3") as the API wants it: {"Name": ..., "MaximumRetryCount": 3}."""
    name, _, retries = policy.partition(":")
    if name in ("", "no"):
        return None
    return {"Name": name, "MaximumRetryCount": int(retries or 0)}


def _started(seen: Observed, result: str) -> DockerResult:
    """A successful start (or adoption) of the container `seen` describes."""
    return DockerResult(
        action="start",
        container_id=seen.container_id,
        result=result,
        host_ports=seen.host_ports,
        observed=seen,
    )


class _PullFailed(Exception):
    """The image was missing and the registry could not supply it."""


def is_unreachable(error: Exception) -> bool:
    """True if `error` means no engine answered (refused, reset or timed out), so nothing was decided."""
    return isinstance(error, Unreachable | requests.ConnectionError | requests.Timeout)


def _silence(error: BaseException) -> str:
    """Why an engine did not answer, in words: it took too long, or nothing took the call."""
    while error is not None:
        if isinstance(error, requests.Timeout):
            return "it accepted the connection but did not answer in time"
        error = error.__cause__
    return "the connection failed (no engine listens there, or it went away)"


def describe_exit(seen: Observed) -> str:
    """How a container ended, in words: "exited with code 3", "was killed: out of memory"."""
    if seen.status == GONE:
        return "was removed outside cube"
    if seen.oom_killed:
        return "was killed: out of memory"
    code = seen.exit_code
    if code is not None and code > 128 and code - 128 in _SIGNALS:
        return f"exited with code {code} (killed by {_SIGNALS[code - 128]})"
    if seen.error:
        return f"exited with code {code}: {seen.error}"
    return f"exited with code {code}"


_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 15: "SIGTERM"}


def _ipv4_first(bindings: list[tuple[str, str | int]]) -> int:
    """The host port of a published port: its IPv4 binding's, if any. Docker may publish one port
    twice, on 0.0.0.0 and on ::, with two different host ports."""
    ordered = sorted(bindings, key=lambda b: ":" in b[0])  # stable: IPv4 addresses first
    return int(ordered[0][1])


def _time(text: str | None) -> datetime | None:
    """A Docker timestamp ("2024-05-01T10:00:00.123456789Z") as a UTC datetime; None if unset."""
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    micros = rest[:6].ljust(6, "0") if rest else "0"
    return datetime.fromisoformat(f"{head}.{micros}+00:00")


def default_address() -> tuple[str, str]:
    """Where docker.from_env() looks for the engine, and why there: DOCKER_HOST, else the active
    docker context (as the docker CLI does), else the local socket."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"], "set by DOCKER_HOST"
    name = os.environ.get("DOCKER_CONTEXT")
    try:
        context = ContextAPI.get_context(name) if name else ContextAPI.get_current_context()
    except docker.errors.DockerException:
        context = None
    if context is None or (context.Name == "default" and not name):
        return DEFAULT_ADDRESS, "the default: no DOCKER_HOST is set and no docker context is chosen"
    source = "DOCKER_CONTEXT" if name else "`docker context use`"
    return context.Host, f"docker context {context.Name!r}, chosen by {source}"


def engine_address(client: docker.DockerClient | None) -> str:
    """Where `client` looks for the engine; with no client, where docker.from_env() would look."""
    if client is None:
        return default_address()[0]
    # A unix socket's path is on the transport adapter (requests' public get_adapter), not in base_url.
    path = getattr(client.api.get_adapter(client.api.base_url), "socket_path", None)
    return f"unix://{path}" if path else client.api.base_url


def check_engine(client: docker.DockerClient | None = None) -> str:
    """Say which Docker engine answers; raise RuntimeError saying what to do if none does."""
    try:
        client = connect(client)
        version = client.version()["Version"]
    except ENGINE_ERRORS as e:
        address = engine_address(client)  # the client's own address, not always DOCKER_HOST's
        raise RuntimeError(
            f"no Docker engine answers at {address}: {_silence(e)}. Start Docker Desktop or dockerd "
            "(`make engine` in the cube folder starts one on Debian), then run this cell again."
        ) from None
    return f"Docker engine {version} answers"
