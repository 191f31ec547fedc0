"""cube.spec on real workers: cube's passes every row, the book's fails what it fails by design,
and whatever a worker does, run() returns rows and leaves nothing on the engine."""

import threading
import time

import pytest
from helpers import eventually, left_by

import cube.book
import cube.spec
from cube import Worker
from cube.spec import AGENT, CHAPTER, ROWS

# The chapter rows the book's worker fails, and why: its flaws, kept on purpose (cube/book.py).
BOOK_FAILS_BY_DESIGN = {
    "invalid transitions refused, nothing changed (listings 4.10-4.12)": "has a record in the db",
    "task_count counts the tasks given (section 4.5)": "task_count is 0 after two tasks were given",
    "a stop that fails leaves the task as it was (listing 4.5)": "but the db says COMPLETED",
}


def test_the_rows_name_their_source_and_level():
    assert len(ROWS) >= 14
    for title, level, _ in ROWS:
        assert level in (CHAPTER, AGENT)
        assert "listing" in title or "section" in title or "chapter" in title, title
        assert "\n" not in title


@pytest.mark.slow  # a whole run of the spec
def test_cubes_worker_passes_every_row_within_a_minute(client, demo_image, benches):
    began = time.monotonic()
    rows = cube.spec.run(Worker)
    assert time.monotonic() - began < 60
    assert [r.name for r in rows] == [title for title, _, _ in ROWS]
    assert [str(r) for r in rows if not r.passed] == []
    assert all(r.seconds >= 0 for r in rows)
    assert left_by(client, benches) == []


@pytest.mark.slow  # a whole run of the spec
def test_the_books_worker_passes_the_chapter_rows_but_those_it_fails_by_design(client, demo_image, benches):
    rows = cube.spec.run(cube.book.Worker)
    chapter = {r.name: r for r in rows if r.level == CHAPTER}
    failed = {name: r.why for name, r in chapter.items() if not r.passed}
    assert set(failed) == set(BOOK_FAILS_BY_DESIGN)
    for name, why in failed.items():
        assert BOOK_FAILS_BY_DESIGN[name] in why, why
    agent = [r for r in rows if r.level == AGENT]
    assert agent and not any(r.passed for r in agent)
    whys = {r.name.split(" (")[0]: r.why for r in agent}
    assert "has no update_tasks()" in whys["a container that exits 0 is seen COMPLETED"]
    assert "2 containers" in whys["two threads never make two containers"]
    assert "takes no db_path" in whys["a worker reopened on its db_path loses nothing"]
    assert left_by(client, benches) == []


class RaisingWorker(cube.book.Worker):
    """A worker whose run_task always raises (a fake: the fault is the point)."""

    def run_task(self):
        raise RuntimeError("oops")


def test_a_worker_that_raises_gets_rows_that_name_the_call(demo_image):
    rows = cube.spec.run(RaisingWorker, levels=(CHAPTER,))
    whys = {r.name: r.why for r in rows}
    assert not any(r.passed for r in rows)
    assert "run_task() raised RuntimeError: oops" in whys["start, serve and record (listing 4.7)"]


class HangingWorker(cube.book.Worker):
    """A worker whose run_task never returns (a fake: the fault is the point)."""

    def run_task(self):
        time.sleep(3600)


@pytest.mark.slow  # a whole run of the spec
def test_a_worker_that_hangs_gets_rows_within_the_budget(demo_image):
    began = time.monotonic()
    rows = cube.spec.run(HangingWorker, levels=(CHAPTER,), budget=3, row_seconds=1)
    assert time.monotonic() - began < 5
    assert len(rows) == sum(level == CHAPTER for _, level, _ in ROWS)
    assert "did not finish within 1.0 s" in rows[0].why
    assert any(r.why.startswith("not run: the 3 s budget was spent") for r in rows)


class StartsThenHangsWorker(cube.book.Worker):
    """Starts its task's container, then never returns (a fake: the fault is the point)."""

    def run_task(self):
        super().run_task()
        time.sleep(3600)


def test_a_row_interrupted_in_the_notebook_still_removes_what_it_started_with_a_faked_interrupt(
    client, demo_image, benches, monkeypatch
):
    real_join = threading.Thread.join

    def interrupted(thread, timeout=None):
        if thread.name.startswith("cube-check-"):
            assert eventually(lambda: left_by(client, benches)), "the row started no container"
            raise KeyboardInterrupt  # what Jupyter's stop button raises in the notebook's thread
        return real_join(thread, timeout)

    monkeypatch.setattr(threading.Thread, "join", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cube.spec.run(StartsThenHangsWorker, levels=(CHAPTER,))
    assert left_by(client, benches) == []


class LeakyWorker(cube.book.Worker):
    """Starts a second container for every task and never stops anything."""

    def start_task(self, t):
        super().start_task(t)
        return super().start_task(t)

    def stop_task(self, t):
        return cube.DockerResult()


@pytest.mark.slow  # a whole run of the spec
def test_what_a_worker_leaves_on_the_engine_is_removed(client, demo_image, benches):
    rows = cube.spec.run(LeakyWorker, levels=(CHAPTER,))
    assert not next(r for r in rows if r.name.startswith("stop and remove")).passed
    assert left_by(client, benches) == []


@pytest.mark.parametrize("passed", [True, False])
def test_the_table_puts_workers_side_by_side(passed):
    rows = [cube.spec.Row("start (listing 4.7)", CHAPTER, passed, "" if passed else "no container")]
    text = cube.spec.table({"cube": rows, "book": rows})
    assert "| start (listing 4.7) | chapter | " + ("✓ | ✓" if passed else "✗ | ✗") in text
    assert text.splitlines()[-1] == f"| **passed** | | {int(passed)}/1 | {int(passed)}/1 |"
