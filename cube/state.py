"""The five states of a task and the moves allowed between them (listing 4.10).

The chapter shows the transitions twice, and the two disagree: its table 4.1 lets a PENDING
task go to FAILED, and has no SCHEDULED -> SCHEDULED, RUNNING -> RUNNING or RUNNING -> FAILED;
its prose says SCHEDULED may go to COMPLETED. cube follows the map in listing 4.10, because that is
the code the worker runs; notebook 01 shows the differences.
"""

from collections.abc import Collection
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


STATE_TRANSITION_MAP: dict[State, tuple[State, ...]] = {
    State.PENDING: (State.SCHEDULED,),
    State.SCHEDULED: (State.SCHEDULED, State.RUNNING, State.FAILED),
    State.RUNNING: (State.RUNNING, State.COMPLETED, State.FAILED),
    State.COMPLETED: (),
    State.FAILED: (),
}


def contains(states: Collection[State], state: State) -> bool:
    """Return True if `state` is one of `states`."""
    return state in states


def valid_state_transition(src: State, dst: State) -> bool:
    """Return True if a task in state `src` may move to state `dst`."""
    return contains(STATE_TRANSITION_MAP[src], dst)
