"""The workbook, my_worker.py: what passes is saved as source a learner can read, loads back, and
makes the learner's worker, which the spec then grades like any other."""

import pytest
from helpers import run_cell

import cube.book
import cube.spec
from cube.exercises import nb01, nb03, workbook
from cube.spec import CHAPTER
from cube.state import State


@pytest.fixture(autouse=True)
def book(tmp_path, monkeypatch):
    monkeypatch.setenv("CUBE_WORKBOOK", str(tmp_path / "my_worker.py"))
    return tmp_path / "my_worker.py"


def solved(ex, code=None) -> dict:
    names = run_cell(code or ex.solution_code, ex.setup())
    assert ex.check(*(names[n] for n in ex.names)), ex.name
    return names


def test_nothing_saved_means_the_reference_worker_and_says_so():
    cls, whose = nb03.your_worker()
    assert whose == "The reference worker: none of your methods has passed its check yet."
    assert issubclass(cls, cube.book.Skeleton)
    fn, whose = workbook.yours("valid_state_transition", cube.book.valid_state_transition)
    assert fn is cube.book.valid_state_transition
    assert whose == "valid_state_transition: the reference's (yours has not passed its check yet)"


def test_what_passes_is_saved_as_readable_source_and_loads_back(book):
    solved(nb01.q2)
    solved(nb01.q3)
    text = book.read_text()
    assert "# --- STATE_TRANSITION_MAP (exercise 1.2) ---" in text
    assert "State.SCHEDULED: [State.SCHEDULED, State.RUNNING, State.FAILED]," in text
    assert "def valid_state_transition(src, dst):\n    return contains(STATE_TRANSITION_MAP[src], dst)" in (
        text
    )
    saved = workbook.load()
    assert saved["STATE_TRANSITION_MAP"] == cube.book.STATE_TRANSITION_MAP
    valid, whose = workbook.yours("valid_state_transition", None)
    assert whose == "valid_state_transition: yours, from my_worker.py"
    assert {(a, b) for a in cube.State for b in cube.State if valid(a, b)} == nb01.LISTING_4_10


def test_a_piece_saved_again_replaces_its_block(book):
    solved(nb03.q4)
    solved(nb03.q4, nb03.ADD_SOLUTION.replace("# Go's AddTask", "# again: Go's AddTask"))
    text = book.read_text()
    assert text.count("# --- add_task") == 1 and "# again: Go's AddTask" in text


def test_helpers_and_imports_the_learner_used_are_saved_with_the_function(book):
    code = """import time as clock

LIMIT = 3


def later(t):
    return clock.monotonic() > 0 and LIMIT == 3


def add_task(self, t):
    if later(t) and t.id not in self.db and all(q.id != t.id for q in self.queue):
        self.task_count += 1
    self.queue.append(copy.copy(t))
"""
    solved(nb03.q4, code)
    text = book.read_text()
    assert "import time as clock" in text and "LIMIT = 3" in text and "def later(t):" in text
    w = nb03.your_worker()[0]("wb")
    w.add_task(cube.Task(image=cube.DEMO_IMAGE))
    assert w.task_count == 1


def test_a_broken_workbook_falls_back_to_the_reference_and_says_why(book):
    book.write_text("def broken(:\n")
    cls, whose = nb03.your_worker()
    assert "could not be read: SyntaxError" in whose
    fn, whose = workbook.yours("contains", cube.book.contains)
    assert fn is cube.book.contains and "could not be read (SyntaxError" in whose


@pytest.mark.slow  # the spec's chapter rows
def test_the_learners_worker_built_from_the_workbook_passes_the_chapters_rows(book, demo_image):
    for ex in (nb01.q2, nb01.q3, nb03.q1, nb03.q2, nb03.q4, nb03.q5):
        solved(ex)
    cls, whose = nb03.your_worker()
    assert whose == "Your worker: every method is yours, from my_worker.py."
    rows = cube.spec.run(cls, levels=(CHAPTER,))
    assert [str(r) for r in rows if not r.passed] == []


def test_a_worker_partly_the_learners_says_whose_each_method_is():
    solved(nb03.q4)
    whose = nb03.your_worker()[1]
    assert whose == (
        "Your worker: add_task yours; stop_task, start_task, run_task the reference's (not passed yet)."
    )


VALID = "def valid_state_transition(src, dst):\n    return contains(STATE_TRANSITION_MAP[src], dst)\n"


def test_a_lambda_is_saved_when_assigned_to_its_name_and_else_left_unsaved_with_the_reason(book):
    solved(nb01.q3, "contains = lambda states, state: state in states\n\n" + VALID)
    text = book.read_text()
    assert "contains = lambda states, state: state in states" in text and "<lambda>" not in text
    assert workbook.load()["contains"]([State.RUNNING], State.RUNNING) is True

    code = "def contains(states, state):\n    return state in states\n\n"
    code += "valid = lambda a, b: contains(STATE_TRANSITION_MAP[a], b)\n"
    names = run_cell(code, nb01.q3.setup())
    verdict = nb01.q3.check(names["contains"], names["valid"])
    assert verdict, "the answer is right: only its saving fails"
    assert "could not be saved" in verdict.message and "`def valid_state_transition(...):`" in verdict.message
    assert book.read_text() == text, "nothing is written that the next notebooks could not read"
