"""What a worker does: take requests off its queue, start or stop their containers, and keep its
records true to what the engine says (chapter 4, and the run loop, inspection and store that the
book adds in later chapters, without their bugs).

A request is a Task put on the queue with the state wanted for it: SCHEDULED to start it,
COMPLETED to stop it. The worker's db holds its own record of each task: what it last *observed*.

Where cube differs from the book, and why:
- Observed state. update_tasks() asks the engine about every container the worker owns and moves
  each task to what is true now: exit code 0 is COMPLETED; another exit code, an out-of-memory kill
  or a vanished container is FAILED, with the exit code and a reason in words. The book's later
  Inspect dereferences nothing when a container has vanished and calls every exit a failure.
- Intent first. Before a container is created, the task is recorded as SCHEDULED with the
  operation under way ("start"); the outcome is recorded after. After a crash, a worker opened on
  the same db_path finishes or undoes what was half done before anything else (reconcile()).
- A task never has two containers, and one task's requests are handled in the order queued:
  while an operation is under way on a task, its later requests wait, whatever `parallel` is.
- A request the engine could not hear at all (no engine, or no answer) goes back to the front of
  the queue and the task keeps its state: nothing was decided, so nothing is reported.
- Containers of finished tasks are removed: a COMPLETED or FAILED task has no container left.
- A task is stopped by enqueueing it with state COMPLETED; the worker takes the container id from
  its own db, and touches only a container labelled for that task and worker. The book makes the
  caller copy the container id by hand, and marks a failed stop COMPLETED anyway.
- An invalid transition returns an error naming both states and changes nothing in the db. The
  book stores a task it sees for the first time even when it then refuses the transition.
- The queue holds deep copies (stored as JSON): changing a Task after add_task(), even its sets
  and dicts, does not change the request. The book's Go queue holds struct values, whose maps
  (ExposedPorts, PortBindings) are still shared with the caller.
- All public methods are safe to call from several threads; the book locks nothing.
"""

import copy
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import docker

from cube.docker import ENGINE_ERRORS, Docker, DockerResult, Observed
from cube.loop import Loop
from cube.observe import observed, started, stopped
from cube.state import FINAL_STATES, State, Transition, valid_state_transition
from cube.store import Store
from cube.task import LABEL_TASK, LABEL_WORKER, Config, Task

log = logging.getLogger(__name__)


class Worker:
    """Runs the tasks it is given as containers on one Docker engine.

    Args:
        name: the worker's name; it labels every container the worker creates.
        client: a docker.DockerClient for the engine to use; None connects with docker.from_env()
            (DOCKER_HOST, or the local engine) on first use.
        db_path: a SQLite file that keeps tasks, queue and history across restarts; None keeps
            them in memory, gone with the worker.
        parallel: how many requests a started worker handles at once; 1 is the book's worker.

    Raises:
        TypeError: client is not a docker.DockerClient.
        cube.store.StoreInUse: another worker has db_path open.
    """

    def __init__(
        self,
        name: str,
        client: docker.DockerClient | None = None,
        db_path: str | None = None,
        parallel: int = 1,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: a worker needs a name, e.g. Worker('worker-1'); got {name!r}")
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise ValueError(f"parallel: must be a whole number >= 1, got {parallel!r}")
        self.name = name
        self.client = client
        self.parallel = parallel
        self.store = Store(db_path, name)
        self._listeners: list[Callable[[Transition | Task], None]] = []
        self._reconciled = db_path is None  # a worker that remembers nothing has nothing to recover
        self._reconciling = threading.Lock()
        self._loop = Loop(self, parallel)
        if not self._reconciled:
            self.reconcile()

    @property
    def client(self) -> docker.DockerClient | None:
        """The Docker client the worker uses; None until it first needs one."""
        return self._client

    @client.setter
    def client(self, client: docker.DockerClient | None) -> None:
        if client is not None and not isinstance(client, docker.DockerClient):
            raise TypeError(
                f"client: expected a docker.DockerClient, got {type(client).__name__}. Pass "
                "docker.from_env(), or docker.DockerClient(base_url='unix:///path/to/docker.sock') "
                "for another engine (a docker.APIClient is the SDK's lower level: not this)."
            )
        self._client = client

    # --- what the worker knows ---------------------------------------------------------------------

    @property
    def db(self) -> dict[uuid.UUID, Task]:
        """A snapshot of the worker's records: task id -> what it last observed of the task."""
        return {t.id: t for t in self.store.tasks()}

    @property
    def queue(self) -> list[Task]:
        """A snapshot of the requests waiting, front first."""
        return self.store.queued()

    @property
    def task_count(self) -> int:
        """How many different tasks this worker has been given."""
        return self.store.given()

    def history(self, task_id: uuid.UUID | None = None) -> list[Transition]:
        """Every change of state the worker recorded, oldest first; only one task's if given."""
        return self.store.history(task_id)

    def subscribe(self, listener: Callable[[Transition | Task], None]) -> Callable[[], None]:
        """Tell listener(change) of every change the worker records; returns a function to unsubscribe.

        change is a Transition when a task changes state, or a copy of the Task when a request
        joins the queue. Listeners run on the thread that made the change, after it is recorded;
        one that raises is logged and does not stop the others.
        """
        self._listeners.append(listener)
        return lambda: listener in self._listeners and self._listeners.remove(listener)  # once is enough

    # --- the chapter's methods ---------------------------------------------------------------------

    def add_task(self, task: Task) -> None:
        """Put a copy of `task` at the back of the queue: "bring this task to task.state".

        Raises:
            ValueError: task is not a Task, or has an impossible field (it is not queued).
        """
        if not isinstance(task, Task):
            raise ValueError(
                f"task: add_task takes a cube.Task, got a {type(task).__name__}; make one with "
                "Task(image=..., state=State.SCHEDULED)"
                + (" or Task.from_dict(d)" if isinstance(task, dict) else "")
            )
        task.validate()
        request = copy.deepcopy(task)
        self.store.enqueue(request)
        self._loop.poke()
        self._notify(request)

    def run_task(self) -> DockerResult:
        """Take the next request off the queue and start or stop its task, as its state asks.

        The next request is the first one whose task has no operation under way.
        """
        if not self._reconcile_first():
            return self._unreachable_result()
        with self.store.transaction():
            queued = self.store.dequeue()
            if queued is None:
                waiting = len(self.store.queued())
                why = f"{waiting} request(s) wait for tasks being started or stopped" if waiting else ""
                log.debug("no tasks in the queue%s", why and f" ready: {why}")
                return DockerResult(action="none", result=why or "no tasks in the queue")
            # A task seen for the first time is taken to be in the state it arrives with.
            persisted = self.store.task(queued.id) or queued
            if not valid_state_transition(persisted.state, queued.state):
                return DockerResult(
                    error=f"invalid transition from {persisted.state} to {queued.state} "
                    f"for task {queued.name or queued.id}; nothing was done",
                    action="none",
                )
            if queued.state not in (State.SCHEDULED, State.COMPLETED):
                return DockerResult(
                    error=f"a task queued as {queued.state} asks for nothing: enqueue it as "
                    "SCHEDULED to start it or COMPLETED to stop it",
                    action="none",
                )
            go = self._begin(queued, "start" if queued.state is State.SCHEDULED else "stop", "none")
        return go()

    def start_task(self, task: Task) -> DockerResult:
        """Start the task's container and record the task as RUNNING, or FAILED if it could not."""
        if not self._reconcile_first():
            return self._unreachable_result()
        with self.store.transaction():
            go = self._begin(task, "start", "start")
        return go()

    def stop_task(self, task: Task) -> DockerResult:
        """Stop and remove the task's container and record the task as COMPLETED.

        The container id comes from the worker's db. If the stop fails, the task keeps its state
        and the error is returned.
        """
        if not self._reconcile_first():
            return self._unreachable_result()
        with self.store.transaction():
            go = self._begin(task, "stop", "stop")
        return go()

    # --- observing the engine ----------------------------------------------------------------------

    def update_tasks(self) -> list[Transition]:
        """Ask the engine about every container this worker owns and bring the db in line.

        Like the kubelet's relist: one list of the worker's containers, a closer look only at
        those that changed, and one recorded transition for each difference. Returns them.
        """
        if not self._reconcile_first():
            return []
        return self._observe() or []

    def reconcile(self) -> list[Transition]:
        """Finish what a previous run on the same db left half done, then observe every task.

        A worker opened on a db_path does this before anything else (and again before its next
        operation if the engine could not be reached). Half-done starts are finished (a running
        container is adopted, any other is removed and the task started again); half-done stops
        are carried out.
        """
        with self._reconciling:
            if self._reconciled:
                return []
            for task_id, op in self.store.busy().items():
                task = self.store.task(task_id)
                log.info("finishing the %s of task %s left half done", op, task.name or task.id)
                result = self._start(task, known=True) if op == "start" else self._stop(task)
                if result.unreachable:
                    return []
            changes = self._observe()
            self._reconciled = changes is not None
            return changes or []

    # --- the run loop ------------------------------------------------------------------------------

    def start(self) -> None:
        """Work in the background (cube.loop): handle requests as they arrive, `parallel` at a
        time, and observe the engine every second. Does nothing if already started."""
        self._loop.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop working in the background. Operations under way finish first; requests still
        queued stay queued. Returns when every background thread has ended (or after timeout)."""
        self._loop.stop(timeout)

    @property
    def running(self) -> bool:
        """True while the worker works in the background (between start() and stop())."""
        return self._loop.running

    def close(self) -> None:
        """Stop the background work and release the db file. Containers are left as they are."""
        self.stop()
        self.store.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.store.path or "memory"
        return f"Worker({self.name!r}, db={where}, tasks={len(self.store.tasks())}, queued={len(self.queue)})"

    # --- how it is done ----------------------------------------------------------------------------

    def _begin(self, task: Task, op: str, action: str) -> Callable[[], DockerResult]:
        """Inside a transaction: check that `op` ("start" or "stop") may begin on the task, and
        record that it has. Returns what to run once the transaction is over: the operation (which
        talks to the engine, so holds nothing), or the refusal."""
        error = self._refuse(task, op)
        if error:
            return lambda: DockerResult(error=error, action=action)
        known = self.store.task(task.id) is not None
        task, change = self._claim(task, op)

        def carry_out() -> DockerResult:
            self._notify(change)
            return self._start(task, known) if op == "start" else self._stop(task)

        return carry_out

    def _refuse(self, task: Task, op: str) -> str | None:
        """Why `op` ("start" or "stop") cannot begin on the task now, or None if it can."""
        persisted = self.store.task(task.id)
        label = task.name or task.id
        if persisted and self.store.op(task.id):
            doing = {"start": "started", "stop": "stopped"}[self.store.op(task.id)]
            return f"task {label} is being {doing} by another thread; try again when it is done"
        if op == "stop":
            if persisted is None:
                return f"worker {self.name} has no record of task {label}: there is nothing to stop"
            if persisted.state in FINAL_STATES:
                return f"task {label} is already {persisted.state}: there is nothing to stop"
        elif persisted and persisted.state not in (State.PENDING, State.SCHEDULED, State.FAILED):
            where = f" in container {persisted.container_id[:12]}" if persisted.container_id else ""
            return f"task {label} is already {persisted.state}{where}: stop it before starting it again"
        return None

    def _claim(self, task: Task, op: str) -> tuple[Task, Transition | None]:
        """Record that `op` is under way on the task, before the engine is asked to do anything.

        For a start, the intent is the task as SCHEDULED with nothing observed yet. Returns the
        task as recorded and the move recorded, if any (announced after the transaction).
        """
        persisted = self.store.task(task.id)
        if op == "stop":
            self.store.save(persisted, op)
            return persisted, None
        intent = replace(
            copy.deepcopy(task),
            state=State.SCHEDULED,
            container_id="",
            host_ports={},
            exit_code=None,
            restarts=0,
            reason="starting",
            start_time=datetime.now(UTC),
            finish_time=None,
        )
        src = persisted.state if persisted else None
        reason = None if src is State.SCHEDULED else ("accepted" if src is None else "asked to start again")
        return intent, self._record(intent, op, src, reason)

    def _start(self, task: Task, known: bool) -> DockerResult:
        """Create and start the task's container (a start already claimed), and record the outcome.

        known: the worker had a record of the task before, so a container may exist already.
        """
        d = self._docker(task)
        result = d.run(adopt=known)  # a start that may have begun before could have made one
        self._keep_client(d)
        if result.unreachable:
            return self._put_back(task, State.SCHEDULED, result)
        if result.error:
            log.warning("task %s failed to start: %s", task.id, result.error)
        done = started(task, result)
        self._notify(self._record(done, "", State.SCHEDULED, done.reason))
        return result

    def _stop(self, task: Task) -> DockerResult:
        """Stop and remove the task's container (a stop already claimed), and record the outcome."""
        d = self._docker(task)
        if task.container_id:
            result = d.stop(task.container_id)
        else:
            result = DockerResult(action="stop", result="it had no container yet")
        self._keep_client(d)
        if result.unreachable:
            return self._put_back(task, State.COMPLETED, result)
        if result.error:
            log.warning("task %s was not stopped: %s", task.id, result.error)
            self.store.save(task)  # the operation is over; the task is as it was
            self._loop.poke()
            return result
        done = stopped(task, result)
        self._notify(self._record(done, "", task.state, done.reason))
        log.info("stopped task %s (container %s)", task.id, task.container_id[:12])
        return result

    def _put_back(self, task: Task, wanted: State, result: DockerResult) -> DockerResult:
        """The engine did not answer: keep the task as it is and its request first in the queue."""
        log.warning("task %s waits for the engine: %s", task.id, result.error)
        result.error += " The request stays first in the queue and will be tried again."
        with self.store.transaction():
            self.store.save(replace(task, reason="waiting for the Docker engine to answer"))
            self.store.enqueue(replace(task, state=wanted), front=True)
        self._loop.poke()
        return result

    def _observe(self) -> list[Transition] | None:
        """update_tasks() without recovering first; None if the engine did not answer."""
        d = self._docker()
        watched = [t for t in self.store.tasks() if t.state is State.RUNNING]
        try:
            listed = {seen.container_id: seen for seen in d.containers({LABEL_WORKER: self.name})}
        except ENGINE_ERRORS as e:
            log.warning("worker %s cannot observe its containers: %s", self.name, e)
            return None
        finally:
            self._keep_client(d)
        changes = []
        for task in watched:
            seen = listed.get(task.container_id, Observed(task.container_id))
            try:
                if seen.status != "running" or task.restart_policy:  # the exit code, restart count
                    seen = d.inspect(task.container_id)
                changes += self._apply(task, seen, d)
            except ENGINE_ERRORS as e:
                log.warning("worker %s cannot observe task %s: %s", self.name, task.id, e)
        self._collect(listed, d)
        return changes

    def _apply(self, task: Task, seen: Observed, d: Docker) -> list[Transition]:
        """Record what the engine says of a RUNNING task's container, if it differs."""
        new = observed(task, seen)
        if new is None:
            return []
        with self.store.transaction():
            if self.store.task(task.id) != task or self.store.op(task.id):
                return []  # changed by someone else since we looked: the next round will see
            change = self._record(new, "", task.state, new.reason)
        self._notify(change)
        if new.state in FINAL_STATES:
            d.remove(task.container_id)
        return [change]

    def _collect(self, listed: dict[str, Observed], d: Docker) -> None:
        """Remove containers of this worker that no task needs: those of finished tasks, and any
        container labelled for a task whose record names another one."""
        for seen in listed.values():
            try:
                task = self.store.task(uuid.UUID(seen.labels.get(LABEL_TASK, "")))
            except ValueError:
                continue
            if task is None or self.store.op(task.id):
                continue  # not ours to judge, or being worked on
            stray = task.state is State.RUNNING and task.container_id != seen.container_id
            if task.state in FINAL_STATES or stray:
                log.info("removing container %s: task %s does not need it", seen.container_id[:12], task.id)
                try:
                    d.remove(seen.container_id)
                except ENGINE_ERRORS as e:
                    log.warning("could not remove container %s: %s", seen.container_id[:12], e)

    def _record(self, task: Task, op: str, src: State | None, reason: str | None) -> Transition | None:
        """Save the task with the operation under way (if any) and the move that led there.

        Returns the move, for the caller to announce with _notify() once nothing is held.
        """
        change = None
        if reason is not None:
            change = Transition(datetime.now(UTC), task.id, src, task.state, reason)
            log.info("task %s: %s", task.name or task.id, change)
        self.store.save(task, op, change)
        if not op:
            self._loop.poke()  # the task is free again: its next request may go
        return change

    def _notify(self, change: Transition | Task | None) -> None:
        if change is None:
            return
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # noqa: BLE001 - one bad listener must not stop the worker
                log.exception("a listener of worker %s failed", self.name)

    def _docker(self, task: Task | None = None) -> Docker:
        return Docker(task and Config.from_task(task, self.name), self.client)

    def _keep_client(self, d: Docker) -> None:
        if self._client is None:
            self._client = d.client  # keep the connection for next time

    def _reconcile_first(self) -> bool:
        if not self._reconciled:
            self.reconcile()
        return self._reconciled

    def _unreachable_result(self) -> DockerResult:
        return DockerResult(
            error=f"worker {self.name} cannot reach its Docker engine to recover the tasks in "
            f"{self.store.path}, so it does nothing yet; start the engine and try again",
            action="none",
            unreachable=True,
        )
