"""A worker's control panel for the notebooks (ipywidgets 8).

Slow work (building the demo image, starting and stopping containers) runs on one background
thread, so the buttons answer at once and jobs run one at a time, in the order clicked. That thread
never prints, only sets widget values, which ipywidgets sends from any thread: printing from a thread
lands in whatever cell is running, as the ipywidgets and ipykernel 7 docs warn.

The panel does not poll. A cube.Worker tells it of every change it records (subscribe), whoever
caused it: a click, the worker's own loop, a container that exited. Any other worker with the
chapter's interface (cube.book.Worker, the learner's) has no one to tell the panel, so the panel
redraws after each of its own actions on it. Each metrics sample redraws only the CPU and memory.
"""

import html
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import ipywidgets as widgets

from cube.docker import Docker
from cube.image import DEMO_IMAGE, ensure_demo_image
from cube.notebook import task_label, tasks_table
from cube.state import State
from cube.stats import Metrics
from cube.store import StoreClosed
from cube.task import Task
from cube.worker import Worker

log = logging.getLogger(__name__)


def fresh_task_name() -> str:
    """A container name that is very unlikely to be taken: web-<4 hex digits>."""
    return f"web-{secrets.token_hex(2)}"


class ControlPanel(widgets.VBox):
    """Buttons and a live table for one worker: a cube.Worker, or any worker with the chapter's
    interface (name, queue, db, add_task, run_task), such as cube.book.Worker.

    "Enqueue" adds a SCHEDULED task made from the two inputs; "Run next" makes the worker process
    the task at the front of its queue; "Stop" enqueues the chosen running task as COMPLETED, with
    the container id of the worker's record (as listing 4.13 copies it), and if nothing is waiting
    ahead of it, runs it at once. With a started cube.Worker (worker.start()) the worker's own loop
    handles requests as they come, so Enqueue and Stop are all it takes. A button with nothing to do
    is disabled: Run next with nothing queued, Stop with nothing running, all once the worker is closed.
    """

    def __init__(self, worker: Worker, image: str = DEMO_IMAGE) -> None:
        self.worker = worker
        self.task_name = widgets.Text(value=fresh_task_name(), description="Task name")
        self.image = widgets.Text(value=image, description="Image")
        self.enqueue_button = widgets.Button(description="Enqueue", icon="plus", button_style="info")
        self.run_button = widgets.Button(description="Run next", icon="play", button_style="success")
        self.running = widgets.Dropdown(description="Running", options=[])
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout={"display": "none"})
        self.build_note = widgets.HTML()  # the demo image's build, apart: a click's message stays
        self.message = widgets.HTML()
        self.last_message = ""  # the message's plain text, for code and tests
        self.table = widgets.HTML()
        self.enqueue_button.on_click(lambda _: self.enqueue())
        self.run_button.on_click(lambda _: self.run_next())
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__(
            [
                widgets.HTML(f"<b>Worker {html.escape(worker.name)}</b> ({html.escape(_kind(worker))})"),
                widgets.HBox([self.task_name, self.image, self.enqueue_button]),
                widgets.HBox([self.run_button, self.running, self.stop_button]),
                widgets.HBox([self.progress, self.build_note, self.message]),
                self.table,
            ]
        )
        self._drawing = threading.Lock()  # the worker's threads, the job thread and clicks all redraw
        self._tasks, self._queued, self._closed = [], [], ""  # as last read; why the worker is no more
        self._usage: dict[str, tuple] = {}  # task id -> (cpu %, memory bytes), from the metrics
        self._ports: dict[str, dict] = {}  # container id -> host ports, for workers that keep none
        self._stops: set = set()  # tasks whose Stop was clicked, until the stop's job is over
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cube-{worker.name}")
        self._image_ready = self._jobs.submit(self._prepare_image)
        self.metrics = Metrics(worker)
        self.metrics.subscribe(self._took_sample)
        subscribe = getattr(worker, "subscribe", None)  # only a cube.Worker tells of its changes
        # once all the listener uses is set, and before the first read, so no change is missed
        self._unsubscribe = subscribe(lambda _: self.refresh()) if subscribe else None
        self.refresh()
        if not self._closed:
            self.metrics.start()

    def __repr__(self) -> str:
        # Stable text for the notebook's plain-text output (and for nbval to compare).
        return f"ControlPanel(worker={self.worker.name!r})"

    def enqueue(self) -> None:
        """Add a SCHEDULED task made from the inputs to the worker's queue. While the demo image is
        being built, a started worker gets it after the build: its loop would fail it at once."""
        try:
            task = Task(self.task_name.value.strip(), self.image.value.strip(), State.SCHEDULED)
            if self._started() and task.image == DEMO_IMAGE and not self._image_ready.done():
                self._submit(
                    f"Enqueuing {task_label(task)} once the image is built…", lambda: self._add(task)
                )
            else:
                self._say(self._add(task))
        except ValueError as e:
            return self._say(f"Not enqueued: {e}", error=True)
        except StoreClosed as e:
            return self._worker_closed(e)
        except Exception as e:  # noqa: BLE001 - a learner's add_task may raise anything: a sentence, not a traceback
            return self._say(
                f"Not enqueued: the worker's add_task raised {type(e).__name__}: {e}", error=True
            )
        self.task_name.value = fresh_task_name()
        self._redraw_if_untold()

    def run_next(self) -> None:
        """Let the worker process the task at the front of its queue (in the background)."""
        if self._started():
            self._say("The worker is started: it runs each request as it arrives, no need to click.")
            return
        self._submit("Running the next task…", self.worker.run_task)

    def stop(self) -> None:
        """Stop the running task chosen in the drop-down (in the background)."""
        with self._drawing:  # a redraw sets the drop-down's options, which picks the first for a moment
            chosen = self.running.value
        try:
            task, queued = self.worker.db.get(chosen), list(self.worker.queue)
        except StoreClosed as e:
            return self._worker_closed(e)
        if task is None or task.state is not State.RUNNING:
            return self._say("No running task is chosen: start one with Enqueue and Run next.", error=True)
        store = getattr(self.worker, "store", None)  # a cube.Worker's: a stop it has taken is under way there
        stopping = store is not None and store.op(task.id) == "stop"
        queued_stop = any(q.id == task.id and q.state is State.COMPLETED for q in queued)
        if stopping or task.id in self._stops or queued_stop:
            return self._say(f"Stop of {task_label(task)} is already asked for: one is enough.", error=True)
        self._stops.add(task.id)

        def stop_it():
            try:
                self.worker.add_task(replace(task, state=State.COMPLETED))
                if self._started():
                    return f"Stop of {task_label(task)} requested: the worker is stopping it."
                if waiting := len(self.worker.queue) - 1:
                    return f"Stop of {task_label(task)} is queued behind {waiting} task(s): click Run next."
                return self.worker.run_task()
            finally:  # a refused stop leaves the task RUNNING: Stop must be possible again
                self._stops.discard(task.id)

        self._submit(f"Stopping {task_label(task)}…", stop_it)

    def wait(self, timeout: float = 60) -> None:
        """Block until every job clicked so far has finished, then redraw (for tests and scripts)."""
        self._jobs.submit(lambda: None).result(timeout)
        self.refresh()

    def close(self) -> None:
        """Stop listening, sampling and working, and close every widget of the panel."""
        if self._unsubscribe:
            self._unsubscribe()
        self.metrics.stop()
        self._jobs.shutdown(wait=False, cancel_futures=True)
        _close_all(*self.children, self.layout)
        super().close()

    def refresh(self) -> None:
        """Read the worker's tasks and queue, and redraw the table and the drop-down of running tasks."""
        with self._drawing:
            try:
                tasks, self._queued = list(self.worker.db.values()), list(self.worker.queue)
            except StoreClosed as e:
                tasks, self._queued, self._closed = [], [], str(e)
            self._tasks = [self._with_ports(t) for t in tasks]
            running = [(task_label(t), t.id) for t in self._tasks if t.state is State.RUNNING]
            if running != list(self.running.options):
                chosen, ids = self.running.value, [i for _, i in running]
                with self.running.hold_sync():  # the browser gets the options and the choice at once
                    self.running.options = running
                    if ids:  # the chosen one stays; else the newest, the likeliest to be stopped
                        self.running.value = chosen if chosen in ids else ids[-1]
            closed = bool(self._closed)  # a button with nothing to do is greyed out
            self.enqueue_button.disabled, self.stop_button.disabled = closed, closed or not running
            self.run_button.disabled = closed or not self._queued
            self._draw()

    def _draw(self) -> None:  # what was last read, with the latest usage; the caller holds self._drawing
        closed = self._closed and f"<p>{_html(self._closed, error=True)}</p>"
        self.table.value = closed or tasks_table(self._tasks, self._queued, self._usage)  # sent if changed

    def _submit(self, doing: str, job: Callable) -> None:
        self._say(doing)
        self._jobs.submit(self._run_job, job)

    def _run_job(self, job: Callable) -> None:
        try:
            outcome = job()
        except StoreClosed as e:
            return self._worker_closed(e)
        except Exception as e:  # noqa: BLE001 - a panel shows a message, never a traceback
            self._say(f"Unexpected error: {type(e).__name__}: {e}", error=True)
        else:
            if isinstance(outcome, str):
                self._say(outcome)
            elif not hasattr(outcome, "error"):
                self._say(f"The worker answered {outcome!r}, not a DockerResult.", error=True)
            elif outcome.error:
                self._say(str(outcome.error), error=True)
            else:
                self._say(_describe(outcome.action, outcome.result, outcome.container_id))
        self._redraw_if_untold()

    def _add(self, task: Task) -> str:
        self.worker.add_task(task)
        then = "is starting it" if self._started() else "will start it when you click Run next"
        return f"Enqueued {task_label(task)}: the worker {then}."

    def _worker_closed(self, e: StoreClosed) -> None:
        self._say(str(e), error=True)
        self.refresh()  # the table says it too

    def _redraw_if_untold(self) -> None:
        """After a click: a worker that tells no one of its changes (cube.book.Worker) is read again."""
        if self._unsubscribe is None:
            self.refresh()

    def _with_ports(self, task: Task) -> Task:
        """The task with its host ports. The chapter's Task records none (the book reads them off
        `docker ps`, listing 4.14): for a running one, ask the engine, once per container."""
        if task.host_ports or task.state is not State.RUNNING or not task.container_id:
            return task
        if task.container_id not in self._ports:
            try:
                seen = Docker(client=self.worker.client).inspect(task.container_id)
            except Exception as e:  # noqa: BLE001 - no port to show is no reason to fail the redraw
                log.info("no host ports for container %s: %s", task.container_id[:12], e)
                return task
            self._ports[task.container_id] = seen.host_ports
        return replace(task, host_ports=self._ports[task.container_id])

    def _started(self) -> bool:
        return bool(getattr(self.worker, "running", False))

    def _prepare_image(self) -> None:
        """Build the demo image in the background if a first Run next will need it."""
        if self.image.value != DEMO_IMAGE:
            return
        try:
            ensure_demo_image(self.worker.client, on_step=self._show_step)
        except RuntimeError as e:
            self.build_note.value = _html(str(e), error=True)
        else:
            if self.progress.value:  # a build really ran
                self.build_note.value = _html(f"Built {DEMO_IMAGE}. Ready.")
        finally:
            self.progress.layout.display = "none"

    def _show_step(self, step: int, steps: int) -> None:
        if step == 1:
            self.build_note.value = _html(f"Building the demo image {DEMO_IMAGE}…")
            self.progress.layout.display = "flex"
        self.progress.max, self.progress.value = steps, step

    def _say(self, text: str, error: bool = False) -> None:
        self.last_message, self.message.value = text, _html(text, error)

    def _took_sample(self, sample: dict) -> None:
        with self._drawing:  # only the usage is new: the worker's records are not read again
            self._usage = {t["id"]: (t["cpu_percent"], t["memory_bytes"]) for t in sample["tasks"]}
            self._draw()


def _html(text: str, error: bool = False) -> str:
    return f'<span style="color:{"#b00020" if error else "inherit"}">{html.escape(text)}</span>'


def _close_all(*held: widgets.Widget) -> None:
    """Close these widgets and all they hold: children, layout, style (each has a comm of its own)."""
    for w in held:
        looks = [getattr(w, trait, None) for trait in ("layout", "style")]
        _close_all(*getattr(w, "children", ()), *filter(None, looks))
        w.close()


def _describe(action: str, result: str, container_id: str) -> str:
    if action == "start":
        return f"Started container {container_id[:12]}."
    if action == "stop":
        return f"Stopped and removed container {container_id[:12]} ({result})."
    return f"Nothing to do: {result or 'no tasks in the queue'}."


def _kind(worker) -> str:
    module, name = type(worker).__module__, type(worker).__name__
    learners = module in ("__main__", "my_worker") or module.startswith("cube.exercises")
    return name if learners else f"{module}.{name}"
