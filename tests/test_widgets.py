"""The control panel driven from Python: set its inputs, click its buttons, check db and engine."""

import html
import inspect
import logging
import re
import threading
import time
import types
import uuid
from pathlib import PureWindowsPath

import docker
import httpx
import pytest
from ipywidgets.widgets.widget import _instances as live_widgets

import cube.notebook
import cube.widgets
from cube import DEMO_IMAGE, LABEL_TASK, LABEL_WORKER, Docker, DockerResult, State, Task, Worker
from cube.explorer import TransitionExplorer
from cube.notebook import show_source
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
    assert panel.run_button.disabled and panel.stop_button.disabled, "nothing to run, nothing to stop"
    assert not panel.enqueue_button.disabled

    panel.enqueue_button.click()
    assert [t.name for t in panel.worker.queue] == [name]
    assert panel.task_name.value != name, "a fresh name is ready for the next task"
    assert _eventually(lambda: not panel.run_button.disabled), "a task is queued: Run next may be clicked"

    panel.run_button.click()
    panel.wait()
    assert _eventually(lambda: panel.run_button.disabled and not panel.stop_button.disabled)
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
    assert _eventually(lambda: panel.stop_button.disabled), "nothing runs: nothing to stop"
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


def test_the_queue_line_follows_a_request_the_worker_drops(panel):
    panel.worker.add_task(Task(name="idle", image=DEMO_IMAGE, state=State.PENDING))  # asks for nothing
    assert _eventually(lambda: "idle → PENDING" in panel.table.value)
    assert "nothing was done" in panel.worker.run_task().error
    assert _eventually(lambda: "idle → PENDING" not in panel.table.value), "told of the drop, it read again"


def test_the_panel_drives_a_started_worker_and_redraws_when_told(panel, client):
    panel.worker.start()
    panel.enqueue_button.click()  # no Run next: the worker's own loop takes the request
    assert _eventually(lambda: "RUNNING" in panel.table.value)
    task = only_task(panel)
    assert panel.running.value == task.id
    assert panel.run_button.disabled, "the loop took the request: nothing waits for Run next"
    panel.run_button.click()  # clicked from code all the same
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


def test_a_closed_worker_gets_its_sentence_from_every_button_and_its_metrics_stop(panel, caplog):
    panel.worker.close()
    closed = f"worker {panel.worker.name} is closed: make a new Worker to go on"
    panel.enqueue_button.click()
    assert panel.last_message.startswith(closed), panel.last_message
    assert "#b00020" in panel.message.value and closed in panel.table.value
    panel.last_message = ""
    panel.stop_button.click()
    assert panel.last_message.startswith(closed), panel.last_message
    panel.last_message = ""
    panel.run_button.click()
    panel.wait()
    assert panel.last_message.startswith(closed), panel.last_message
    assert all(b.disabled for b in (panel.enqueue_button, panel.run_button, panel.stop_button))
    assert _eventually(lambda: not panel.metrics.sampling), "the sampling ends"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "no traceback in the log"


def test_a_panel_on_a_closed_worker_says_so_and_samples_nothing():
    worker = Worker(f"test-closed-{uuid.uuid4().hex[:8]}")
    worker.close()
    panel = ControlPanel(worker, image="cube/not-built:1")
    assert f"worker {worker.name} is closed: make a new Worker to go on" in panel.table.value
    assert not panel.metrics.sampling
    panel.close()


def test_stop_may_be_clicked_again_after_a_fake_engine_refused_it(panel, monkeypatch):
    panel.enqueue_button.click()
    panel.run_button.click()
    panel.wait()
    task = only_task(panel)
    refused = "the engine refused to stop the container (a fake)"
    monkeypatch.setattr(Docker, "stop", lambda self, container_id: DockerResult(refused, "stop"))
    panel.stop_button.click()
    panel.wait()
    assert only_task(panel).state is State.RUNNING and panel.last_message == refused
    monkeypatch.undo()
    panel.stop_button.click()
    assert panel.last_message == f"Stopping {task.name}…", "not refused as 'already asked for'"
    panel.wait()
    assert only_task(panel).state is State.COMPLETED, panel.last_message


class RecordingWorker(NoneWorker):
    """A chapter-interface worker whose records are set by hand (a fake: three RUNNING tasks on demand)."""

    def __init__(self):
        super().__init__()
        self.added = []

    def add_task(self, t):
        self.added.append(t)
        super().add_task(t)


def _running(name: str) -> Task:
    return Task(name=name, image=DEMO_IMAGE, state=State.RUNNING, host_ports={"80/tcp": 1})


def test_stop_never_takes_the_choice_a_redraw_passes_through_with_a_fake_worker():
    worker = RecordingWorker()
    a, b, c = _running("web-a"), _running("web-b"), _running("web-c")
    worker.db = {a.id: a, b.id: b}
    panel = ControlPanel(worker, image="cube/not-built:1")
    panel.metrics.stop()  # the fake's tasks have no containers to measure
    assert panel.running.value == b.id
    clicks = []

    def click_stop_now(change):  # new options choose the first one, for a moment
        if change["new"] == a.id and not clicks:
            clicks.append(threading.Thread(target=panel.stop))
            clicks[0].start()
            time.sleep(0.3)  # time enough to read the passing choice, were it readable

    panel.running.observe(click_stop_now, "value")
    worker.db[c.id] = c
    panel.refresh()
    clicks[0].join(5)
    panel.wait()
    assert [(t.id, t.state) for t in worker.added] == [(b.id, State.COMPLETED)]
    panel.close()


@pytest.mark.slow
@pytest.mark.alone  # it untags the image every other test runs
def test_a_started_worker_gets_an_enqueue_made_during_the_build_once_the_image_is_there(worker, client):
    client.images.remove(DEMO_IMAGE, force=True)
    worker.start()
    panel = ControlPanel(worker)
    try:
        panel.enqueue_button.click()
        assert (
            panel.last_message.startswith("Enqueuing web-")
            and "once the image is built" in panel.last_message
        )
        assert worker.queue == () and not worker.db, "held: the worker's loop would fail it at once"
        assert not client.images.list(name=DEMO_IMAGE), "the build should still be running"
        panel.wait()
        assert _eventually(lambda: "RUNNING" in panel.table.value), panel.table.value
        assert only_task(panel).state is State.RUNNING
        assert panel.last_message.endswith(": the worker is starting it."), "the click's, not the build's"
        assert f"Built {DEMO_IMAGE}. Ready." in panel.build_note.value
    finally:
        panel.close()


def test_a_clicks_message_outlives_a_fake_build_of_the_demo_image(monkeypatch):
    go = threading.Event()

    def fake_build(client, on_step):  # a fake: a build that goes on when the test says so
        on_step(1, 2)
        go.wait(5)
        on_step(2, 2)
        return DEMO_IMAGE

    monkeypatch.setattr(cube.widgets, "ensure_demo_image", fake_build)
    panel = ControlPanel(Worker(f"test-build-{uuid.uuid4().hex[:8]}"))
    assert _eventually(lambda: "Building the demo image" in panel.build_note.value)
    panel.task_name.value = "my web server"
    panel.enqueue_button.click()
    go.set()
    panel.wait()
    assert panel.last_message.startswith("Not enqueued: name:") and "#b00020" in panel.message.value
    assert f"Built {DEMO_IMAGE}. Ready." in panel.build_note.value
    panel.close()
    panel.worker.close()


def test_a_sample_redraws_the_usage_only_the_workers_news_make_it_read_again(panel, monkeypatch):
    reads, samples = [], []
    refresh = panel.refresh
    monkeypatch.setattr(panel, "refresh", lambda: (reads.append(1), refresh()))  # a spy, no fake
    panel.metrics.subscribe(samples.append)
    assert _eventually(lambda: len(samples) >= 2)
    assert reads == [], "no sample reads the worker's db and queue again"
    panel.worker.add_task(Task(name="news", image=DEMO_IMAGE, state=State.SCHEDULED))
    assert _eventually(lambda: "news → SCHEDULED" in panel.table.value) and reads


def test_closing_a_panel_closes_every_widget_it_made():
    before = set(live_widgets)
    panel = ControlPanel(Worker(f"test-close-{uuid.uuid4().hex[:8]}"), image="cube/not-built:1")
    made = set(live_widgets) - before
    assert len(made) > 20  # its boxes, buttons, inputs and their layouts and styles
    panel.close()
    panel.worker.close()
    assert made & set(live_widgets) == set()


def test_a_task_with_no_name_is_called_by_the_first_8_characters_of_its_id():
    panel = ControlPanel(Worker(f"test-no-name-{uuid.uuid4().hex[:8]}"), image="cube/not-built:1")
    panel.task_name.value = ""
    panel.enqueue_button.click()
    (task,) = panel.worker.queue
    short = str(task.id)[:8]
    assert panel.last_message == f"Enqueued {short}: the worker will start it when you click Run next."
    assert _eventually(lambda: f"Queue: {short} → SCHEDULED" in panel.table.value)
    panel.close()
    panel.worker.close()


class TellingWorker(NoneWorker):
    """Tells a listener of a change as it subscribes, as a busy cube.Worker may (a fake: on demand)."""

    def subscribe(self, listener):
        listener(None)
        return lambda: None


def test_a_worker_that_tells_the_panel_at_once_finds_it_ready_with_a_fake_worker(caplog):
    panel = ControlPanel(TellingWorker(), image="cube/not-built:1")
    panel.close()
    assert "Queue: empty" in panel.table.value
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_show_source_is_headed_with_the_path_from_cube_on_even_on_a_fake_windows_path(monkeypatch):
    assert show_source(Worker.run_task, "4.12").data.startswith("**cube/worker.py**, after listing 4.12\n")
    on_windows = types.SimpleNamespace(  # a fake: what inspect says of a module on Windows
        getsourcefile=lambda obj: r"C:\Users\me\cube\cube\exercises\nb01.py",
        getsource=inspect.getsource,
        unwrap=inspect.unwrap,
    )
    monkeypatch.setattr(cube.notebook, "inspect", on_windows)
    monkeypatch.setattr(cube.notebook, "Path", PureWindowsPath)
    assert show_source(Worker.run_task).data.startswith("**cube/exercises/nb01.py**\n")


def test_an_add_task_that_raises_anything_is_a_message_not_a_traceback_with_a_fake_worker(panel):
    def broken_add_task(task):  # a fake: a learner's add_task that calls a method a list has not
        raise AttributeError("'list' object has no attribute 'push'")

    panel.worker.add_task = broken_add_task
    panel.enqueue_button.click()
    assert panel.last_message == (
        "Not enqueued: the worker's add_task raised AttributeError: 'list' object has no attribute 'push'"
    )


def test_a_stop_click_while_the_worker_is_stopping_that_task_is_refused_with_a_faked_stop_under_way(panel):
    panel.enqueue_button.click()
    panel.run_button.click()
    panel.wait()
    task = only_task(panel)
    panel.worker.store.save(task, "stop")  # a fake: as a started worker's loop has taken the stop, mid-way
    panel.stop_button.click()
    assert "already asked for" in panel.last_message and panel.worker.queue == ()
    panel.worker.store.save(task)  # the stop over, as the loop would have it
    panel.stop_button.click()
    panel.wait()
    assert only_task(panel).state is State.COMPLETED
