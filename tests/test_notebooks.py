"""What nbval cannot check by itself: notebook 01 on a machine with no Docker at all, and stored
outputs that would tell about the machine that made them."""

import json
import re
import socket
from datetime import datetime
from pathlib import Path

import nbformat
import pytest
from helpers import cells_using

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.slow
def test_notebook_01_runs_top_to_bottom_without_a_docker_engine(monkeypatch, tmp_path, run_notebook):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine-here.sock")  # the kernel inherits it
    notebook = nbformat.read(ROOT / "notebooks" / "01-tasks-and-states.ipynb", as_version=4)
    stored = [c.outputs for c in notebook.cells if c.cell_type == "code"]
    run_notebook(notebook, tmp_path, timeout=60)
    ran = [c.outputs for c in notebook.cells if c.cell_type == "code"]
    errors = [o for outputs in ran for o in outputs if o.output_type == "error"]
    assert errors == [], errors
    # Which cells printed (a cell's print may come in one stream output or several)
    printed = lambda cells: [any(o.output_type == "stream" for o in outs) for outs in cells]  # noqa: E731
    assert printed(ran) == printed(stored), json.dumps([str(outs)[:200] for outs in ran])[:3000]


MACHINE = [
    (r"\b\d{1,3}(\.\d{1,3}){3}:53\b", "a DNS server's address"),
    (r"Traceback|\w+(Error|Exception)\(\d+, '|\('Connection aborted", "a raw exception"),
    (r"/tmp/(?!nb\d\d-)|/root/|/home/|/work/", "a path of the machine that ran it"),  # /tmp/nbNN-: made up
    (r"\b\d+(\.\d+)?\+dfsg\d*\b", "this engine's package version"),
]


@pytest.mark.parametrize(
    "notebook", sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")), ids=lambda p: p.name
)
def test_stored_outputs_show_nothing_of_the_machine_that_made_them(notebook):
    text = "\n".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for c in json.loads(notebook.read_text())["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
    )
    host = socket.gethostname()
    assert host not in text, f"{notebook.name} shows this machine's name"
    for pattern, what in MACHINE:
        found = re.search(pattern, text)
        assert not found, (
            f"{notebook.name} shows {what}: {text[max(0, found.start() - 80) : found.end() + 80]!r}"
        )


READING_SPEED = 150  # words a minute, prose and code alike


def reading_and_running(notebook: Path) -> tuple[int, float]:
    """The words to read (markdown prose, without its diagrams, and code) and the seconds its cells
    took to run when it was stored (their execution times, which Jupyter records)."""
    words, seconds = 0, 0.0
    for cell in json.loads(notebook.read_text())["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            text = re.sub(r"```.*?```", "", text, flags=re.S)
        words += len(text.split())
        times = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in times and "shell.execute_reply" in times:
            began, ended = (
                datetime.fromisoformat(times[k]) for k in ("iopub.execute_input", "shell.execute_reply")
            )
            seconds += (ended - began).total_seconds()
    return words, seconds


def claimed_minutes(notebook: Path) -> int:
    first = "".join(json.loads(notebook.read_text())["cells"][0]["source"])
    found = re.search(r"About (\d+) minutes", first)
    assert found, f"{notebook.name} says nothing of how long it takes, in its first cell"
    return int(found[1])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_says_how_long_it_takes_as_measured(notebook):
    words, seconds = reading_and_running(notebook)
    measured = words / READING_SPEED + seconds / 60
    claim = claimed_minutes(notebook)
    assert abs(claim - measured) <= max(3, 0.2 * measured), (
        f"{notebook.name} claims {claim} min; {words} words at {READING_SPEED} a minute and {seconds:.0f} s "
        f"of cells make {measured:.0f} min"
    )


def fill_in(notebook: dict, number: int) -> int:
    """Replace every "your turn" cell's blank with its exercise's solution, as a learner who did
    them all; returns how many cells were filled."""
    from importlib import import_module

    exercises = import_module(f"cube.exercises.nb{number:02d}")
    filled = 0
    for cell in notebook.cells:
        found = re.search(r"^(q\d+)\.check\(.*$", cell.source, re.M)
        if cell.cell_type != "code" or not found or "____" not in cell.source:
            continue
        ex = getattr(exercises, found[1])
        cell.source = f"{ex.solution_code}\n\n{cell.source[found.start() :]}"
        filled += 1
    return filled


# Cells the filled-in run leaves out: demonstrations that no check needs and that nbval runs already
# (test_workbook grades the learner's worker on the chapter's rows). They are found by the names they
# use, and counted, so that a change to the notebook fails here rather than leaving out another.
LEFT_OUT = {
    "04": (("results",), 3),  # one spec for three workers: 20 s of spec runs, a table and a plot
    # the spec's agent rows for three workers (8 s), and the crash lab: 20 s of crashes and drifts
    "05": (("agent_rows", "lab_workers", "first_look"), 5),
    "07": (("samples",), 2),  # the load plot: 14 s of four threads hammering a web server, its medians
}


def leave_out(notebook, number: str) -> None:
    found = cells_using(notebook.cells, *LEFT_OUT.get(number, ((), 0)))
    notebook.cells = [c for c in notebook.cells if c not in found]


# A learner who did every exercise, notebook by notebook; 04 runs the worker 03's checks saved, so
# those two run together. Each runs in its notebook's xdist group (conftest.py), never beside nbval's run.
FILLED_IN: dict[str, list[Path]] = {}
for _path in NOTEBOOKS:
    FILLED_IN.setdefault("03+04" if _path.name[:2] in ("03", "04") else _path.name[:2], []).append(_path)


@pytest.mark.slow  # every notebook, run again (but the cells LEFT_OUT): a minute in all
@pytest.mark.parametrize("paths", FILLED_IN.values(), ids=FILLED_IN.keys())
def test_every_notebook_runs_with_every_solution_filled_in(
    paths, tmp_path, monkeypatch, demo_image, run_notebook
):
    """A learner who did every exercise: each check says correct, no cell fails, and notebook 04
    runs their worker, all four methods theirs (saved by notebook 03's checks)."""
    monkeypatch.setenv("CUBE_WORKBOOK", str(tmp_path / "my_worker.py"))  # the kernels inherit it
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        assert fill_in(notebook, int(path.name[:2])) >= 3, path.name
        leave_out(notebook, path.name[:2])
        run_notebook(notebook, tmp_path, timeout=180)
        outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
        errors = [o for o in outputs if o.output_type == "error"]
        assert errors == [], (path.name, errors)
        text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
        verdicts = re.findall(r"^(?:✓ Correct|✗ Not yet|… Not attempted yet).*$", text, re.M)
        assert verdicts and all(v.startswith("✓ Correct") for v in verdicts), (path.name, verdicts)
        if path.name.startswith("04"):
            assert "Your worker: every method is yours, from my_worker.py." in text
