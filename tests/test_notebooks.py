"""What nbval cannot check by itself: notebook 01 on a machine with no Docker at all, and stored
outputs that would tell about the machine that made them."""

import json
import re
import socket
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_notebook_01_runs_top_to_bottom_without_a_docker_engine(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine-here.sock")  # the kernel inherits it
    notebook = nbformat.read(ROOT / "notebooks" / "01-tasks-and-states.ipynb", as_version=4)
    stored = [c.outputs for c in notebook.cells if c.cell_type == "code"]
    NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    ran = [c.outputs for c in notebook.cells if c.cell_type == "code"]
    errors = [o for outputs in ran for o in outputs if o.output_type == "error"]
    assert errors == [], errors
    streams = lambda cells: [o.get("text", "") for outs in cells for o in outs if o.output_type == "stream"]  # noqa: E731
    assert len(streams(ran)) == len(streams(stored)), json.dumps(streams(ran))[:2000]


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
