"""The book's worker, runnable: listings 4.3 to 4.12 in Python, listing by listing, flaws included.

`Skeleton` is where the chapter starts (listings 4.3 and 4.4): a name, a queue, a db and a task
count, and three methods that only say what they will do. `Worker` fills it in as the chapter
does, with cube's `Docker`, `Config` and `DockerResult` in place of chapter 3's. Nothing here is
fixed: it is the reference the learner's worker and cube's are compared with (`cube.spec`), so its
flaws are kept, each marked "flaw:" where it happens:

- a first-time task is stored in the db before its transition is checked, so a refused request
  still leaves a record (listing 4.12);
- a stop that fails is still recorded COMPLETED (listing 4.5);
- the caller must copy the container id into its task before asking for a stop (listing 4.13);
- task_count is never counted (section 4.5: "we won't make use of this field until the next
  chapter");
- nothing is locked: two threads may take requests for the same task at once.

Go passes a `task.Task` by value, so every method here works on a copy, made with copy.copy: a
shallow copy, as Go's is (the sets and dicts are still shared with the caller). The one thing
added is labels: `Config.from_task(t, self.name)`, so that cube can find and remove what this
worker left on the engine (the book's containers carry none).
"""

import copy
import logging
from collections import deque
from datetime import UTC, datetime

from cube.docker import Docker, DockerClient, DockerResult
from cube.state import State
from cube.task import Config, Task

log = logging.getLogger(__name__)

# Listing 4.10, exactly: the two moves cube adds (cube.state) are not here.
STATE_TRANSITION_MAP: dict[State, list[State]] = {
    State.PENDING: [State.SCHEDULED],
    State.SCHEDULED: [State.SCHEDULED, State.RUNNING, State.FAILED],
    State.RUNNING: [State.RUNNING, State.COMPLETED, State.FAILED],
    State.COMPLETED: [],
    State.FAILED: [],
}


def contains(states: list[State], state: State) -> bool:
    """Listing 4.11's Contains."""
    for s in states:
        if s == state:
            return True
    return False


def valid_state_transition(src: State, dst: State) -> bool:
    """Listing 4.11's ValidStateTransition."""
    return contains(STATE_TRANSITION_MAP[src], dst)


class Skeleton:
    """Listings 4.3 and 4.4: the worker's four fields and its three stubs.

    queue is a collections.deque, Python's first-in-first-out queue: append() puts a task at the
    back, popleft() takes the one at the front (and raises IndexError if there is none), len()
    counts them. db maps a task's id to the worker's record of the task.

    Args:
        name: the worker's name.
        client: a docker.DockerClient for Docker(config, client); None: docker.from_env().
    """

    def __init__(self, name: str, client: DockerClient | None = None) -> None:
        self.name = name
        self.queue: deque[Task] = deque()
        self.db: dict = {}
        self.task_count = 0
        self.client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, queued={len(self.queue)}, db={len(self.db)})"

    def run_task(self) -> DockerResult:
        print("I will start or stop a task")
        return DockerResult()

    def start_task(self, t: Task) -> DockerResult:
        print("I will start a task")
        return DockerResult()

    def stop_task(self, t: Task) -> DockerResult:
        print("I will stop a task")
        return DockerResult()


class Worker(Skeleton):
    """The chapter's worker (listings 4.5, 4.7, 4.8 and 4.12), flaws included."""

    def add_task(self, t: Task) -> None:
        """Listing 4.8."""
        self.queue.append(copy.copy(t))  # flaw: task_count is never counted

    def run_task(self) -> DockerResult:
        """Listing 4.12."""
        if not self.queue:
            log.info("No tasks in the queue")
            return DockerResult(error=None)
        task_queued = self.queue.popleft()  # flaw: nothing is locked: two threads, one task

        task_persisted = self.db.get(task_queued.id)
        if task_persisted is None:
            task_persisted = task_queued
            self.db[task_queued.id] = task_queued  # flaw: stored before the transition is checked

        result = DockerResult()
        if valid_state_transition(task_persisted.state, task_queued.state):
            if task_queued.state is State.SCHEDULED:
                result = self.start_task(task_queued)
            elif task_queued.state is State.COMPLETED:
                result = self.stop_task(task_queued)
            else:
                result.error = "We should not get here"
        else:
            result.error = f"Invalid transition from {task_persisted.state} to {task_queued.state}"
        return result

    def start_task(self, t: Task) -> DockerResult:
        """Listing 4.7."""
        t = copy.copy(t)
        t.start_time = datetime.now(UTC)
        config = Config.from_task(t, self.name)
        d = Docker(config, self.client)
        result = d.run()
        if result.error:
            log.info("Err running task %s: %s", t.id, result.error)
            t.state = State.FAILED
            self.db[t.id] = t
            return result

        t.container_id = result.container_id
        t.state = State.RUNNING
        self.db[t.id] = t
        return result

    def stop_task(self, t: Task) -> DockerResult:
        """Listing 4.5. The container id is the one the caller copied into t (listing 4.13)."""
        t = copy.copy(t)
        config = Config.from_task(t, self.name)
        d = Docker(config, self.client)

        result = d.stop(t.container_id)  # flaw: the id the caller copied into t, if it did (listing 4.13)
        if result.error:
            log.info("Error stopping container %s: %s", t.container_id, result.error)
        t.finish_time = datetime.now(UTC)
        t.state = State.COMPLETED  # flaw: even when the stop failed
        self.db[t.id] = t
        log.info("Stopped and removed container %s for task %s", t.container_id, t.id)
        return result
