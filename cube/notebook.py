"""Reading cube from a notebook: a method's source beside the book's listing, and the worker's
own log lines, as listing 4.15 shows the Go worker's."""

import inspect
import logging
import sys

from IPython.display import Markdown

_handler: logging.Handler | None = None


def show_source(obj, listing: str = "") -> Markdown:
    """The source of a cube function, method or class, shown as a code block (what `??` shows),
    headed with the book's listing it stands for, e.g. show_source(Worker.run_task, "4.12")."""
    where = inspect.getsourcefile(obj).split("cube/")[-1]
    head = f"**cube/{where}**" + (f", after listing {listing}" if listing else "")
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
