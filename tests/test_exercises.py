"""Every checked exercise of every notebook: its solution passes, each wrong answer it lists fails
with a message, and the untouched blank is "not attempted yet"."""

import importlib
import json
import pkgutil
from pathlib import Path

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


NOTEBOOKS = sorted(Path(__file__).resolve().parents[1].glob("notebooks/[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_checks_at_least_three_exercises_with_the_packages_checkers(notebook):
    number = int(notebook.name[:2])
    mine = [ex for ex in EXERCISES if ex.name.split(".")[0] == str(number)]
    assert len(mine) >= 3, f"{notebook.name} has {len(mine)} checked exercises"
    code = "\n".join(
        "".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"
    )
    assert f"from cube.exercises.nb{number:02d} import" in code
    for ex in mine:
        q = "q" + ex.name.split(".")[1]
        assert f"{q}.check(" in code, f"{notebook.name} never asks the learner to check {q}"


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
