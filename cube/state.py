"""The five states of a task, the moves allowed between them (listing 4.10), and the record of a move.

The chapter's table 4.1 and prose disagree with listing 4.10 (notebook 01 shows how); cube follows the
listing, the code the worker runs, and adds two moves that a worker watching real containers needs:

- SCHEDULED -> COMPLETED: a container that exits 0 before the worker ever sees it running
  (reporting RUNNING first would report a state nobody observed).
- FAILED -> SCHEDULED: a failed task asked to run again gets a new container, under the same id
  (the book adds this move in a later chapter, to restart failed tasks).
"""

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class State(Enum):
    """Where a task is in its life. The values match the book's iota: 0 to 4."""

    PENDING = 0
    SCHEDULED = 1
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4

    def __str__(self) -> str:
        return self.name


# Listing 4.10, plus the two moves marked "cube" (see the module docstring).
STATE_TRANSITION_MAP: dict[State, tuple[State, ...]] = {
    State.PENDING: (State.SCHEDULED,),
    State.SCHEDULED: (State.SCHEDULED, State.RUNNING, State.FAILED, State.COMPLETED),  # cube: COMPLETED
    State.RUNNING: (State.RUNNING, State.COMPLETED, State.FAILED),
    State.COMPLETED: (),
    State.FAILED: (State.SCHEDULED,),  # cube: run a failed task again
}

# A task in these has no container: its work is over (a FAILED one may be asked to run again).
FINAL_STATES = (State.COMPLETED, State.FAILED)

# The moves cube adds to listing 4.10, for notebooks and tests to point at.
ADDED_TRANSITIONS = ((State.SCHEDULED, State.COMPLETED), (State.FAILED, State.SCHEDULED))


def contains(states: Collection[State], state: State) -> bool:
    """Return True if `state` is one of `states`."""
    return state in states


def valid_state_transition(src: State, dst: State) -> bool:
    """Return True if a task in state `src` may move to state `dst`."""
    return contains(STATE_TRANSITION_MAP[src], dst)


@dataclass(frozen=True)
class Transition:
    """One change of a task, as recorded: src is None for a new task; RUNNING -> RUNNING records a
    restart or new host ports."""

    time: datetime
    task_id: uuid.UUID
    src: State | None
    dst: State
    reason: str

    def __str__(self) -> str:
        return f"{self.time:%H:%M:%S.%f}"[:-3] + f" {self.src or 'new'} -> {self.dst}: {self.reason}"
