"""What update_tasks() does, as the kubelet's PLEG relists its runtime (pkg/kubelet/pleg/generic.go):
one list of the worker's containers, an inspect only of those that changed, one transition recorded
for each difference (cube.observe's rules); then the containers no task needs are removed. A task
whose stop went unanswered is left to that stop, tried again: it says how its container ended, where
relist would record a removal behind cube's back."""

import logging
from datetime import UTC, datetime

from cube.docker import Docker, EngineError, Observed
from cube.observe import WAITING, observed, unneeded
from cube.state import State, Transition
from cube.store import Store
from cube.task import LABEL_TASK, LABEL_WORKER

log = logging.getLogger(__name__)


def relist(store: Store, d: Docker, worker: str) -> list[Transition] | None:
    """Observe the RUNNING tasks of `worker` (but one whose stop waits to be tried again), record what
    changed, and remove the containers no task needs. Returns the transitions recorded; None if the
    engine did not answer the list."""
    changes = []
    try:
        listed = {seen.container_id: seen for seen in d.containers({LABEL_WORKER: worker})}
        for task in store.tasks(State.RUNNING):
            if task.reason == WAITING:  # its stop went unanswered and is queued, or under way: it says how
                continue
            seen = listed.get(task.container_id, Observed(task.container_id))
            if seen.status != "running" or task.restart_policy:  # for the exit code, the restart count
                seen = d.inspect(task.container_id)
            new = observed(task, seen)
            change = new and Transition(datetime.now(UTC), task.id, task.state, new.state, new.reason)
            if change and store.swap(task, new, change):  # unless someone changed the task since
                log.info("task %s: %s", task.name or task.id, change)
                changes.append(change)
        for seen in listed.values():
            if unneeded(store.task(seen.labels.get(LABEL_TASK, "")), seen):  # a label no task has: None
                log.info("removing container %s: no task of %s needs it", seen.container_id[:12], worker)
                d.remove(seen.container_id)
    except EngineError as e:
        log.warning("worker %s cannot observe its containers: %s", worker, e)
        return None if e.step == "list" else changes  # the next round tries the rest again
    return changes
