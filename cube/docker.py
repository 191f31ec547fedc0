"""The Docker wrapper (listing 4.2): every call to the engine, and every SDK error, is here. run() and
stop() return a DockerResult whose error says what failed and what to do; other calls raise EngineError.
Where cube differs from the book, and why:
- run() pulls only a missing image (the book pulls on every run: slow, or impossible offline).
- An init process: a stop takes no 10 s; run() succeeds once the command runs, not just init.
- run(adopt=True) finishes an attempt a crash cut short instead of repeating it.
- stop() touches only a container labelled for its task and worker; inspect() says "gone", not nil.
- No error escapes run() or stop() (NewDocker drops one); an engine has ENGINE_TIMEOUT s, not 60."""

import logging
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace

import docker
import requests
import urllib3
from docker import DockerClient
from docker.context import ContextAPI
from docker.errors import APIError, DockerException, ImageNotFound

from cube.observe import GONE, DockerResult, EngineError, Observed, describe_exit, explain, of_attempt
from cube.task import LABEL_ATTEMPT, LABEL_TASK, LABEL_WORKER, Config

log = logging.getLogger(__name__)

ENGINE_TIMEOUT = 5  # seconds to wait for an engine that accepted a request to answer it
STOP_TIMEOUT = 10  # seconds Docker waits after SIGTERM before it sends SIGKILL
SETTLE_TIMEOUT = 2.0  # how long run() watches for the command to show up beside init
_SDK_ERRORS = (DockerException, requests.RequestException, ValueError)  # requests' own; a bad address
_STREAM_ERRORS = (*_SDK_ERRORS, urllib3.exceptions.HTTPError, OSError)  # and a stream, these


def context(name: str | None = None) -> tuple[str, str] | None:
    """The docker CLI's context `name`, else its current one, as (name, engine address); None if none."""
    with suppress(DockerException):
        found = ContextAPI.get_context(name) if name else ContextAPI.get_current_context()
        return found and (found.Name, found.Host)
    return None


class Docker:
    """Runs, stops and inspects the container described by `config` (calls that name a container, or
    the engine, need none), through `client`: a docker.DockerClient, or None for docker.from_env()'s."""

    def __init__(self, config: Config | None = None, client: docker.DockerClient | None = None) -> None:
        if client is not None and not isinstance(client, DockerClient):
            raise TypeError(
                f"client: expected a docker.DockerClient, got {type(client).__name__}: pass docker.from_env()"
                " or docker.DockerClient(base_url='unix:///path/to/docker.sock'), not the SDK's APIClient"
            )
        self.config, self.client = config, client

    def run(self, adopt: bool = False, keep: bool = False) -> DockerResult:
        """Create and start the container: a success once its command runs, or if it exited 0 at once; else
        removed, its exit code in the error. adopt: first adopt a cut-short start's (_adopt). keep: leave
        one that ended or may run unanswered, for the caller to remove once recorded (else a crash reruns)."""
        if self.config is None:
            return DockerResult("nothing to run: make it Docker(Config.from_task(task))", "start")
        container_id, how = "", "adopting"  # till _adopt() has said what a start cut short left
        try:
            if adopt and (seen := self._adopt()):
                container_id, how = seen.container_id, "adopted"  # the worker's record says so in its log
            else:
                how = "creating"
                container_id = self._create()
                self._call("start", container_id)
                how = "success"  # it runs: from here on an error leaves that unknown, to adopt next time
                log.info("started container %s", container_id[:12], extra={"at": "after start"})
                seen = self._settle(container_id)
        except Exception as e:  # noqa: BLE001 - no error escapes run(): an EngineError, or a bug in cube
            failed = self._failed("start", e, container_id)
            failed.unreachable |= how in ("adopting", "success") and isinstance(e, EngineError)  # ask again
            if container_id and not (keep and failed.unreachable):  # unanswered, it may run: adopt it later
                with suppress(EngineError):
                    self.remove(container_id)  # leave nothing half-made behind
            return failed
        failed = seen.ended and seen.exit_code != 0 and how != "adopted"  # 0: it did its work at once
        output = self._last_line(container_id) if failed else ""
        if seen.ended and not keep:  # what matters of it is in `seen`: a finished task keeps no container
            with suppress(EngineError):
                self.remove(container_id)
        if failed:
            why = describe_exit(seen) + (f" ({output})" if output else "")
            error = f"could not start {self._about()}: its container {why} right after it started"
            return DockerResult(error, "start", container_id, observed=seen)
        return DockerResult(None, "start", container_id, how, seen.host_ports, seen)

    def stop(self, container_id: str) -> DockerResult:
        """Stop and remove the container, if labelled for this task and worker; one that exited is removed."""
        if not container_id:
            return DockerResult(error="no container id given: there is nothing to stop", action="stop")
        try:
            return self._stop(container_id)
        except Exception as e:  # noqa: BLE001 - no error escapes stop(): an EngineError, or a bug in cube
            return self._failed("stop", e, container_id)

    def inspect(self, container_id: str) -> Observed:
        """What the engine says of the container now; status "gone" if it has none by that id."""
        with suppress(_Gone):
            return Observed.from_inspect(self._call("inspect", container_id))
        return Observed(container_id)

    def containers(self, labels: dict[str, str]) -> list[Observed]:
        """Every container, running or not, that carries all of `labels`."""
        listed = self._call("list", all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        return [Observed.from_summary(s) for s in listed]

    def remove(self, container_id: str) -> None:  # running or not; one already gone is fine
        with suppress(_Gone):
            self._call("remove", container_id, force=True)

    def kill(self, container_id: str, signal: str = "SIGKILL") -> None:
        self._call("kill", container_id, signal=signal)

    def stats(self, container_id: str) -> Iterator[dict]:
        yield from self._stream("stats", container_id, stream=True, decode=True)

    def build(self, context, tag: str) -> Iterator[dict]:  # context: a tar archive, as a file object
        build = dict(fileobj=context, custom_context=True, tag=tag, rm=True, decode=True)
        yield from self._stream("build", **build, about=f"image {tag!r}")

    def image(self, name: str) -> dict | None:  # what the engine says of it (Architecture, ...); None: none
        with suppress(_Gone):
            return self._call("image", name, about=f"image {name!r}")

    def version(self) -> dict:  # the engine's `docker version`, and the API version this client speaks
        said = self._call("version", about="the Docker engine")
        return {**said, "ClientApiVersion": self.client.api.api_version}

    def info(self) -> dict:
        return self._call("info", about="the Docker engine")

    def _create(self) -> str:  # pulling the image first if the engine has none by that name
        c, about = self.config, self._about()
        labels = {LABEL_TASK: ""} | c.labels  # cube's label, on a Config made by hand too: stop() needs it
        args = dict(environment=c.env, labels=labels, name=c.name or None, ports=list(c.ports()))
        args["host_config"] = c.host_config()
        log.info("creating a container for %s", about, extra={"at": "before create"})
        try:
            made = self._call("create", c.image, c.cmd or None, **args, about=about)
        except EngineError as e:
            if isinstance(e.__cause__, ImageNotFound):
                log.info("image %s is not here; pulling it", c.image)
                self._call("pull", c.image, about=about)
            elif e.status != 409 or not self._free(c.name, labels):  # a worker removes it after its record
                raise
            made = self._call("create", c.image, c.cmd or None, **args, about=about)
        log.info("created container %s for %s", made["Id"][:12], about, extra={"at": "after create"})
        return made["Id"]

    def _free(self, name: str, labels: dict[str, str]) -> bool:
        """Take `name` from an earlier start's ended container or this start's unstarted one; True if free."""
        if (seen := self.inspect(name)).status == GONE:  # removed meanwhile, by the worker that recorded it
            return True
        ours = all(seen.labels.get(k) == labels.get(k) for k in (LABEL_TASK, LABEL_WORKER))
        this_start = seen.labels.get(LABEL_ATTEMPT) == labels.get(LABEL_ATTEMPT)
        if not ours or seen.status not in (("created",) if this_start else ("exited", "dead", "removing")):
            return False  # another's, or one that runs or may be about to
        with suppress(EngineError):  # being removed already
            self.remove(seen.container_id)  # by its id: the name may be someone else's by now
        return self._until_gone(seen.container_id) == "already gone"

    def _stop(self, container_id: str) -> DockerResult:
        done, seen = DockerResult(None, "stop", container_id), self.inspect(container_id)  # no result yet
        if seen.status in ("removing", GONE):  # someone (a worker that died, say) removes it
            return replace(done, result=self._until_gone(container_id))
        wanted = self.config.labels.items() if self.config else ()  # by hand: none; any start of the task
        wrong = [f"{k}={v}" for k, v in wanted if seen.labels.get(k) != v and k != LABEL_ATTEMPT]
        if wrong or LABEL_TASK not in seen.labels:
            why = f"container {container_id[:12]} is not labelled {', '.join(wrong) or LABEL_TASK}: cube "
            why += "stops only the containers it made (for its config's task and worker), and left it alone"
            return DockerResult(why, "stop", container_id)  # no result: nothing was stopped
        try:
            if seen.ended:  # it exited by itself (or by a stop a worker that died sent): say how
                done.observed, done.result = seen, f"it had already {describe_exit(seen)}"
            else:
                log.info("stopping container %s of %s", container_id[:12], self._about())
                self._call("stop", container_id, timeout=STOP_TIMEOUT)
                done.result = "success"  # it stopped: an error from here on only leaves it unremoved
                done.observed = self.inspect(container_id)
            self.remove(container_id)
            log.info("stopped and removed container %s", container_id[:12])
        except EngineError as e:  # 404: removed by someone else meanwhile; 409: being removed now
            if e.status not in (404, 409) and (e.unreachable or not done.result):  # it was not stopped
                raise
            removing = e.status == 409 and self._until_gone(container_id)  # else update_tasks() removes it:
            done.result = removing or ("already gone" if e.status == 404 else f"it stopped; not removed: {e}")
        return done

    def _adopt(self) -> Observed | None:
        """This attempt's container that runs, or ran, each inspected (the engine answers once a start under
        way has ended: one a worker sent as it died counts); those that never started are removed."""
        listed = self.containers({k: v for k, v in self.config.labels.items() if k != LABEL_ATTEMPT})
        found = [o for s in listed if of_attempt(o := self.inspect(s.container_id), self.config)]
        started = [s for s in found if s.started_at and s.status != GONE]
        seen = min(started, key=lambda s: s.ended, default=None)  # one that runs, else one that ran
        for other in (o for o in found if o.status != GONE and o is not seen):
            self.remove(other.container_id)
        return seen

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
            if len({p[-1] for p in top["Processes"] or []}) > 1:  # ps -ef's CMD: init has exec'd the command
                break
            time.sleep(0.005)
        return self.inspect(container_id)

    def _until_gone(self, container_id: str) -> str:  # it ran no more: a stop is done, its removal may lag
        deadline = time.monotonic() + STOP_TIMEOUT
        while (status := self.inspect(container_id).status) != GONE and time.monotonic() < deadline:
            time.sleep(0.02)
        return "already gone" if status == GONE else f"it was still {status} after {STOP_TIMEOUT} s"

    def _last_line(self, container_id: str) -> str:  # often the reason it failed
        with suppress(EngineError, IndexError):  # IndexError: it printed nothing
            return self._call("logs", container_id, tail=1).decode(errors="replace").splitlines()[-1].strip()
        return ""

    def _call(self, step: str, *args, about: str = "", **kwargs):
        """docker.APIClient's method for `step`, connecting first if need be; SDK errors as EngineError."""
        try:
            if self.client is None:  # docker.from_env() asks the engine its API version at once
                self.client = docker.from_env(timeout=ENGINE_TIMEOUT, max_pool_size=32)
            return getattr(self.client.api, _CALLS.get(step, step))(*args, **kwargs)
        except _SDK_ERRORS as e:
            raise self._error(step, e, about or self._about(*args[:1])) from e

    def _stream(self, step: str, *args, about: str = "", **kwargs) -> Iterator[dict]:
        about = about or self._about(*args)
        try:
            yield from self._call(step, *args, about=about, **kwargs)  # closing this closes the SDK's
        except _STREAM_ERRORS as e:
            raise self._error(step, e, about) from e

    def _failed(self, step: str, error: Exception, container_id: str) -> DockerResult:
        if isinstance(error, EngineError):
            return DockerResult(str(error), step, container_id, unreachable=error.unreachable)
        log.exception("cube failed to %s %s", step, about := self._about(container_id))  # a bug in cube
        return DockerResult(f"could not {step} {about}: a bug in cube ({error!r})", step, container_id)

    def _about(self, container_id: str = "") -> str:
        task = f"task {self.config.name or self.config.image!r}" if self.config else "the Docker engine"
        return f"container {str(container_id)[:12]} of {task}" if container_id else task  # a str, if right

    def _error(self, step: str, error: Exception, about: str) -> EngineError:
        log.info("could not %s %s: %r", step, about, error)  # the SDK's own words go to the log only
        failed = f"could not {_VERBS.get(step, step)} {about}"
        if silence := _silence(error):
            start = "Start Docker Desktop or dockerd (`make engine` in the cube folder), then try again."
            failed += f": no Docker engine answers at {_address(self.client)}: {silence}. {start}"
            return EngineError(step, failed, unreachable=True)
        if self.client is None and isinstance(error, ValueError):  # from_env() could not read the address
            return EngineError(step, f"{failed}: cube cannot read the address ({error}): fix DOCKER_HOST")
        c, status = self.config, (error.status_code if isinstance(error, APIError) else None)
        said = f"the Docker engine said: {error.explanation}" if status else error
        why = explain(step, status, c and c.name, c and c.image) or said
        return (_Gone if status == 404 else EngineError)(step, f"{failed}: {why}", status=status)


class _Gone(EngineError):
    """The engine has no such container or image (404)."""


# The docker.APIClient method for a step, where it is not the step's own name; how a step reads.
_CALLS = {"inspect": "inspect_container", "image": "inspect_image", "list": "containers"}
_CALLS |= {"remove": "remove_container", "create": "create_container"}
_VERBS = {"list": "list the containers of", "version": "ask the version of", "image": "inspect", "create":
          "create the container of", "pull": "pull the image of"}  # fmt: skip


def _silence(error: BaseException | None) -> str:
    """Why no engine answered (refused, reset, timed out) in words; "" if one did (unanswered, it may act)."""
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
        return f"unix://{path}" if path else client.api.base_url.replace("http", "tcp").replace("tcps", "tcp")
    return "where docker.from_env() looks (DOCKER_HOST, or the docker context)"
