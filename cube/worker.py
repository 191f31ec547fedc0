"""What a worker does (chapter 4): take requests (a Task queued as SCHEDULED to start it, COMPLETED to
stop it) off its queue, start or stop their containers, and keep its db true to what the engine says.

Where cube differs from the book, and why:
- It records the intent, acts, then records what the engine said: a worker opened on the same db after
  a crash finishes what was half done (reconcile()), at most once; update_tasks() observes (cube.relist).
- One task's requests go one at a time, in order, whatever `parallel` is: never two containers.
- A stop finds the container in the db (the book's main copies its id), touches only one labelled
  for the task and worker, and leaves the task as it was if it fails (the book: COMPLETED).
- An unanswered request goes back first in the queue, an invalid one changes nothing; db and queue are
  read-only; listeners are told on a thread of their own; all is thread-safe, close() waits for it.
"""

import copy
import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime

from cube.docker import Docker, DockerClient, DockerResult, EngineError
from cube.loop import Gate, Loop, Notifier
from cube.observe import WAITING, intent, refusal, started, stopped, unstopped
from cube.relist import relist
from cube.state import State, Transition, valid_state_transition
from cube.store import Records, Requests, Store
from cube.task import Config, Task

log = logging.getLogger(__name__)
_ASKS_FOR_NOTHING = "asks for nothing: enqueue it as SCHEDULED to start it or COMPLETED to stop it"
_NEW_TASK = "the worker has no record of it, so only a start can begin: enqueue it as SCHEDULED"


@Gate.guards("run_task", "start_task", "stop_task", "update_tasks", "reconcile")  # close() waits for them
class Worker:
    """Runs the tasks it is given as containers on one Docker engine.

    Args:
        client: a docker.DockerClient; None connects with docker.from_env() on first use.
        db_path: a SQLite file that keeps tasks, queue and history across restarts; None: in memory.
        parallel: how many requests a started worker handles at once; 1 is the book's worker.

    Raises:
        TypeError: client is not a docker.DockerClient. cube.store.StoreInUse: db_path is in use.
    """

    def __init__(
        self, name: str, client: DockerClient | None = None, db_path: str | None = None, parallel: int = 1
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: a worker needs a name, e.g. Worker('worker-1'); got {name!r}")
        self.name, self.parallel, self.client = name, parallel, client
        self._last = Docker(client=client)  # the first wrapper; a TypeError unless client is a DockerClient
        self._loop, self._notifier, self._gate = Loop(self, parallel), Notifier(name), Gate()
        self.store = Store(db_path, name, on_change=self._notifier.tell)
        self._stale = set(self.store.busy())  # operations a worker that died left half done
        self._reconciled, self._reconciling = db_path is None, threading.Lock()
        try:
            self._reconciled or self.reconcile()
        except BaseException:
            self.close()  # release the db file: a worker opened again on it must not find it in use
            raise

    @property
    def db(self) -> Records:
        """The worker's records: task id -> what it last observed of the task. Read-only."""
        return Records(self.store)

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

    def subscribe(self, listener: Callable[[Transition | Task | DockerResult], None]) -> Callable[[], None]:
        """Tell listener of each Transition, Task queued and DockerResult of a request dropped, in order."""
        return self._notifier.subscribe(listener)

    def add_task(self, task: Task) -> None:
        """Put a copy of `task` at the back of the queue: "bring it to task.state" (listing 4.8). Raises
        ValueError, and queues nothing, if task is not a Task or has an impossible field."""
        if not isinstance(task, Task):
            also = " or Task.from_dict(d)" if isinstance(task, dict) else ""
            raise ValueError(f"task: add_task takes a cube.Task, got a {type(task).__name__}; make one with "
                             f"Task(image=..., state=State.SCHEDULED){also}")  # fmt: skip
        task.validate()
        self.store.enqueue(copy.deepcopy(task))  # the listeners are told of it, too
        self._loop.poke()

    def run_task(self) -> DockerResult:
        """Take the next request off the queue and start or stop its task, as it asks (listing 4.12):
        the first request whose task has no operation under way."""
        if unrecovered := self._unrecovered():
            return unrecovered
        queued = self.store.dequeue()  # it leaves the queue when start_task or stop_task takes it
        if queued is None:
            waiting = self.store.queued() and "every request waits for a task being started or stopped"
            return DockerResult(action="none", result=waiting or "no tasks in the queue")
        try:
            persisted = (known := self.store.task(queued.id)) or queued  # a new task: as it comes
            why = f"invalid transition from {persisted.state} to {queued.state}" if known else _NEW_TASK
            if valid_state_transition(persisted.state, queued.state):
                if queued.state is State.SCHEDULED:
                    return self.start_task(queued)
                if queued.state is State.COMPLETED:
                    return self.stop_task(queued)
                why = f"a task queued as {queued.state} {_ASKS_FOR_NOTHING}" if known else why
            self.store.take(queued)  # nothing this worker can do: off the queue, and the listeners are told
            dropped = f"task {queued.name or queued.id}: {why}; nothing was done"
            return self._notifier.tell(DockerResult(dropped, "none"))
        finally:
            self.store.give_back(queued)  # not taken (its start or stop was refused): it waits its turn again

    def start_task(self, task: Task) -> DockerResult:
        """Start the task's container and record it RUNNING, or as the engine says (listing 4.7). The intent
        is recorded first: after a crash, the next worker finishes this start (reconcile())."""
        if unrecovered := self._unrecovered():
            return unrecovered
        planned, refused, resuming = self._intend(task, "start")  # record the intent: SCHEDULED, its start
        if refused:
            return refused
        result = self._docker(planned).run(adopt=resuming, keep=True)  # NewConfig, NewDocker and Run
        if result.unreachable:  # no answer: it may have started, so ask again later, and adopt it then
            return self._put_back(planned, State.SCHEDULED, result)
        done = started(planned, result)  # RUNNING in its container; FAILED; COMPLETED if it ended at once
        self._record(done, State.SCHEDULED, done.reason)  # record what the engine said
        if result.observed and result.observed.ended:  # only now: removed first, a crash would run it again
            with suppress(EngineError):  # else update_tasks() removes it: no task needs it
                self._docker(done).remove(result.container_id)
        return result

    def stop_task(self, task: Task) -> DockerResult:
        """Stop and remove the task's container (the one the db names) and record it COMPLETED (listing
        4.5). If the stop fails, the task keeps its state and the error is returned."""
        if unrecovered := self._unrecovered():
            return unrecovered
        known, refused, _ = self._intend(task, "stop")  # record the intent: a stop under way
        if refused:
            return refused
        nothing = DockerResult(action="stop", result="it had no container yet")  # a start put back
        result = self._docker(known).stop(known.container_id) if known.container_id else nothing  # d.Stop
        if result.unreachable:  # no answer: it may have stopped, so ask again later
            return self._put_back(known, State.COMPLETED, result)
        if result.error:
            log.warning("task %s was not stopped: %s", known.id, result.error)
            self._record(unstopped(known, result), known.state, None)  # the stop is over, the task as it was
            return self._notifier.tell(result)  # the request is taken: its listeners are told why
        done = stopped(known, result)  # COMPLETED, with its finish time
        self._record(done, known.state, done.reason)  # record what the engine said
        return result

    def update_tasks(self) -> list[Transition]:
        """Ask the engine about every container of this worker and record each difference (cube.relist)."""
        return [] if self._unrecovered() else relist(self.store, self._docker(), self.name) or []

    def reconcile(self) -> list[Transition]:
        """Finish what a worker that died on the same db left half done (a worker on a db_path does this
        first), then observe every task. A start is finished, not begun again: Docker.run(adopt=True)."""
        with self._reconciling:
            if self._reconciled:
                return []
            self._reconciled = True  # so that the operations below may go ahead (and new ones: not those)
            for task_id, op in [(i, op) for i, op in self.store.busy().items() if i in self._stale]:
                log.info("finishing the %s of task %s, left half done", op, task_id)
                (self.start_task if op == "start" else self.stop_task)(self.store.task(task_id))
            changes = relist(self.store, self._docker(), self.name)
            self._reconciled = changes is not None
            return changes or []

    def start(self) -> None:
        """Work in the background (cube.loop): take requests as they come, and observe every second."""
        self._loop.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop working in the background, once what is under way is done; the queue stays as it is."""
        self._loop.stop(timeout)

    @property
    def running(self) -> bool:
        return self._loop.running

    def close(self) -> None:
        """Stop, let what is under way end, tell the listeners, release the db file; containers stay."""
        self._loop.stop(None)  # the loop's threads first: else one would begin a new request, and be refused
        self._gate.close(self.store.refusal)  # then the operations the callers' threads have under way
        self._notifier.close()
        self.store.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.store.path or "memory"
        return f"Worker({self.name!r}, db={where}, tasks={len(self.db)}, queued={len(self.queue)})"

    def _intend(self, task: Task, op: str) -> tuple[Task, DockerResult | None, bool]:
        """Record that `op` begins and take its request off the queue, in one transaction; or refuse.
        Returns the task as recorded, the refusal, and whether a start cut short is being finished."""
        with self.store.transaction():
            known, busy = self.store.task(task.id), self.store.op(task.id)
            if why := refusal(task, known, op, busy if task.id not in self._stale else "", self.name):
                return task, DockerResult(error=why, action=op), False
            self.store.take(task)
            self._stale.discard(task.id)
            if op == "stop":
                self.store.save(known, op)
                return known, None, False
            resuming = (src := known and known.state) is State.SCHEDULED  # a start cut short, or put back
            reason = None if resuming else "asked to start again" if src else "accepted"
            return self._record(intent(task, resuming and known.start_time), src, reason, op), None, resuming

    def _record(self, task: Task, src: State | None, reason: str | None, op: str = "") -> Task:
        """Save the task, with the operation under way if any, and the move from src if reason names one."""
        change = reason and Transition(datetime.now(UTC), task.id, src, task.state, reason)
        self.store.save(task, op, change)
        if change:
            log.info("task %s: %s", task.name or task.id, change, extra={"at": op or "after the record"})
        if not op:
            self._loop.poke()  # the task is free: its next request may go
        return task

    def _put_back(self, task: Task, wanted: State, result: DockerResult) -> DockerResult:
        log.warning("task %s waits for the engine: %s", task.id, result.error)
        self.store.put_back(replace(task, reason=WAITING), replace(task, state=wanted))  # its request first
        result.error += " The request stays first in the queue and will be tried again."
        return result

    def _docker(self, task: Task | None = None) -> Docker:  # on the worker's client, or the first wrapper's
        self.client = self.client or self._last.client
        self._last = Docker(task and Config.from_task(task, self.name), self.client)
        return self._last

    def _unrecovered(self) -> DockerResult | None:
        """None once the worker has reconciled (it does so first); else why it does nothing yet."""
        self._reconciled or self.reconcile()
        error = f"worker {self.name} waits for its Docker engine, to recover {self.store.path}: start it"
        return None if self._reconciled else DockerResult(error, "none", unreachable=True)
