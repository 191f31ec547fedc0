"""Every checked exercise of every notebook: its solution passes, each wrong answer it lists fails
with a message, and the untouched blank is "not attempted yet"."""

import importlib
import pkgutil

import pytest

import cube.exercises
from cube.exercises import Exercise, ____

MODULES = sorted(m.name for m in pkgutil.iter_modules(cube.exercises.__path__) if m.name.startswith("nb"))
EXERCISES = [
    ex
    for name in MODULES
    for ex in vars(importlib.import_module(f"cube.exercises.{name}")).values()
    if isinstance(ex, Exercise)
]


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_the_blank_is_not_attempted_yet(ex):
    verdict = ex.check(____)
    assert verdict.status == "blank" and not verdict
    assert repr(verdict).startswith("… Not attempted yet: replace ____")


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_each_wrong_answer_fails_with_a_message(ex):
    assert ex.wrong, f"exercise {ex.name} lists no wrong answers to test its checker with"
    for answer in ex.wrong:
        verdict = ex.check(answer)
        assert verdict.status == "incorrect", f"{ex.name} accepted the wrong answer {answer!r}"
        assert len(verdict.message) > 20 and "Traceback" not in verdict.message


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda ex: ex.name)
def test_the_solution_passes_its_checker(ex):
    names = ex.setup() if ex.setup else {}
    try:
        exec(ex.solution_code, names)  # noqa: S102 - our own solution, as the learner would run it
        verdict = ex.check(names["answer"])
    finally:
        if ex.teardown:
            ex.teardown(names)
    assert verdict, repr(verdict)
    assert ex.hint().startswith("Hint: ") and ex.solution().startswith("Solution:\n")
