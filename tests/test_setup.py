"""The ways into the project that CI does not run end to end: the devcontainer and make lab."""

import ast
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_devcontainer_has_its_own_engine_runs_the_readmes_setup_and_forwards_jupyterlab():
    text = re.sub(r"^\s*//.*$", "", (ROOT / ".devcontainer" / "devcontainer.json").read_text(), flags=re.M)
    config = json.loads(text)
    assert any(f.startswith("ghcr.io/devcontainers/features/docker-in-docker") for f in config["features"])
    assert config["postCreateCommand"].endswith("make setup")
    assert 8888 in config["forwardPorts"]


def test_make_lab_serves_the_root_opens_the_notebooks_and_takes_port_and_token():
    done = subprocess.run(
        ["make", "-n", "lab", "JUPYTER_PORT=9999", "JUPYTER_TOKEN=s3cret"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    command = done.stdout.replace("\\\n", " ")
    line = next(ln for ln in command.splitlines() if "jupyter lab" in ln)
    for flag in (
        "--port=9999",
        "--IdentityProvider.token=s3cret",
        "--ServerApp.root_dir=.",
        "--LabApp.default_url=/lab/tree/notebooks",
    ):
        assert flag in line, line


def test_the_readme_gives_each_modules_size_and_no_module_outgrows_its_limit():
    listed = dict(
        re.findall(r"^\| `(cube/\w+\.py)` \| (\d+) \|", (ROOT / "README.md").read_text(), flags=re.M)
    )
    modules = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "cube").glob("*.py") if p.name != "__init__.py"
    )
    sizes = {m: len((ROOT / m).read_text().splitlines()) for m in modules}
    assert {m: int(n) for m, n in listed.items()} == sizes, "the README's module table is out of date"
    assert sizes["cube/worker.py"] <= 250, "worker.py is read in one sitting: at most 250 lines"
    assert max(sizes.values()) <= 300, {m: n for m, n in sizes.items() if n > 300}


def test_each_module_imports_only_those_above_it_in_the_readme_table():
    order = re.findall(r"^\| `cube/(\w+)\.py` \|", (ROOT / "README.md").read_text(), flags=re.M)
    below = []
    for rank, module in enumerate(order):
        for node in ast.walk(ast.parse((ROOT / "cube" / f"{module}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cube"):
                used = [node.module.split(".")[1]] if "." in node.module else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                used = [a.name.split(".")[1] for a in node.names if a.name.startswith("cube.")]
            else:
                continue
            below += [f"{module} imports {u}" for u in used if u in order and order.index(u) >= rank]
    assert below == [], "the README says each module imports only those above it in its table"
