"""Every checked exercise of every notebook: its solution passes, each wrong answer it lists (for
code: each typical wrong implementation) fails with a message naming the fault, and the untouched
blank is "not attempted yet". Code exercises run on the real engine and leave nothing on it."""

import importlib
import json
import pkgutil
import threading
import time
import uuid
from pathlib import Path

import pytest
from helpers import eventually, left_by, run_cell

import cube.exercises
from cube import Config, Docker
from cube.exercises import CHECK_SECONDS, Exercise, Wrong, ____, nb01, nb03, nb05, nb06, nb07, workbook
from cube.judge import Bench, Fault, within

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
        assert time.monotonic() - began < CHECK_SECONDS + 1
    assert left_by(client, benches) == []


@pytest.mark.parametrize("ex", ALL, ids=lambda ex: ex.name)
def test_the_solution_passes_its_checker(ex, own_workbook):
    began = time.monotonic()
    verdict = check_cell(ex, ex.solution_code)
    assert verdict, repr(verdict)
    assert time.monotonic() - began < CHECK_SECONDS + 1
    assert ex.hint().startswith("Hint: ") and ex.solution().startswith("Solution:\n")
    if ex.keep:
        assert "Saved in my_worker.py" in verdict.message
        saved = workbook.load()
        assert set(ex.keep) <= set(saved)


LOOPS = """def contains(states, state):
    while True:  # a loop that never ends
        pass

def valid_state_transition(src, dst):
    return contains(STATE_TRANSITION_MAP[src], dst)"""


def test_a_check_whose_code_never_returns_says_so_in_time_and_its_loop_is_stopped(monkeypatch):
    monkeypatch.setattr(cube.exercises, "CHECK_SECONDS", 2.0)  # a learner waits 10 s: the same code path
    began = time.monotonic()
    verdict = check_cell(nb01.q3, LOOPS)
    assert verdict.status == "incorrect" and "did not return within 2 s" in verdict.message, verdict
    assert "in your contains([State.RUNNING, State.FAILED], State.FAILED)" in verdict.message, (
        "the call named"
    )
    assert time.monotonic() - began < 2.0 + 1
    checking = lambda: [t for t in threading.enumerate() if t.name.startswith("cube-check-1.3-")]  # noqa: E731
    assert eventually(lambda: not checking(), seconds=2), "the loop still spins on its thread"


UNLABELLED = """def start_task(self, t):
    import docker
    c = docker.from_env().containers.run(t.image, detach=True, labels={"cube.test-stray": "1"})
    t.container_id, t.state = c.id, State.RUNNING
    self.db[t.id] = t
    return DockerResult(container_id=c.id)"""


def test_a_container_made_without_cubes_labels_is_named_in_the_verdict_and_left_alone(client, own_workbook):
    try:
        verdict = check_cell(nb03.q2, UNLABELLED)
        (stray,) = client.containers.list(all=True, filters={"label": "cube.test-stray"})
        assert verdict.status == "incorrect" and f"docker rm -f {stray.short_id}" in verdict.message, verdict
        assert "without cube's labels" in verdict.message and stray.status == "running", "left as it is"
    finally:
        for c in client.containers.list(all=True, filters={"label": "cube.test-stray"}):
            c.remove(force=True)


def test_sys_exit_in_the_learners_code_is_a_verdict_not_the_end_of_the_check():
    code = LOOPS.replace("while True:  # a loop that never ends\n        pass", "import sys\n    sys.exit(1)")
    verdict = check_cell(nb01.q3, code)
    assert verdict.status == "incorrect" and "your code called sys.exit()" in verdict.message, verdict


@pytest.mark.parametrize(
    "ex, code, says",
    [
        (
            nb05.q1,
            "def recorded(code):\n    return {0: State.COMPLETED}[code]",
            "your recorded(1) raised KeyError",
        ),
        (
            nb05.q3,
            "def seconds_in(history, state):\n    return history.total",
            "your seconds_in(SAMPLE_HISTORY, State.RUNNING) raised AttributeError",
        ),
        (
            nb07.q3,
            "def percent(used, total):\n    return 100 * used // (total - 8)",
            "your percent(3, 8) raised ZeroDivisionError",
        ),
    ],
    ids=["5.1", "5.3", "7.3"],
)
def test_an_exception_in_the_learners_function_names_the_call_that_raised_it(ex, code, says):
    verdict = check_cell(ex, code + "\n\nanswer = " + code.split("(")[0].removeprefix("def "))
    assert verdict.status == "incorrect" and says in verdict.message, verdict


@pytest.mark.slow  # a container on the engine
def test_what_a_check_starts_after_its_time_is_up_is_removed_when_it_ends(client, demo_image):
    bench = Bench(f"late-{uuid.uuid4().hex[:6]}")
    t = bench.task()
    started = []

    def swallows_the_time_up():  # as a learner's bare `except:` would
        try:
            time.sleep(1.5)
        except BaseException:  # noqa: BLE001 - the point
            started.append(Docker(Config.from_task(t, bench.prefix)).run())

    assert within(0.5, swallows_the_time_up, bench, "cube-check-late") is False
    with pytest.raises(Fault, match="time was up"):
        bench.task("more")
    assert eventually(lambda: started, seconds=5) and started[0].container_id, started
    assert eventually(lambda: left_by(client, [bench]) == [], seconds=5), left_by(client, [bench])


def test_a_refused_request_is_named_before_what_the_learners_code_then_raised():
    code = """def start(api, name):
    event = {"state": "RUNNING", "task": {"name": name, "image": "cube/helloworld-http:latest"}}
    return api.post("/tasks", json=event).json()["id"]  # a refusal has no id: KeyError

answer = start"""
    verdict = check_cell(nb06.q1, code)
    assert verdict.status == "incorrect" and "the worker refused the request with 4" in verdict.message, (
        verdict
    )


def test_an_async_def_answer_is_told_to_be_a_plain_def():
    code = "async def percent(used, total):\n    return 100 * used // total\n\nanswer = percent"
    verdict = check_cell(nb07.q3, code)
    assert verdict.status == "incorrect" and "not async def" in verdict.message, verdict


def test_a_keyboardinterrupt_raised_by_the_learners_code_is_a_verdict():
    code = LOOPS.replace("while True:  # a loop that never ends\n        pass", "raise KeyboardInterrupt")
    verdict = check_cell(nb01.q3, code)
    assert verdict.status == "incorrect" and "raised KeyboardInterrupt" in verdict.message, verdict
