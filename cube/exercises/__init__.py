"""Checked exercises: each is an Exercise with check(answer), hint() and solution().

A notebook imports its own, `from cube.exercises.nb03 import q1, q2, q3`, and the learner writes
an answer in place of the blank `____` and runs `q1.check(answer)`. The answer is judged by a
small function in this package, and the verdict says what is right, or what is wrong and where to
look, or that the blank is still there. Ideas from Kaggle Learn's learntools, written our own way.

An exercise module (one per notebook, nbNN.py) defines each exercise with:
- question: one line, as the notebook asks it;
- judge(answer): None if the answer is right, else a sentence saying what is wrong;
- hint: a nudge; solution: code that sets `answer` (tests run it through judge);
- wrong: answers a learner might give, each of which judge must refuse (tests check that too);
- setup/teardown (optional): what the solution needs (a worker, a client) and what to remove after.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cube.docker import connect
from cube.task import LABEL_WORKER


class _Blank:
    """The placeholder a learner replaces: an answer not written yet."""

    def __repr__(self) -> str:
        return "____"


____ = _Blank()


@dataclass(frozen=True)
class Verdict:
    """What check() says. True only when the answer is right."""

    status: str  # "correct", "incorrect" or "blank"
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __repr__(self) -> str:
        mark = {"correct": "✓ Correct", "incorrect": "✗ Not yet", "blank": "… Not attempted yet"}[self.status]
        return f"{mark}: {self.message}"


class Text(str):
    """A hint or a solution: shows as plain text at the end of a cell, without quotes."""

    def __repr__(self) -> str:
        return str(self)


@dataclass
class Exercise:
    name: str  # "1.2": notebook 1, exercise 2
    question: str
    judge: Callable[[object], str | None]
    hint_text: str
    solution_code: str
    praise: str = "that is it."
    wrong: list = field(default_factory=list)
    setup: Callable[[], dict] | None = None
    teardown: Callable[[dict], None] | None = None

    def check(self, answer=____) -> Verdict:
        """Judge an answer: right, wrong (and why), or still the blank."""
        if answer is ____:
            return Verdict(
                "blank", f"replace ____ with your answer, then run this cell again. {self.question}"
            )
        try:
            problem = self.judge(answer)
        except Exception as e:  # noqa: BLE001 - a learner's odd answer is a message, not a traceback
            problem = f"that answer could not be checked ({type(e).__name__}: {e}); {self.hint_text}"
        return Verdict("incorrect", problem) if problem else Verdict("correct", self.praise)

    def hint(self) -> Text:
        return Text(f"Hint: {self.hint_text}")

    def solution(self) -> Text:
        return Text(f"Solution:\n{self.solution_code.strip()}")

    def __repr__(self) -> str:
        return f"Exercise {self.name}: {self.question}"


def practice_name() -> str:
    """A worker name no one else uses, for what a solution starts (and its teardown removes)."""
    return f"exercise-{uuid.uuid4().hex[:8]}"


def remove_containers(worker_name: str) -> None:
    """Remove every container labelled for this worker: what a solution left on the engine."""
    mine = {"label": f"{LABEL_WORKER}={worker_name}"}
    for container in connect().containers.list(all=True, filters=mine, ignore_removed=True):
        container.remove(force=True)
