"""What a worker does (chapter 4): take requests off its queue, start or stop their containers, and
keep its records true to what the engine says.

A request is a Task queued with the state wanted for it: SCHEDULED to start it, COMPLETED to stop it.
The db holds the worker's record of each task: what it last observed.

Where cube differs from the book, and why:
- It records the intent before it asks the engine anything, and what the engine said after: a worker
  opened on the same db after a crash finishes what was half done (reconcile()), at most once.
- update_tasks() records what is true of each container now: exit code 0 is COMPLETED, any other end
  FAILED, with the code and why. The book's Inspect trips on a vanished container, fails every exit.
- One task's requests go one at a time, in order, whatever `parallel` is: never two containers.
- A stop finds the container in the db (the book's main copies its id by hand), touches only one
  labelled for the task and worker, and leaves the task as it was if it fails (the book: COMPLETED).
- A request no engine heard goes back to the front of the queue; an invalid one changes nothing.
- db and queue are read-only views; listeners are told on a thread of their own; all is thread-safe.
"""

import copy
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from cube.docker import Docker, DockerClient, DockerResult, EngineError, Observed
from cube.loop import Loop, Notifier
from cube.observe import observed, started, stopped
from cube.state import FINAL_STATES, State, Transition, valid_state_transition
from cube.store import Records, Requests, Store
from cube.task import LABEL_TASK, LABEL_WORKER, Config, Task

log = logging.getLogger(__name__)
_WANTED = {"start": "SCHEDULED", "stop": "COMPLETED"}  # the state a request asks for, by operation


class Worker:
    """Runs the tasks it is given as containers on one Docker engine.

    Args:
        name: labels every container the worker creates.
        client: a docker.DockerClient; None connects with docker.from_env() on first use.
        db_path: a SQLite file that keeps tasks, queue and history across restarts; None: in memory.
        parallel: how many requests a started worker handles at once; 1 is the book's worker.

    Raises:
        TypeError: client is not a docker.DockerClient.
        cube.store.StoreInUse: another worker has db_path open.
    """

    def __init__(
        self, name: str, client: DockerClient | None = None, db_path: str | None = None, parallel: int = 1
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: a worker needs a name, e.g. Worker('worker-1'); got {name!r}")
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise ValueError(f"parallel: must be a whole number >= 1, got {parallel!r}")
        if client is not None and not isinstance(client, DockerClient):
            raise TypeError(
                f"client: expected a docker.DockerClient, got {type(client).__name__}. Pass "
                "docker.from_env(), or docker.DockerClient(base_url='unix:///path/to/docker.sock')"
            )
        self.name, self.parallel, self.client, self._last = name, parallel, client, None
        self.store = Store(db_path, name)
        self._records, self._notifier, self._loop = Records(self.store), Notifier(name), Loop(self, parallel)
        self._stale = set(self.store.busy())  # operations a worker that died left half done
        self._reconciled, self._reconciling = db_path is None, threading.Lock()
        if not self._reconciled:
            self.reconcile()

    @property
    def db(self) -> Records:
        """The worker's records: task id -> what it last observed of the task. Read-only."""
        return self._records

    @property
    def queue(self) -> Requests:
        """A copy of the requests waiting, front first. Read-only: add_task() queues one."""
        return Requests(self.store.queued())

    @property
    def task_count(self) -> int:
        """How many different tasks this worker has been given."""
        return self.store.given()

    def history(self, task_id: uuid.UUID | None = None) -> list[Transition]:
        """Every change of state the worker recorded, oldest first; only one task's if given."""
        return self.store.history(task_id)

    def subscribe(self, listener: Callable[[Transition | Task], None]) -> Callable[[], None]:
        """Tell listener(change) of each change recorded from now on: a Transition, or the Task a request
        queued. They are told on one thread, in order, soon after; returns a function to unsubscribe."""
        return self._notifier.subscribe(listener)

    # --- the chapter's methods ---------------------------------------------------------------------

    def add_task(self, task: Task) -> None:
        """Put a copy of `task` at the back of the queue: "bring it to task.state" (listing 4.8).

        Raises:
            ValueError: task is not a Task, or has an impossible field (it is not queued).
        """
        if not isinstance(task, Task):
            from_dict = " or Task.from_dict(d)" if isinstance(task, dict) else ""
            raise ValueError(
                f"task: add_task takes a cube.Task, got a {type(task).__name__}; make one with "
                f"Task(image=..., state=State.SCHEDULED){from_dict}"
            )
        task.validate()
        request = copy.deepcopy(task)
        with self.store.transaction():
            self.store.enqueue(request)
            self._notifier.tell(request)
        self._loop.poke()

    def run_task(self) -> DockerResult:
        """Take the next request off the queue and start or stop its task, as it asks (listing 4.12).

        The next request is the first one whose task has no operation under way.
        """
        if not self._recovered():
            return self._cannot_recover()
        queued = self.store.dequeue()  # it leaves the queue when start_task or stop_task takes it
        if queued is None:
            return self._nothing_ready()
        try:
            persisted = self.store.task(queued.id) or queued  # a task seen for the first time: as it comes
            if not valid_state_transition(persisted.state, queued.state):
                self.store.take(queued)
                error = f"invalid transition from {persisted.state} to {queued.state} for task "
                return DockerResult(f"{error}{queued.name or queued.id}; nothing was done", "none")
            if queued.state is State.SCHEDULED:
                return self.start_task(queued)
            if queued.state is State.COMPLETED:
                return self.stop_task(queued)
            self.store.take(queued)
            error = f"a task queued as {queued.state} asks for nothing: enqueue it as SCHEDULED to start it"
            return DockerResult(f"{error} or COMPLETED to stop it", "none")
        finally:
            self.store.give_back(queued)  # not taken (its start or stop was refused): it waits its turn again

    def start_task(self, task: Task) -> DockerResult:
        """Start the task's container and record the task as RUNNING, or as the engine says (listing 4.7).

        cube records the intent first, so that a worker opened on the same db after a crash finishes
        this start instead of making another container (reconcile()).
        """
        if not self._recovered():
            return self._cannot_recover()
        intent, refused, resuming = self._intend(task, "start")  # SCHEDULED, with its start time
        if refused:
            return refused
        result = self._docker(intent).run(adopt=resuming)  # the book's NewConfig, NewDocker and Run
        if result.unreachable:  # nothing was decided: ask again later
            return self._put_back(intent, State.SCHEDULED, result)
        if result.error:
            log.warning("task %s failed to start: %s", intent.id, result.error)
        done = started(intent, result)  # RUNNING in its container, or FAILED, or COMPLETED if it ended
        self._record(done, State.SCHEDULED, done.reason)
        return result

    def stop_task(self, task: Task) -> DockerResult:
        """Stop and remove the task's container and record the task as COMPLETED (listing 4.5).

        The container is the one the db names. If the stop fails, the task keeps its state and the
        error is returned (the book records COMPLETED anyway).
        """
        if not self._recovered():
            return self._cannot_recover()
        known, refused, _ = self._intend(task, "stop")  # a stop under way
        if refused:
            return refused
        nothing = DockerResult(action="stop", result="it had no container yet")
        result = self._docker(known).stop(known.container_id) if known.container_id else nothing
        if result.unreachable:  # nothing was decided: ask again later
            return self._put_back(known, State.COMPLETED, result)
        if result.error:
            log.warning("task %s was not stopped: %s", known.id, result.error)
            self._record(known, known.state, None)  # the stop is over, the task as it was
            return result
        done = stopped(known, result)  # COMPLETED, with its finish time
        self._record(done, known.state, done.reason)
        return result

    # --- observing the engine ----------------------------------------------------------------------

    def update_tasks(self) -> list[Transition]:
        """Ask the engine about every container of this worker, and record each difference with the db.

        As the kubelet relists: one list of the containers, a closer look only at those that changed.
        """
        return (self._observe() or []) if self._recovered() else []

    def reconcile(self) -> list[Transition]:
        """Finish what a worker that died on the same db left half done, then observe every task.

        A worker opened on a db_path does this first (and before its next operation, if the engine did
        not answer). A start is finished, not begun again: a container that runs, or ran and ended, is
        adopted with its exit code; only one that never started is replaced. A stop is carried out.
        """
        with self._reconciling:
            if self._reconciled:
                return []
            self._reconciled = True  # so that the operations below may go ahead
            for task_id, op in self.store.busy().items():
                log.info("finishing the %s of task %s, left half done", op, task_id)
                (self.start_task if op == "start" else self.stop_task)(self.store.task(task_id))
            changes = self._observe()
            self._reconciled = changes is not None
            return changes or []

    # --- the run loop ------------------------------------------------------------------------------

    def start(self) -> None:
        """Work in the background (cube.loop): take requests as they come, `parallel` at a time, and
        observe the engine every second."""
        self._loop.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop working in the background, once what is under way is done; the queue stays as it is."""
        self._loop.stop(timeout)

    @property
    def running(self) -> bool:
        return self._loop.running

    def close(self) -> None:
        """Stop, tell the listeners the last changes, and release the db file. Containers stay."""
        self.stop()
        self._notifier.close()
        self.store.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.store.path or "memory"
        return f"Worker({self.name!r}, db={where}, tasks={len(self.db)}, queued={len(self.queue)})"

    # --- how it is done ----------------------------------------------------------------------------

    def _intend(self, task: Task, op: str) -> tuple[Task, DockerResult | None, bool]:
        """Take the task's request off the queue and record that `op` begins, in one transaction; or
        refuse. Returns the task as recorded, the refusal, and whether a start cut short is resumed."""
        with self.store.transaction():
            known, label, doing = self.store.task(task.id), task.name or task.id, self.store.op(task.id)
            if doing and task.id not in self._stale:
                doing = {"start": "started", "stop": "stopped"}[doing]
                why = f"task {label} is being {doing} by another thread; try again when it is done"
            elif op == "stop" and not known:
                why = f"worker {self.name} has no record of task {label}: there is nothing to stop"
            elif known and not valid_state_transition(known.state, State[_WANTED[op]]):
                where = f" in container {known.container_id[:12]}" if known.container_id else ""
                again = (
                    ": there is nothing to stop"
                    if op == "stop"
                    else f"{where}: stop it before starting it again"
                )
                why = f"task {label} is already {known.state}{again}"
            else:
                self.store.take(task)
                self._stale.discard(task.id)
                if op == "stop":
                    self.store.save(known, op)
                    return known, None, False
                intent = replace(copy.deepcopy(task), state=State.SCHEDULED, container_id="", host_ports={})
                intent.exit_code, intent.restarts, intent.reason = None, 0, "starting"
                intent.start_time, intent.finish_time = datetime.now(UTC), None
                src = known and known.state
                self._record(
                    intent,
                    src,
                    None if src is State.SCHEDULED else "asked to start again" if src else "accepted",
                    op,
                )
                return intent, None, src is State.SCHEDULED
        return task, DockerResult(error=why, action=op), False

    def _record(self, task: Task, src: State | None, reason: str | None, op: str = "") -> Transition | None:
        """Save the task (with the operation under way, if any) and the move from src that led there, if
        reason names one; tell the listeners, in the order recorded."""
        change = reason and Transition(datetime.now(UTC), task.id, src, task.state, reason)
        with self.store.transaction():
            self.store.save(task, op, change)
            self._notifier.tell(change)
        if change:
            log.info(
                "task %s: %s", task.name or task.id, change, extra={"at": "" if op else "after the record"}
            )
        if not op:
            self._loop.poke()  # the task is free: its next request may go
        return change

    def _put_back(self, task: Task, wanted: State, result: DockerResult) -> DockerResult:
        """No engine answered: the task stays as it is, and its request first in the queue."""
        log.warning("task %s waits for the engine: %s", task.id, result.error)
        result.error += " The request stays first in the queue and will be tried again."
        with self.store.transaction():
            self.store.save(replace(task, reason="waiting for the Docker engine to answer"))
            self.store.enqueue(replace(task, state=wanted), front=True)
        self._loop.poke()
        return result

    def _observe(self) -> list[Transition] | None:
        """update_tasks() without recovering first; None if the engine did not answer."""
        d, changes = self._docker(), []
        watched = [t for t in self.store.tasks() if t.state is State.RUNNING]
        try:
            listed = {seen.container_id: seen for seen in d.containers({LABEL_WORKER: self.name})}
            for task in watched:
                seen = listed.get(task.container_id, Observed(task.container_id))
                if seen.status != "running" or task.restart_policy:  # for the exit code, the restarts
                    seen = d.inspect(task.container_id)
                changes += self._apply(task, seen, d)
            for seen in listed.values():
                self._collect(seen, d)
        except EngineError as e:
            log.warning("worker %s cannot observe its containers: %s", self.name, e)
            return None if e.step == "list" else changes
        return changes

    def _apply(self, task: Task, seen: Observed, d: Docker) -> list[Transition]:
        """Record what the engine says of a RUNNING task's container, if it differs."""
        if (new := observed(task, seen)) is None:
            return []
        with self.store.transaction():
            if self.store.task(task.id) != task or self.store.op(task.id):
                return []  # changed by someone else since we looked: the next round will see
            change = self._record(new, task.state, new.reason)
        if new.state in FINAL_STATES:
            d.remove(task.container_id)  # a finished task has no container
        return [change]

    def _collect(self, seen: Observed, d: Docker) -> None:
        """Remove a container of this worker that no task needs: a finished task's, or one labelled for a
        task whose record names another."""
        try:
            task = self.store.task(uuid.UUID(seen.labels.get(LABEL_TASK, "")))
        except ValueError:
            return  # not labelled with a task id: not ours to judge
        if task is None or self.store.op(task.id):
            return  # not ours to judge, or being worked on
        if (
            task.state in FINAL_STATES
            or task.state is State.RUNNING
            and task.container_id != seen.container_id
        ):
            log.info("removing container %s: task %s does not need it", seen.container_id[:12], task.id)
            d.remove(seen.container_id)

    def _docker(self, task: Task | None = None) -> Docker:
        """The Docker wrapper, for the task's container if given, on the worker's client: if it was given
        none, the one the first wrapper made."""
        self.client = self.client or (self._last and self._last.client)
        self._last = Docker(task and Config.from_task(task, self.name), self.client)
        return self._last

    def _recovered(self) -> bool:
        if not self._reconciled:
            self.reconcile()
        return self._reconciled

    def _nothing_ready(self) -> DockerResult:
        waiting = len(self.store.queued())
        why = (
            f"{waiting} request(s) wait for tasks being started or stopped"
            if waiting
            else "no tasks in the queue"
        )
        return DockerResult(action="none", result=why)

    def _cannot_recover(self) -> DockerResult:
        error = (
            f"worker {self.name} cannot reach its Docker engine to recover the tasks in {self.store.path}, "
        )
        return DockerResult(
            error + "so it does nothing yet; start the engine and try again", "none", unreachable=True
        )
