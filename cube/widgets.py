"""A worker's control panel for the notebooks (ipywidgets 8).

Slow work (building the demo image, starting and stopping containers) runs on one background
thread, so the buttons answer at once and jobs run one at a time, in the order clicked. That thread
never prints, only sets widget values, which ipywidgets sends from any thread: printing from a thread
lands in whatever cell is running, as the ipywidgets and ipykernel 7 docs warn.

The panel does not poll. A cube.Worker tells it of every change it records (subscribe), whoever
caused it: a click, the worker's own loop, a container that exited. Any other worker with the
chapter's interface (cube.book.Worker, the learner's) has no one to tell the panel, so the panel
redraws after each of its own actions on it.
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
from cube.state import State
from cube.stats import Metrics
from cube.task import Task
from cube.web import port_url
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
    handles requests as they come, so Enqueue and Stop are all it takes.
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
                widgets.HBox([self.progress, self.message]),
                self.table,
            ]
        )
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cube-{worker.name}")
        self._jobs.submit(self._prepare_image)
        self._shown = ""
        self._drawing = threading.Lock()  # the worker's threads, the job thread and clicks all redraw
        subscribe = getattr(worker, "subscribe", None)  # only a cube.Worker tells of its changes
        self._unsubscribe = subscribe(lambda _: self._redraw()) if subscribe else lambda: None
        self._usage: dict[str, tuple] = {}  # task id -> (cpu %, memory bytes), from the metrics
        self._ports: dict[str, dict] = {}  # container id -> host ports, for workers that keep none
        self._stops: set = set()  # tasks whose Stop was clicked, while they still run
        self.metrics = Metrics(worker)
        self.metrics.subscribe(self._took_sample)
        self.metrics.start()
        self.refresh()

    def __repr__(self) -> str:
        # Stable text for the notebook's plain-text output (and for nbval to compare).
        return f"ControlPanel(worker={self.worker.name!r})"

    def enqueue(self) -> None:
        """Add a SCHEDULED task made from the inputs to the worker's queue."""
        try:
            task = Task(self.task_name.value.strip(), self.image.value.strip(), State.SCHEDULED)
            self.worker.add_task(task)
        except ValueError as e:
            self._say(f"Not enqueued: {e}", error=True)
            return
        if self._started():
            self._say(f"Enqueued {task.name}: the worker is starting it.")
        else:
            self._say(f"Enqueued {task.name}: the worker will start it when you click Run next.")
        self.task_name.value = fresh_task_name()
        self.refresh()

    def run_next(self) -> None:
        """Let the worker process the task at the front of its queue (in the background)."""
        if self._started():
            self._say("The worker is started: it runs each request as it arrives, no need to click.")
            return
        self._submit("Running the next task…", self.worker.run_task)

    def stop(self) -> None:
        """Stop the running task chosen in the drop-down (in the background)."""
        task = self.worker.db.get(self.running.value)
        if task is None or task.state is not State.RUNNING:
            self._say("No running task is chosen: start one with Enqueue and Run next.", error=True)
            return
        asked = task.id in self._stops or any(
            q.id == task.id and q.state is State.COMPLETED for q in self.worker.queue
        )
        if asked:
            self._say(f"Stop of {task.name} is already asked for: one is enough.", error=True)
            return
        self._stops.add(task.id)  # until the task is no longer RUNNING (see refresh)

        def stop_it():
            self.worker.add_task(replace(task, state=State.COMPLETED))
            if self._started():
                return f"Stop of {task.name} requested: the worker is stopping it."
            waiting = len(self.worker.queue) - 1
            if waiting:
                return f"Stop of {task.name} is queued behind {waiting} task(s): click Run next."
            return self.worker.run_task()

        self._submit(f"Stopping {task.name}…", stop_it)

    def wait(self, timeout: float = 60) -> None:
        """Block until every job clicked so far has finished (for tests and scripts)."""
        self._jobs.submit(lambda: None).result(timeout)
        self.refresh()

    def close(self) -> None:
        self._unsubscribe()
        self.metrics.stop()
        self._jobs.shutdown(wait=False, cancel_futures=True)
        super().close()

    def refresh(self) -> None:
        """Redraw the table and the drop-down of running tasks if anything changed."""
        with self._drawing:
            tasks = list(self.worker.db.values())
            queued = list(self.worker.queue)
            self._stops &= {t.id for t in tasks if t.state is State.RUNNING}
            tasks = [self._with_ports(t) for t in tasks]
            shown = _tasks_table(tasks, queued, self._usage)
            if shown == self._shown:
                return
            self._shown = shown
            self.table.value = shown
            running = [(t.name or str(t.id)[:8], t.id) for t in tasks if t.state is State.RUNNING]
            if running != list(self.running.options):
                chosen = self.running.value
                self.running.options = running
                if chosen in [i for _, i in running]:
                    self.running.value = chosen
                elif running:
                    self.running.value = running[-1][1]  # the newest is the likeliest to be stopped

    def _submit(self, doing: str, job: Callable) -> None:
        self._say(doing)
        self._jobs.submit(self._run_job, job)

    def _run_job(self, job: Callable) -> None:
        try:
            outcome = job()
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
        self.refresh()

    def _with_ports(self, task: Task) -> Task:
        """The task with its host ports. The chapter's Task records none (the book reads them off
        `docker ps`, listing 4.14): for a running one, ask the engine, once per container."""
        if task.host_ports or task.state is not State.RUNNING or not task.container_id:
            return task
        if task.container_id not in self._ports:
            try:
                self._ports[task.container_id] = (
                    Docker(client=self.worker.client).inspect(task.container_id).host_ports
                )
            except Exception as e:  # noqa: BLE001 - no port to show is no reason to fail the redraw
                log.info("no host ports for container %s: %s", task.container_id[:12], e)
                return task
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
            self._say(str(e), error=True)
        else:
            if self.progress.value:  # a build really ran
                self._say(f"Built {DEMO_IMAGE}. Ready.")
        finally:
            self.progress.layout.display = "none"

    def _show_step(self, step: int, steps: int) -> None:
        if step == 1:
            self._say(f"Building the demo image {DEMO_IMAGE}…")
            self.progress.layout.display = "flex"
        self.progress.max, self.progress.value = steps, step

    def _say(self, text: str, error: bool = False) -> None:
        self.last_message = text
        color = "#b00020" if error else "inherit"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _took_sample(self, sample: dict) -> None:
        self._usage = {t["id"]: (t["cpu_percent"], t["memory_bytes"]) for t in sample["tasks"]}
        self._redraw()

    def _redraw(self) -> None:
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - a failed redraw must not break the worker that told us
            log.exception("redrawing the panel of %s failed", self.worker.name)


_LINK = "color: #1a73e8; text-decoration: underline"
_TABLE_CSS = (
    ".cube-tasks {border-collapse: collapse; margin: 6px 0}"
    ".cube-tasks th, .cube-tasks td {padding: 3px 12px; border-bottom: 1px solid #ddd; text-align: left;"
    " white-space: nowrap}"  # a name never wraps; a long reason is cut (cube-why), whole on hover
    ".cube-tasks td.cube-why {max-width: 32em; overflow: hidden; text-overflow: ellipsis}"
)


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


def _tasks_table(tasks: list[Task], queued: list[Task], usage: dict[str, tuple]) -> str:
    def when(t):
        return t.strftime("%H:%M:%S") if t else ""

    def used(task: Task) -> str:
        cpu, memory = usage.get(str(task.id), (None, None)) if task.state is State.RUNNING else ("", "")
        cpu = "…" if cpu is None else cpu if cpu == "" else f"{cpu:.0f} %"
        memory = "…" if memory is None else memory if memory == "" else f"{memory / 2**20:.1f} MiB"
        return f"<td>{cpu}</td><td>{memory}</td>"

    def port_links(task: Task) -> str:
        if task.state is not State.RUNNING:
            return ", ".join(str(p) for p in task.host_ports.values())
        return ", ".join(
            f'<a href="{port_url(p)}" target="_blank" style="{_LINK}">{p}</a>'
            for p in task.host_ports.values()
        )

    rows = "".join(
        f"<tr><td>{html.escape(t.name)}</td><td>{t.state}</td><td><code>{t.container_id[:12]}</code></td>"
        f"<td>{port_links(t)}</td>{used(t)}<td>{when(t.start_time)}</td><td>{when(t.finish_time)}</td>"
        f'<td class="cube-why" title="{html.escape(t.reason)}">{html.escape(t.reason)}</td></tr>'
        for t in tasks
    )
    waiting = ", ".join(f"{html.escape(t.name)} → {t.state}" for t in queued) or "empty"
    return (
        f"<style>{_TABLE_CSS}</style>"
        '<table class="cube-tasks"><thead><tr><th>Name</th><th>State</th><th>Container</th>'
        "<th>Port</th><th>CPU</th><th>Memory</th><th>Started (UTC)</th><th>Finished (UTC)</th><th>Why</th>"
        "</tr></thead>"
        f"<tbody>{rows}</tbody></table><p>Queue: {waiting}</p>"
    )
