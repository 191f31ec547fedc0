"""Every checked exercise of every notebook: its solution passes, each wrong answer it lists (for
code: each typical wrong implementation) fails with a message naming the fault, and the untouched
blank is "not attempted yet". Code exercises run on the real engine and leave nothing on it."""

import importlib
import json
import pkgutil
import time
from pathlib import Path

import pytest
from helpers import left_by, run_cell

import cube.exercises
from cube.exercises import ENGINE_CHECK_SECONDS, Exercise, Wrong, ____, workbook

MODULES = sorted(m.name for m in pkgutil.iter_modules(cube.exercises.__path__) if m.name.startswith("nb"))
EXERCISES = [
    ex
    for name in MODULES
    for ex in vars(importlib.import_module(f"cube.exercises.{name}")).values()
    if isinstance(ex, Exercise)
]
CODE = [ex for ex in EXERCISES if ex.keep]
# Those that start containers (a teardown removes them) take seconds each: make quick leaves them out.
ALL = [pytest.param(ex, marks=pytest.mark.slow) if ex.engine or ex.teardown else ex for ex in EXERCISES]

NOTEBOOKS = sorted(Path(__file__).resolve().parents[1].glob("notebooks/[0-9][0-9]-*.ipynb"))


@pytest.fixture(autouse=True)
def own_workbook(tmp_path, monkeypatch):
    """Each test saves what passes in a workbook of its own."""
    monkeypatch.setenv("CUBE_WORKBOOK", str(tmp_path / "my_worker.py"))
    return tmp_path / "my_worker.py"


def check_cell(ex: Exercise, code: str | None = None, answer=None):
    """Check what `code` defines (run as a notebook cell would), or `answer`, with the exercise's
    setup done first and its teardown after, as in the notebook."""
    names = ex.setup() if ex.setup else {}
    try:
        if code is None:  # the answer, and what else check() takes, from the setup (as in the notebook)
            return ex.check(answer, *(names[n] for n in ex.names[1:]))
        run_cell(code, names)
        return ex.check(*(names[n] for n in ex.names))
    finally:
        if ex.teardown:
            ex.teardown(names)


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
    for verdict in (ex.check(), ex.check(*[____] * len(ex.names))):
        assert verdict.status == "blank" and not verdict
        assert repr(verdict).startswith("… Not attempted yet: replace ____")


@pytest.mark.parametrize("ex", CODE, ids=lambda ex: ex.name)
def test_a_function_whose_body_is_still_the_blank_is_not_attempted_yet(ex):
    if ex.names[0].isupper():  # the map: a value
        return
    code = "\n".join(f"def {name}(*args):\n    ____  # your code here\n" for name in ex.names)
    verdict = check_cell(ex, "from cube.exercises import ____\n" + code)
    assert verdict.status == "blank", verdict


@pytest.mark.parametrize("ex", ALL, ids=lambda ex: ex.name)
def test_each_wrong_answer_fails_with_a_message(ex, client, benches):
    assert ex.wrong, f"exercise {ex.name} lists no wrong answers to test its checker with"
    if ex.names[0] != "answer" and ex.names[0].islower():  # code the learner writes, as functions
        assert sum(isinstance(w, Wrong) for w in ex.wrong) >= 3, f"{ex.name}: three typical wrong programs"
    for answer in ex.wrong:
        began = time.monotonic()
        if isinstance(answer, Wrong):
            verdict = check_cell(ex, answer.code)
            assert answer.says in verdict.message, (answer.code, verdict)
        else:
            verdict = check_cell(ex, answer=answer)
        assert verdict.status == "incorrect", f"{ex.name} accepted the wrong answer {answer!r}"
        assert len(verdict.message) > 20 and "Traceback" not in verdict.message
        assert time.monotonic() - began < ENGINE_CHECK_SECONDS + 1
    assert left_by(client, benches) == []


@pytest.mark.parametrize("ex", ALL, ids=lambda ex: ex.name)
def test_the_solution_passes_its_checker(ex, own_workbook):
    began = time.monotonic()
    verdict = check_cell(ex, ex.solution_code)
    assert verdict, repr(verdict)
    assert time.monotonic() - began < ENGINE_CHECK_SECONDS + 1
    assert ex.hint().startswith("Hint: ") and ex.solution().startswith("Solution:\n")
    if ex.keep:
        assert "Saved in my_worker.py" in verdict.message
        saved = workbook.load()
        assert set(ex.keep) <= set(saved)
