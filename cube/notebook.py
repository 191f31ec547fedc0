"""Reading cube from a notebook: a method's source beside the book's listing, the worker's own log
lines, as listing 4.15 shows the Go worker's, and its tasks as a table (the control panel's)."""

import html
import inspect
import logging
import sys
from pathlib import Path

from IPython.display import Markdown

from cube.state import State
from cube.task import Task
from cube.web import port_url

_handler: logging.Handler | None = None


def show_source(obj, listing: str = "") -> Markdown:
    """The source of a cube function, method or class, shown as a code block (what `??` shows),
    headed with the book's listing it stands for, e.g. show_source(Worker.run_task, "4.12")."""
    obj = inspect.unwrap(obj)  # a Worker's operation is wrapped by its Gate (cube.loop): show the method
    parts = Path(inspect.getsourcefile(obj)).parts  # split as this system splits paths ("\\" on Windows)
    start = max((i for i, part in enumerate(parts) if part == "cube"), default=len(parts) - 1)
    head = f"**{'/'.join(parts[start:])}**" + (f", after listing {listing}" if listing else "")
    return Markdown(f"{head}\n\n```python\n{inspect.getsource(obj).rstrip()}\n```")


class _ToCurrentStdout(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a line is logged: in a notebook, the running cell."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _) -> None:
        pass


def narrate(on: bool = True) -> None:
    """Print cube's log lines (what the worker, the Docker wrapper and the store do) as they happen.

    Lines logged by a background thread land in whichever cell is running, so narrate while you
    call run_task() yourself, not while a started worker works on its own.
    """
    global _handler
    log = logging.getLogger("cube")
    if _handler:
        log.removeHandler(_handler)
        _handler = None
    if on:
        _handler = _ToCurrentStdout()
        _handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        log.addHandler(_handler)
        log.setLevel(logging.INFO)
    else:
        log.setLevel(logging.WARNING)


def task_label(task: Task) -> str:
    """How a task is named on screen: its name, or its id's first 8 characters if it has none."""
    return task.name or str(task.id)[:8]


_LINK = "color: #1a73e8; text-decoration: underline"
_TABLE_CSS = (
    ".cube-tasks {border-collapse: collapse; margin: 6px 0}"
    ".cube-tasks th, .cube-tasks td {padding: 3px 12px; border-bottom: 1px solid #ddd; text-align: left;"
    " white-space: nowrap}"  # a name never wraps; a long reason is cut (cube-why), whole on hover
    ".cube-tasks td.cube-why {max-width: 32em; overflow: hidden; text-overflow: ellipsis}"
)


def tasks_table(tasks: list[Task], queued: list[Task], usage: dict[str, tuple] | None = None) -> str:
    """The tasks and the queue as HTML, as the control panel shows them: a running task's host ports
    link through the Jupyter server; usage maps a task's id to its (cpu %, memory bytes)."""
    usage = usage or {}

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
        f"<tr><td>{html.escape(task_label(t))}</td><td>{t.state}</td><td><code>{t.container_id[:12]}</code></td>"
        f"<td>{port_links(t)}</td>{used(t)}<td>{when(t.start_time)}</td><td>{when(t.finish_time)}</td>"
        f'<td class="cube-why" title="{html.escape(t.reason)}">{html.escape(t.reason)}</td></tr>'
        for t in tasks
    )
    waiting = ", ".join(f"{html.escape(task_label(t))} → {t.state}" for t in queued) or "empty"
    return (
        f"<style>{_TABLE_CSS}</style>"
        '<table class="cube-tasks"><thead><tr><th>Name</th><th>State</th><th>Container</th>'
        "<th>Port</th><th>CPU</th><th>Memory</th><th>Started (UTC)</th><th>Finished (UTC)</th><th>Why</th>"
        "</tr></thead>"
        f"<tbody>{rows}</tbody></table><p>Queue: {waiting}</p>"
    )
