"""The worker's API, its first part (chapter 5): HTTP over one Worker, with FastAPI.

A thin view: every endpoint reads the worker's db, queue and history or adds a request to its
queue, and the worker's own loop does the work. Open /docs for an interactive page.

    POST   /tasks                  a task event: {"state": "SCHEDULED", "task": {...}} -> 201
    GET    /tasks                  every task -> 200
    GET    /tasks/{id}             one task, and what the engine says of its container now -> 200
    DELETE /tasks/{id}             stop it (queued as COMPLETED) -> 204
    GET    /tasks/{id}/history     its transitions, oldest first -> 200
    GET    /stats                  the machine and the tasks (cube.stats) -> 200

JSON uses snake_case, states by name ("RUNNING"), times in ISO 8601 UTC. Bad input never gives a
500: every error is a 4xx with {"error": a sentence, "where": the place in the request, or null}
(cube.refusals). Two are in plain text, not cube's: uvicorn's 400 for bytes that are not HTTP, and
Starlette's 400 or 416 for a bad Range header on the docs' files.

With a token (cube.auth), every request but the docs must carry `Authorization: Bearer TOKEN`; any
other gets 401 before anything else is read. A worker that listens beyond loopback must have one.

Where cube differs from the book's API: the book writes a 400 and then carries on (no return) into
a nil dereference, ignores a malformed uuid, and panics on a type assertion in GET /tasks/{id}.
"""

import logging
import threading
import uuid
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import Literal

import uvicorn
from fastapi import FastAPI, Response, Security
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field

from cube.auth import MAX_HEADERS, RequireToken, listen, listen_check, token_check, url_of
from cube.docker import Docker, EngineError
from cube.refusals import LimitBody, PlainPath, Problem, install
from cube.state import State, valid_state_transition
from cube.stats import Metrics
from cube.task import Task, TaskError
from cube.web import BehindProxy
from cube.worker import Worker

log = logging.getLogger(__name__)


class TaskSpec(BaseModel):
    """What a request may say about a task: what to run. The rest the worker observes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # JSON has no uuid type: an id comes as a string, which strict mode would refuse
    id: uuid.UUID | None = Field(None, strict=False, description="omit for a new task; its id to stop it")
    name: str = Field("", description="the container's name; empty lets Docker choose", examples=["web-1"])
    image: str = Field("", examples=["cube/helloworld-http:latest"])
    cpu: float = Field(0.0, description="cores, 0 for no limit")
    memory: int = Field(0, le=2**63 - 1, description="bytes, 0 for no limit")
    disk: int = Field(0, le=2**63 - 1)
    exposed_ports: list[str] = Field(default_factory=list, examples=[["80/tcp"]])
    port_bindings: dict[str, str] = Field(default_factory=dict, description='e.g. {"80/tcp": "8080"}')
    restart_policy: str = Field(
        "", description='"" or "no", "always", "unless-stopped", "on-failure" or "on-failure:3"'
    )
    cmd: list[str] = Field(default_factory=list, description="replaces the image's command")


class TaskEvent(BaseModel):
    """A request: bring this task to this state. SCHEDULED starts it, COMPLETED stops it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    state: Literal["SCHEDULED", "COMPLETED"]
    task: TaskSpec


def create_app(worker: Worker, metrics: Metrics | None = None, token: str | None = None) -> FastAPI:
    """An API over `worker`. While the app runs, the worker's loop and the metrics sampler run.

    Args:
        token: if given, every request but the docs must carry `Authorization: Bearer <token>`.

    Raises:
        ValueError: token is empty, or has whitespace at either end (no request could carry it).
    """
    token_check(token)
    metrics = metrics or Metrics(worker)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        metrics.start()
        yield
        metrics.stop()
        worker.stop()

    # The scheme, declared for /openapi.json and the Authorize button of /docs (RequireToken checks it)
    bearer = [Security(HTTPBearer(auto_error=False, description="the worker's token (--token)"))]
    app = FastAPIOffline(  # FastAPI, with /docs served from the package, not a CDN
        title=f"cube worker {worker.name}",
        description="The worker of a small container orchestrator: queue tasks, watch them run."
        + (" Every request needs the worker's token: click Authorize." if token else ""),
        lifespan=lifespan,
        dependencies=bearer if token else None,
    )
    app.add_middleware(LimitBody)
    app.add_middleware(PlainPath)
    app.add_middleware(BehindProxy)
    if token:
        app.add_middleware(RequireToken, token=token)  # the outermost: before anything is read
    install(app)

    @app.post("/tasks", status_code=201, summary="Queue a task event: start (SCHEDULED) or stop (COMPLETED)")
    def post_task(event: TaskEvent) -> dict:
        spec = {k: v for k, v in event.task.model_dump(exclude_unset=True).items() if v is not None}
        with worker.store.transaction():  # judged and queued at once: no other request in between
            known = _find(worker, event.task.id) if event.task.id else None
            if event.state == "COMPLETED":
                if event.task.id is None:
                    raise Problem(422, "a stop needs the id of the task to stop", "body.task.id")
                return _stop(worker, _known(worker, event.task.id, "body.task.id"), "body.task.id")
            if known:
                _unless_dropped(worker, known, State.SCHEDULED, "body.state")
            base = known.to_dict() if known else {}
            base.update({k: (str(v) if k == "id" else v) for k, v in spec.items()})
            base = {k: v for k, v in base.items() if k in TaskSpec.model_fields}
            try:
                task = Task.from_dict({**base, "state": "SCHEDULED"})
            except TaskError as e:
                where = f"body.task.{e.field}" if e.field in TaskSpec.model_fields else "body.task"
                raise Problem(422, str(e), where) from None
            worker.add_task(task)
        return task.to_dict()

    @app.get("/tasks", summary="Every task the worker knows, and those waiting to be taken (PENDING)")
    def get_tasks() -> list[dict]:
        return [t.to_dict() for t in _all(worker)]

    @app.get("/tasks/{task_id}", summary="One task, and what the engine says of its container now")
    def get_task(task_id: uuid.UUID) -> dict:
        task = _known(worker, task_id)
        return {**task.to_dict(), "container": _container(worker, task)}

    @app.delete("/tasks/{task_id}", status_code=204, summary="Stop a task (queued as COMPLETED)")
    def delete_task(task_id: uuid.UUID) -> Response:
        with worker.store.transaction():  # judged and queued at once
            _stop(worker, _known(worker, task_id))
        return Response(status_code=204)

    @app.get("/tasks/{task_id}/history", summary="A task's transitions, oldest first")
    def get_history(task_id: uuid.UUID) -> list[dict]:
        _known(worker, task_id)
        return [
            {"time": t.time.isoformat(), "task_id": str(t.task_id), "src": t.src and t.src.name,
             "dst": t.dst.name, "reason": t.reason}
            for t in worker.history(task_id)
        ]  # fmt: skip

    @app.get("/stats", summary="The machine, the task count and states, each running task's CPU and memory")
    def get_stats() -> dict:
        return metrics.snapshot()

    return app


def _all(worker: Worker) -> list[Task]:
    """The worker's records, then the tasks only queued so far, shown as PENDING: not yet taken."""
    with worker.store.transaction():  # one look: else a request taken in between would show twice
        known, queue = worker.db.values(), worker.queue
    waiting, ids = {}, {t.id for t in known}
    for t in queue:
        if t.id not in ids and t.id not in waiting:
            waiting[t.id] = replace(t, state=State.PENDING)
    return [*known, *waiting.values()]


def _find(worker: Worker, task_id: uuid.UUID) -> Task | None:
    """The one task's record, or its first request as PENDING if it is only queued so far."""
    with worker.store.transaction():
        if (task := worker.db.get(task_id)) is not None:
            return task
        return next((replace(t, state=State.PENDING) for t in worker.queue if t.id == task_id), None)


def _known(worker: Worker, task_id: uuid.UUID, where: str = "path.task_id") -> Task:
    task = _find(worker, task_id)
    if task is None:
        raise Problem(404, f"worker {worker.name} has no task {task_id}", where)
    return task


def _stop(worker: Worker, task: Task, where: str = "path.task_id") -> dict:
    _unless_dropped(worker, task, State.COMPLETED, where)
    worker.add_task(replace(task, state=State.COMPLETED))
    return replace(task, state=State.COMPLETED).to_dict()


def _unless_dropped(worker: Worker, task: Task, wanted: State, where: str) -> None:
    """Refuse (409) a request to bring `task` to `wanted` that the worker would drop as invalid. The
    worker takes a task's requests in order, so it is judged from the state those queued or under way
    lead to (a start to RUNNING, a stop to COMPLETED), not from the state the task is in now."""
    op = worker.store.op(task.id)
    ahead, waiting = {"start": State.RUNNING, "stop": State.COMPLETED}.get(op, task.state), bool(op)
    for request in worker.queue:
        if request.id == task.id and valid_state_transition(ahead, request.state):
            ahead, waiting = State.RUNNING if request.state is State.SCHEDULED else State.COMPLETED, True
    if valid_state_transition(ahead, wanted):
        return
    if waiting:
        verb = "started again" if wanted is State.SCHEDULED else "stopped"
        raise Problem(409, f"a request for task {task.id} is already queued: once it is done the task "
                      f"will be {ahead}, which cannot be {verb}; wait for that (GET /tasks/{task.id}), "
                      "then ask again", where)  # fmt: skip
    if wanted is State.SCHEDULED:
        raise Problem(409, f"task {task.id} is {task.state}: it cannot be started again", where)
    raise Problem(409, f"task {task.id} is already {task.state}: there is nothing to stop", where)


def _container(worker: Worker, task: Task) -> dict | None:
    """What the engine says of the task's container now, or null if it never had one."""
    if not task.container_id:
        return None
    try:
        seen = Docker(client=worker.client).inspect(task.container_id)
    except EngineError as e:
        why = "no engine answers" if e.unreachable else "the engine refused to say"
        return {"status": "unknown", "exit_code": None, "host_ports": {}, "error": why}
    return {"status": seen.status, "exit_code": seen.exit_code, "host_ports": seen.host_ports}


class Server:
    """A worker's API served on a thread, for a notebook or a test: `with Server(worker) as s:`.

    Args:
        worker: the worker to serve; its loop runs while the server does.
        host, port: where to listen; port 0 picks a free one (see .url).
        token: if given, every request must carry `Authorization: Bearer <token>` (see .headers).

    Raises:
        ValueError: host is not loopback and there is no token, the token is empty or has whitespace
            at either end, or port is not 0-65535.
    """

    def __init__(
        self,
        worker: Worker,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
        token: str | None = None,
    ) -> None:
        listen_check(host, token)
        app = create_app(worker, token=token)
        self.worker = worker
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._socket = listen(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = url_of(self._socket)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=2,
            h11_max_incomplete_event_size=MAX_HEADERS,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.02)

    def stop(self) -> None:
        """Stop serving (and the worker's loop); the worker itself stays open."""
        self._server.should_exit = True
        self._thread.join(10)
        with suppress(OSError):
            self._socket.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server({self.worker.name!r}, url={self.url!r})"
