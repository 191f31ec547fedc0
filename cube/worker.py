"""What a worker does: take tasks off its queue and start or stop their containers (chapter 4).

Where cube differs from the book, and why:
- A task is stopped by enqueueing it with state COMPLETED; the worker finds its container id in
  its own db. The book makes the caller copy the container id into the task by hand.
- A stop that fails (engine unreachable, say) leaves the task RUNNING: its container may well be
  running still. The book marks it COMPLETED whatever happened.
- An invalid transition returns an error naming both states and changes nothing in the db. The
  book stores a task it sees for the first time even when it then refuses the transition.
- The queue holds copies: like the book's Go structs, which are passed by value, changing a Task
  after add_task() does not change what the worker will do with it.
"""

import copy
import logging
import queue
import uuid
from datetime import UTC, datetime

import docker

from cube.docker import Docker, DockerResult
from cube.state import State, valid_state_transition
from cube.task import Config, Task

log = logging.getLogger(__name__)


class Worker:
    """Runs the tasks it is given as containers on one Docker engine.

    Args:
        name: the worker's name; it labels every container the worker creates.
        client: a docker.DockerClient; None connects with docker.from_env() on first use.
    """

    def __init__(self, name: str, client: docker.DockerClient | None = None) -> None:
        self.name = name
        self.client = client
        self.queue: queue.Queue[Task] = queue.Queue()  # FIFO, safe across threads
        self.db: dict[uuid.UUID, Task] = {}
        self._given: set[uuid.UUID] = set()

    @property
    def task_count(self) -> int:
        """How many different tasks this worker has been given."""
        return len(self._given)

    def add_task(self, task: Task) -> None:
        """Put a copy of `task` at the back of the queue: "bring this task to task.state".

        Raises:
            ValueError: the task has an impossible field (it is not queued).
        """
        task.validate()
        self.queue.put(copy.deepcopy(task))
        self._given.add(task.id)

    def run_task(self) -> DockerResult:
        """Take the next task off the queue and start or stop it, as its state asks."""
        try:
            queued = self.queue.get_nowait()
        except queue.Empty:
            log.info("no tasks in the queue")
            return DockerResult(action="none", result="no tasks in the queue")

        # A task seen for the first time is taken to be in the state it arrives with.
        persisted = self.db.get(queued.id, queued)
        if not valid_state_transition(persisted.state, queued.state):
            return DockerResult(
                error=f"invalid transition from {persisted.state} to {queued.state} "
                f"for task {queued.name or queued.id}; nothing was done",
                action="none",
            )
        match queued.state:
            case State.SCHEDULED:
                return self.start_task(queued)
            case State.COMPLETED:
                return self.stop_task(queued)
            case _:
                return DockerResult(
                    error=f"a task queued as {queued.state} asks for nothing: enqueue it as "
                    "SCHEDULED to start it or COMPLETED to stop it",
                    action="none",
                )

    def start_task(self, task: Task) -> DockerResult:
        """Start the task's container and record the task as RUNNING, or FAILED if it could not."""
        task = copy.deepcopy(task)
        task.start_time = datetime.now(UTC)
        d = Docker(Config.from_task(task, self.name), self.client)
        result = d.run()
        self.client = d.client  # keep the connection for the next task
        if result.error:
            log.warning("task %s failed to start: %s", task.id, result.error)
            task.state = State.FAILED
            self.db[task.id] = task
            return result

        task.container_id = result.container_id
        task.host_ports = result.host_ports
        task.state = State.RUNNING
        self.db[task.id] = task
        return result

    def stop_task(self, task: Task) -> DockerResult:
        """Stop and remove the task's container and record the task as COMPLETED.

        The container id comes from the worker's db (falling back to the task's own). If the
        stop fails, the task keeps its state and the error is returned.
        """
        persisted = self.db.get(task.id)
        task = copy.deepcopy(persisted or task)
        d = Docker(Config.from_task(task, self.name), self.client)
        result = d.stop(task.container_id)
        self.client = d.client
        if result.error:
            log.warning("task %s was not stopped: %s", task.id, result.error)
            return result

        task.finish_time = datetime.now(UTC)
        task.state = State.COMPLETED
        self.db[task.id] = task
        log.info("stopped task %s (container %s)", task.id, task.container_id[:12])
        return result
