"""Checked exercises: each is an Exercise with check(answer), hint() and solution().

A notebook imports its own, `from cube.exercises.nb03 import q1, q2, q3`, and the learner writes
an answer in place of the blank `____` and runs `q1.check(answer)`. An answer is a value (a set of
states, a Task) or code: a function the learner wrote, such as `stop_task(self, t)`, which the
checker runs for real, on the Docker engine where it must, and judges by what the engine and the
worker's db then say. The verdict says what is right, or what is wrong and where to look, or that
the blank is still there; an exception in the learner's code is a verdict that names the input
that caused it, never a traceback. Ideas from Kaggle Learn's learntools (its FunctionProblem
calls the learner's function on its own cases), written our own way.

An exercise module (one per notebook, nbNN.py) defines each exercise with:
- question: one line, as the notebook asks it;
- judge(*answers): None if right, else a sentence saying what is wrong; it may raise
  cube.spec.Fault with that sentence. An engine exercise's judge also gets a cube.spec.Bench, whose
  clean() removes every container made for its tasks, whatever the learner's code did;
- hint, and solution: code that defines `names` (tests run it through judge);
- wrong: answers a learner might give, each of which judge must refuse (tests check that too);
  a Wrong is a typical wrong implementation, as code, with words its verdict must contain;
- keep: for code the learner's worker is built from, the piece names a passing answer is saved
  under, in the workbook my_worker.py (cube.exercises.workbook), for the next notebooks;
- setup/teardown (optional): what the solution needs (a worker, a client) and what to remove after.
"""

import inspect
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FunctionType

from cube.judge import CALLING, Bench, Fault, within

CHECK_SECONDS = 10.0  # the most a check takes, the learner's code (and the engine) included


class _Blank:
    """The placeholder a learner replaces: an answer not written yet."""

    def __repr__(self) -> str:
        return "____"


____ = _Blank()


def is_blank(answer) -> bool:
    """The blank itself, or a function whose body still uses it."""
    if answer is ____:
        return True
    return uses(answer, "____")


def uses(answer, name: str) -> bool:
    """True if the function `answer` (or one defined inside it) refers to `name`."""
    return isinstance(answer, FunctionType) and name in _names_used(answer.__code__)


@contextmanager
def in_place_of(fn: FunctionType, name: str, value) -> Iterator[None]:
    """For the while, the global `name` that fn reads (in the learner's own namespace) is `value`; what
    was there is put back however the block ends, and a name that was not there is removed again."""
    names, missing = fn.__globals__, object()
    mine = names.get(name, missing)
    names[name] = value
    try:
        yield
    finally:
        if mine is missing:
            names.pop(name, None)
        else:
            names[name] = mine


def _names_used(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names_used(const)
    return names


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


@dataclass(frozen=True)
class Wrong:
    """A typical wrong implementation: code as a learner would write it, and words its verdict must
    contain (naming the fault)."""

    code: str
    says: str


@dataclass
class Exercise:
    name: str  # "1.2": notebook 1, exercise 2
    question: str
    judge: Callable[..., str | None]
    hint_text: str
    solution_code: str
    praise: str = "that is it."
    wrong: list = field(default_factory=list)
    setup: Callable[[], dict] | None = None
    teardown: Callable[[dict], None] | None = None
    names: tuple[str, ...] = ("answer",)  # what the solution defines, in the order check() takes them
    engine: bool = False  # judge(*answers, bench): runs code on the engine
    keep: tuple[str, ...] = ()  # workbook pieces a passing answer is saved as, one per answer

    def check(self, *answers) -> Verdict:
        """Judge an answer (or several, for code in several pieces): right, wrong and why, or blank."""
        if not answers or any(is_blank(a) for a in answers):
            blank = "replace ____ with your answer, then run this cell again."
            return Verdict("blank", f"{blank} {self.question}")
        if len(answers) != len(self.names):
            return Verdict("incorrect", f"check() takes {len(self.names)}: {', '.join(self.names)}")
        if any(inspect.iscoroutinefunction(a) for a in answers):
            return Verdict("incorrect", "write it with def, not async def: it is called, and its result used")
        for name, answer in zip(self.names, answers, strict=True):
            if (written := re.search(rf"^def {name}\(.*?\):", self.solution_code, re.M)) and not isinstance(
                answer, FunctionType
            ):
                kind = "a class" if isinstance(answer, type) else f"the {type(answer).__name__} {answer!r}"
                kind = "None" if answer is None else kind
                return Verdict("incorrect", f"give a function: {written[0]} ..., not {kind}")
        problem = self._judge_in_time(answers)
        if problem:
            return Verdict("incorrect", problem)
        return Verdict("correct", self.praise + self._keep(answers))

    def _judge(self, answers: tuple, *bench: Bench) -> str | None:
        try:
            return self.judge(*answers, *bench)
        except Fault as e:
            return str(e)
        except SystemExit:
            return "your code called sys.exit() (or exit()): return a value, or raise an exception, instead"
        except KeyboardInterrupt:  # raised by the code itself: the stop button interrupts the cell, not this
            return "your code raised KeyboardInterrupt: return a value, or raise an Exception, instead"
        except Exception as e:  # noqa: BLE001 - a learner's odd answer is a message, not a traceback
            return f"that answer could not be checked ({type(e).__name__}: {e}); {self.hint_text}"

    def _judge_in_time(self, answers: tuple) -> str | None:
        """Judge for at most CHECK_SECONDS (the learner's code may never return); then remove the
        containers an engine exercise's check started."""
        bench = Bench(f"check-{self.name.replace('.', '-')}-{uuid.uuid4().hex[:6]}") if self.engine else None
        benches = (bench,) if bench else ()
        strays = bench.unlabelled() if bench else set()
        problem: list[str | None] = []

        def judge() -> None:
            problem.append(self._judge(answers, *benches))

        thread = f"cube-check-{self.name}-{uuid.uuid4().hex[:6]}"
        if within(CHECK_SECONDS, judge, bench, thread) and problem:
            verdict = problem[0]
        else:
            doing = CALLING.get(thread)
            verdict = (
                f"your code did not return within {CHECK_SECONDS:.0f} s"
                + (f", in {doing}" if doing else "")
                + ": a loop that never ends, or a call that waits for ever (on a slow engine, check again)"
            )
        CALLING.pop(thread, None)
        if verdict and bench and (made := sorted(bench.unlabelled() - strays)):
            ids = " ".join(i[:12] for i in made)
            verdict += (
                f". Your code also made container(s) {ids} without cube's labels (not through "
                "Docker(Config.from_task(...))): the check leaves them, as cube touches only its own; remove "
                f"them with docker rm -f {ids}"
            )
        return verdict

    def _keep(self, answers: tuple) -> str:
        if not self.keep:
            return ""
        from cube.exercises import workbook  # here: the workbook imports what is defined above

        return " " + workbook.save(dict(zip(self.keep, answers, strict=True)), self.name)

    def hint(self) -> Text:
        return Text(f"Hint: {self.hint_text}")

    def solution(self) -> Text:
        return Text(f"Solution:\n{self.solution_code.strip()}")

    def __repr__(self) -> str:
        return f"Exercise {self.name}: {self.question}"


def pair(answer) -> tuple | None:
    """A pair given as a tuple or a list, as a tuple; None if it is not a pair."""
    if isinstance(answer, tuple | list) and len(answer) == 2:
        return tuple(answer)
    return None


def practice_name() -> str:
    """A worker name no one else uses, for what a solution starts (and its teardown removes)."""
    return f"exercise-{uuid.uuid4().hex[:8]}"


def remove_containers(worker_name: str) -> None:
    """Remove every container labelled for this worker: what a solution left on the engine."""
    bench = Bench(worker_name)
    bench.workers.add(worker_name)
    bench.clean()
