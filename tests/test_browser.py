"""The control panel in a real JupyterLab, in a real (headless) Chromium, on the real engine.

The test serves a copy of notebook 04 (so the browser's autosave never touches the repository),
its workers named br04-... instead of nb04-... (so that it never touches the containers of a run of
the notebook beside it, nor they its own) and without the three cells of its spec section, runs all
its cells, and on the panel of the learner's worker clicks Enqueue and Run next, follows the port
link to the web server, clicks Stop, and checks with the engine that the container is gone.
Another notebook of two cells puts a panel on cube.book.Worker and one on cube.Worker, and the test
clicks Run next and Stop on each.

A second test opens a worker API's /docs page (Swagger UI), starts a task from it with "Try it
out" and "Execute", and checks with the worker that the task runs.

The tests share one JupyterLab and one Chromium (each starts in a few seconds); each test has a
workspace and a browser context of its own, and its kernels are shut down after it.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
from helpers import cells_using
from playwright.sync_api import Page, expect, sync_playwright

from cube import DEMO_IMAGE, LABEL_WORKER, State, Worker
from cube.api import Server

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "04-putting-it-together.ipynb"
PREFIX = "br04-"  # the copy's, for "nb04-"
PANEL_WORKER = f"{PREFIX}panel"
SCREENSHOT = ROOT / "docs" / "control-panel.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # this machine has no network; don't let Chromium try
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PANELS = "panels.ipynb"  # its workers' names do not start with PREFIX: notebook 04's cells remove those
PANELS_CODE = [
    "import cube, cube.book\nfrom cube.widgets import ControlPanel\n"
    "book_panel = ControlPanel(cube.book.Worker('brp-book-panel'))\nbook_panel",
    "cube_panel = ControlPanel(cube.Worker('brp-cube-panel'))\ncube_panel",
]


def _cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": uuid.uuid4().hex[:8], "metadata": {},
            "outputs": [], "source": source}  # fmt: skip


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    """One JupyterLab for the module, serving a copy of notebook 04 (outputs cleared, its names br04-)
    and the panels notebook; yields (its base URL, its token), then stops it."""
    folder = tmp_path_factory.mktemp("lab")
    notebook = json.loads((ROOT / "notebooks" / NOTEBOOK).read_text())
    # The section "One spec for three workers" prints a table and draws a plot (nbval checks both);
    # in the browser it would only add 20 s of spec runs, so the copy leaves its three cells out.
    spec = cells_using(notebook["cells"], ("results",), 3)
    notebook["cells"] = [c for c in notebook["cells"] if c not in spec]
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            cell["source"] = "".join(cell["source"]).replace("nb04-", PREFIX)
    notebook["metadata"].pop("widgets", None)
    (folder / NOTEBOOK).write_text(json.dumps(notebook))
    panels = {"cells": [_cell(PANELS_CODE[0]), _cell(PANELS_CODE[1])], "metadata": notebook["metadata"]}
    (folder / PANELS).write_text(json.dumps(panels | {"nbformat": 4, "nbformat_minor": 5}))
    # No settings of our own: the news prompt must stay away by the venv's overrides (make setup).
    port, token = free_port(), uuid.uuid4().hex
    env = os.environ | {
        "JUPYTERLAB_SETTINGS_DIR": str(folder / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "lab.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/status?token={token}").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail(f"JupyterLab did not start: {(folder / 'lab.log').read_text()[-2000:]}")
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


@pytest.fixture
def lab(lab_server):
    """The URL of the copy of notebook 04, in a workspace of the test's own (no tabs of an earlier
    test). After the test: its kernels shut down, and the containers of br04-/brp- workers removed."""
    base, token = lab_server
    workspace = uuid.uuid4().hex[:8]
    yield f"{base}/lab/workspaces/{workspace}/tree/{NOTEBOOK}?token={token}"
    with httpx.Client(base_url=base, params={"token": token}, timeout=30) as jupyter:
        for session in jupyter.get("/api/sessions").json():
            jupyter.delete(f"/api/sessions/{session['id']}")
    client = docker.from_env()
    # ignore_removed: the containers of tests running beside this one come and go meanwhile
    for c in client.containers.list(all=True, filters={"label": LABEL_WORKER}, ignore_removed=True):
        if c.labels[LABEL_WORKER].startswith((PREFIX, "brp-")):
            c.remove(force=True)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def run_all_cells(page: Page) -> None:
    # The status bar says Idle once the kernel is connected, yet a Run All sent in the first moments
    # after that is now and then dropped; so check that the first cell started, and ask again if not.
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(3):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            expect(first_prompt).not_to_have_text("[ ]:", timeout=10_000)
            break
        except AssertionError:
            continue
    # The last code cell prints what the engine has left once everything before it has run.
    expect(page.get_by_text("cube containers left for nb04: 0")).to_be_visible(timeout=120_000)


def test_control_panel_starts_serves_and_stops_a_container(lab, page):
    page.goto(lab)
    run_all_cells(page)

    panel = page.locator(".widget-vbox", has_text=f"Worker {PANEL_WORKER}").first
    panel.scroll_into_view_if_needed()
    name = panel.locator(".widget-text input").first.input_value()
    assert name.startswith("web-")

    panel.get_by_role("button", name="Enqueue").click()
    expect(panel.get_by_text(f"{name} → SCHEDULED")).to_be_visible()
    panel.get_by_role("button", name="Run next").click()
    row = panel.locator("table.cube-tasks tr", has_text=name)
    expect(row).to_contain_text("RUNNING", timeout=30_000)

    # The port link goes through the Jupyter server (jupyter-server-proxy), so it works wherever
    # the browser is, not only on the machine that runs the containers.
    link = row.get_by_role("link")
    port = link.inner_text()
    assert link.get_attribute("href") == f"/proxy/{port}/"
    with page.context.expect_page() as new_tab:
        link.click()
    site = new_tab.value
    site.wait_for_load_state()
    assert site.url.startswith(lab.split("/lab/")[0] + f"/proxy/{port}/")
    container_id = row.locator("code").inner_text()
    expect(site.locator("body")).to_have_text(f"Hello from {container_id}")
    site.close()
    expect(page.get_by_text("official Jupyter news")).to_have_count(0)  # no news prompt

    if os.environ.get("CUBE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        panel.screenshot(path=SCREENSHOT)

    panel.get_by_role("button", name="Stop").click()
    expect(row).to_contain_text("COMPLETED", timeout=30_000)
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(container_id)


@pytest.mark.parametrize("worker", ["brp-book-panel", "brp-cube-panel"])
def test_run_next_and_stop_on_the_books_worker_and_on_cubes(lab, page, worker, client):
    page.goto(lab.replace(NOTEBOOK, PANELS))
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
    panel = page.locator(".widget-vbox", has_text=f"Worker {worker}").first
    for _ in range(3):  # as in run_all_cells: a Run All sent too early is now and then dropped
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            expect(panel).to_be_visible(timeout=30_000)
            break
        except AssertionError:
            continue
    panel.scroll_into_view_if_needed()
    name = panel.locator(".widget-text input").first.input_value()
    panel.get_by_role("button", name="Enqueue").click()
    expect(panel.get_by_text(f"{name} → SCHEDULED")).to_be_visible()
    panel.get_by_role("button", name="Run next").click()
    row = panel.locator("table.cube-tasks tr", has_text=name)
    expect(row).to_contain_text("RUNNING", timeout=30_000)
    container_id = row.locator("code").inner_text()
    assert client.containers.get(container_id).status == "running"
    expect(row.get_by_role("link")).to_be_visible()  # the port, read from the engine for the book's
    panel.get_by_role("button", name="Stop").click()
    expect(row).to_contain_text("COMPLETED", timeout=30_000)
    expect(panel).to_contain_text(f"Stopped and removed container {container_id}")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)


@pytest.fixture
def api_server(client):
    """A worker's API on a free port of 127.0.0.1, in this process; its containers removed after."""
    worker = Worker(f"test-docs-{uuid.uuid4().hex[:8]}", client)
    server = Server(worker, token=f"docs-{uuid.uuid4().hex}")
    yield server
    server.stop()
    worker.close()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_WORKER}={worker.name}"}):
        c.remove(force=True)


def test_the_api_docs_page_takes_the_token_and_starts_a_task(api_server, page):
    failed = []
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    page.goto(f"{api_server.url}/docs")
    post = page.locator(".opblock-post", has_text="/tasks").first
    try:
        expect(post).to_be_visible(timeout=15_000)
    except AssertionError:
        pytest.fail(f"/docs shows no operations; requests that failed: {failed}")

    # The page loads without the token; its requests need it: Authorize takes it for all of them.
    token = api_server.headers["Authorization"].removeprefix("Bearer ")
    page.locator(".auth-wrapper").get_by_role("button", name="Authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator(".auth-container input").fill(token)
    dialog.locator("button.authorize").click()  # its accessible name is "Apply credentials"
    expect(dialog.get_by_text("Authorized", exact=True)).to_be_visible()
    dialog.locator("button.btn-done").click()

    post.locator(".opblock-summary").click()
    post.get_by_role("button", name="Try it out").click()
    body = {"state": "SCHEDULED", "task": {"name": f"{api_server.worker.name}-web", "image": DEMO_IMAGE,
                                           "exposed_ports": ["80/tcp"]}}  # fmt: skip
    post.locator("textarea.body-param__text").fill(json.dumps(body))
    post.get_by_role("button", name="Execute").click()

    response = post.locator(".live-responses-table .response").first
    expect(response.locator(".response-col_status")).to_have_text("201", timeout=10_000)
    answer = json.loads(response.locator(".response-col_description pre").first.inner_text())
    assert (answer["name"], answer["state"]) == (body["task"]["name"], "SCHEDULED")

    task_id = uuid.UUID(answer["id"])
    worker = api_server.worker
    deadline = time.monotonic() + 20
    while task_id not in worker.db or worker.db[task_id].state is not State.RUNNING:
        assert time.monotonic() < deadline, worker.db.get(task_id)
        time.sleep(0.1)
    task = worker.db[task_id]
    r = httpx.get(f"http://127.0.0.1:{task.host_ports['80/tcp']}/", timeout=5)
    assert r.text.strip() == f"Hello from {task.container_id[:12]}"

    assert httpx.delete(f"{api_server.url}/tasks/{task_id}", timeout=5).status_code == 401
    assert (
        httpx.delete(f"{api_server.url}/tasks/{task_id}", headers=api_server.headers, timeout=5).status_code
        == 204
    )
    while worker.db[task_id].state is not State.COMPLETED:
        assert time.monotonic() < deadline + 10, worker.db[task_id]
        time.sleep(0.1)
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().containers.get(task.container_id)


def test_the_api_docs_load_through_the_jupyter_servers_proxy(lab_server, api_server):
    # What a learner on JupyterHub or Codespaces opens: /proxy/PORT/docs on the Jupyter server. The
    # page must ask for its schema and scripts under the same prefix, and get them.
    base, token = lab_server
    prefix = f"/proxy/{api_server.port}"
    with httpx.Client(base_url=base, params={"token": token}) as jupyter:
        docs = jupyter.get(f"{prefix}/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        for path in (
            "/openapi.json",
            "/static-offline-docs/swagger-ui-bundle.js",
            "/static-offline-docs/swagger-ui.css",
        ):
            assert f"{prefix}{path}" in docs.text, path
            assert jupyter.get(f"{prefix}{path}").status_code == 200, path
