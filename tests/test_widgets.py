"""The control panel driven from Python: set its inputs, click its buttons, check db and engine."""

import html
import re
import time

import docker
import httpx
import pytest

from cube import DEMO_IMAGE, LABEL_TASK, LABEL_WORKER, State, Task
from cube.explorer import TransitionExplorer
from cube.widgets import ControlPanel


@pytest.fixture
def panel(worker, demo_image):
    p = ControlPanel(worker)
    p.wait()
    yield p
    p.close()


def only_task(panel: ControlPanel) -> Task:
    (task,) = panel.worker.db.values()
    return task


def test_the_first_clicks_start_serve_and_stop_a_container(panel, client):
    name = panel.task_name.value
    assert name.startswith("web-") and panel.image.value == DEMO_IMAGE

    panel.enqueue_button.click()
    assert [t.name for t in panel.worker.queue] == [name]
    assert panel.task_name.value != name, "a fresh name is ready for the next task"

    panel.run_button.click()
    panel.wait()
    task = only_task(panel)
    assert task.state is State.RUNNING, panel.last_message
    container = client.containers.get(task.container_id)
    assert container.labels[LABEL_TASK] == str(task.id)
    assert container.labels[LABEL_WORKER] == panel.worker.name
    port = task.host_ports["80/tcp"]
    assert f'href="/proxy/{port}/"' in panel.table.value  # through the Jupyter server (jupyter-server-proxy)
    assert "RUNNING" in panel.table.value
    assert httpx.get(f"http://127.0.0.1:{port}").text.strip() == f"Hello from {task.container_id[:12]}"
    assert panel.running.value == task.id

    panel.stop_button.click()
    panel.wait()
    assert only_task(panel).state is State.COMPLETED, panel.last_message
    assert "COMPLETED" in panel.table.value
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(task.container_id)


def test_a_bad_name_is_a_message_and_nothing_is_queued(panel):
    panel.task_name.value = "my web server"
    panel.enqueue_button.click()
    assert panel.last_message.startswith("Not enqueued: name:")
    assert panel.worker.queue == ()
    assert panel.task_name.value == "my web server", "the input is kept so it can be corrected"


def test_a_missing_image_fails_the_task_with_a_message_not_a_traceback(panel):
    panel.image.value = "cube/no-such-image:1"
    panel.enqueue_button.click()
    panel.run_button.click()
    panel.wait()
    assert only_task(panel).state is State.FAILED
    assert "cube/no-such-image:1" in panel.last_message
    assert "Traceback" not in panel.message.value
    assert "#b00020" in panel.message.value  # shown as an error


def test_stop_with_nothing_running_and_run_with_nothing_queued_say_so(panel):
    panel.stop_button.click()
    assert "No running task" in panel.last_message
    panel.run_button.click()
    panel.wait()
    assert panel.last_message == "Nothing to do: no tasks in the queue."


def test_an_unexpected_error_in_a_job_is_a_message_with_a_fake_worker(panel):
    def broken_run_task():  # a fake: no engine fails like this on demand
        raise KeyError("boom")

    panel.worker.run_task = broken_run_task
    panel.run_button.click()
    panel.wait()
    assert panel.last_message == "Unexpected error: KeyError: 'boom'"


def test_the_table_follows_changes_made_outside_the_panel(panel):
    task = Task(name="outside", image=DEMO_IMAGE, state=State.SCHEDULED)
    panel.worker.add_task(task)
    assert _eventually(lambda: "outside → SCHEDULED" in panel.table.value)
    panel.worker.run_task()
    assert _eventually(lambda: "RUNNING" in panel.table.value)
    assert panel.running.value == task.id


@pytest.mark.slow
@pytest.mark.alone  # it untags the image every other test runs
def test_the_demo_image_is_built_in_the_background_while_buttons_answer(worker, client):
    # Untag it: a container of the image (a learner's, one left by an interrupted run) keeps its copy.
    client.images.remove(DEMO_IMAGE, force=True)
    assert not client.images.list(name=DEMO_IMAGE)
    panel = ControlPanel(worker)
    try:
        panel.enqueue_button.click()  # answered at once, while the build runs
        assert len(panel.worker.queue) == 1
        assert not client.images.list(name=DEMO_IMAGE), "the build should still be running"
        panel.run_button.click()
        panel.wait()
        assert client.images.list(name=DEMO_IMAGE)
        assert panel.progress.max > 1 and panel.progress.value == panel.progress.max
        assert panel.progress.layout.display == "none"
        assert only_task(panel).state is State.RUNNING, panel.last_message
    finally:
        panel.close()


def test_the_transition_explorer_judges_with_the_map():
    explorer = TransitionExplorer()
    assert "valid" in explorer.verdict.value and "RUNNING → COMPLETED" in explorer.verdict.value
    explorer.src.value = State.COMPLETED
    explorer.dst.value = State.RUNNING
    assert "not allowed" in explorer.verdict.value


def _eventually(check, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_the_panel_drives_a_started_worker_and_redraws_when_told(panel, client):
    panel.worker.start()
    panel.enqueue_button.click()  # no Run next: the worker's own loop takes the request
    assert _eventually(lambda: "RUNNING" in panel.table.value)
    task = only_task(panel)
    assert panel.running.value == task.id
    panel.run_button.click()
    assert "no need to click" in panel.last_message

    client.containers.get(task.container_id).kill()  # behind everyone's back
    assert _eventually(lambda: "FAILED" in panel.table.value), "the worker saw it, the panel was told"
    assert "exited with code 137 (killed by SIGKILL)" in panel.table.value
    assert panel.running.options == ()


@pytest.mark.slow
def test_the_table_shows_each_running_tasks_cpu_and_memory(panel):
    panel.worker.add_task(
        Task(image=DEMO_IMAGE, state=State.SCHEDULED, cmd=["sh", "-c", "while :; do :; done"])
    )
    panel.worker.run_task()
    # one busy core, measured over a second by the engine's stats stream: read as tens of percent
    assert _eventually(
        lambda: re.search(r"<td>\d{2,3} %</td><td>\d+\.\d MiB</td>", panel.table.value), seconds=8
    )


def test_a_second_stop_click_before_the_first_is_done_is_refused_by_the_panel(panel):
    panel.enqueue_button.click()
    panel.run_button.click()
    panel.wait()
    panel.stop_button.click()
    panel.stop_button.click()  # at once: the first stop has not run yet
    assert panel.last_message.startswith("Stop of ") and "already asked for" in panel.last_message
    panel.wait()
    assert only_task(panel).state is State.COMPLETED
    assert panel.worker.queue == (), "one stop request, not two"


def test_closing_a_panel_twice_is_harmless(worker, demo_image):
    p = ControlPanel(worker)
    p.close()
    p.close()


@pytest.fixture
def book_panel(demo_image, client):
    import cube.book

    p = ControlPanel(cube.book.Worker(f"test-book-panel-{time.time_ns() % 10**8}"))
    p.wait()
    yield p
    p.close()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_WORKER}={p.worker.name}"}):
        c.remove(force=True)


def test_the_panel_drives_the_books_worker_redrawing_after_each_of_its_own_actions(book_panel, client):
    panel = book_panel
    assert "(cube.book.Worker)" in panel.children[0].value
    panel.enqueue_button.click()
    assert "→ SCHEDULED" in panel.table.value  # the queue line, redrawn without being told
    panel.run_button.click()
    panel.wait()
    task = only_task(panel)
    assert task.state is State.RUNNING, panel.last_message
    assert task.host_ports == {}  # the book's Task records no ports...
    port = client.containers.get(task.container_id).ports["80/tcp"][0]["HostPort"]
    assert f'href="/proxy/{port}/"' in panel.table.value  # ...so the panel asked the engine
    panel.stop_button.click()  # the panel copies the container id from the db, as listing 4.13 does
    panel.wait()
    assert only_task(panel).state is State.COMPLETED, panel.last_message
    assert panel.last_message.startswith("Stopped and removed container")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(task.container_id)


def test_task_names_never_wrap_and_a_long_reason_is_one_line_with_the_whole_text_on_hover(panel):
    long = "could not start task 'x': " + "a very long reason " * 20
    task = Task(name="web-long-name-1", image=DEMO_IMAGE, state=State.FAILED, reason=long)
    panel.worker.store.save(task)
    panel.refresh()
    assert "white-space: nowrap" in panel.table.value
    assert f'<td class="cube-why" title="{html.escape(long)}">' in panel.table.value
    assert "text-overflow: ellipsis" in panel.table.value


class NoneWorker:
    """A chapter-interface worker whose run_task forgot to return (a fake: the fault is the point)."""

    name, client, task_count = "test-none-worker", None, 0

    def __init__(self):
        self.queue, self.db = [], {}

    def add_task(self, t):
        self.queue.append(t)

    def run_task(self):
        self.queue.pop(0)


def test_a_worker_that_answers_none_gets_a_message_not_a_traceback():
    panel = ControlPanel(NoneWorker(), image="cube/not-built:1")
    panel.enqueue_button.click()
    panel.run_button.click()
    panel.wait()
    assert panel.last_message == "The worker answered None, not a DockerResult."
    panel.close()
