"""What every check of a worker shares (cube.spec's rows, the exercises' checkers): the engine, read
through cube's Docker wrapper; the tasks made for one check and the removal of every container they
got; a call into the worker whose exception becomes a finding; and the rows a check produces.
"""

import ctypes
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from cube.docker import Docker, EngineError, Observed
from cube.image import DEMO_IMAGE
from cube.state import State
from cube.task import LABEL_TASK, LABEL_WORKER, Task
from cube.web import page

log = logging.getLogger(__name__)

MISSING_IMAGE = "cube/no-such-image:spec"  # an image no registry has


@dataclass
class Row:
    """One check of one worker: passed, or why not (what the engine showed)."""

    name: str
    level: str
    passed: bool
    why: str = ""
    seconds: float = 0.0

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.name} ({self.seconds:.1f} s)" + (f": {self.why}" if self.why else "")


class Fault(Exception):
    """What a check found wrong, as one sentence."""


class Bench:
    """What one row works with: the engine (read through cube's Docker wrapper), the tasks made for
    the row, and the clean-up of every container they got.

    Args:
        prefix: starts every task name the row makes, e.g. "spec-3f2a1b-4".
    """

    def __init__(self, prefix: str, engine: Docker | None = None) -> None:
        self.prefix = prefix
        self.engine = engine or Docker()
        self.task_ids: list[uuid.UUID] = []
        self.workers: set[str] = set()
        self.closed = False  # cleaned up: the row's time is over, and it makes no more tasks

    def task(self, suffix: str = "web", **fields) -> Task:
        """A SCHEDULED task for the demo web server, named PREFIX-SUFFIX ('' lets Docker name it)."""
        if self.closed:
            raise Fault("the check's time was up before it could make its next task")
        fields.setdefault("image", DEMO_IMAGE)
        fields.setdefault("state", State.SCHEDULED)
        t = Task(name=suffix and f"{self.prefix}-{suffix}", **fields)
        self.task_ids.append(t.id)
        return t

    def containers(self, t: Task) -> list[Observed]:
        """Every container, running or not, labelled for task t."""
        return self.engine.containers({LABEL_TASK: str(t.id)})

    def the_container(self, t: Task, after: str) -> Observed:
        """The one container of task t, inspected; a Fault if there is none or more than one."""
        found = self.containers(t)
        if not found:
            raise Fault(f"{after}, but the engine has no container labelled for task {t.name or t.id}")
        if len(found) > 1:
            ids = ", ".join(c.container_id[:12] for c in found)
            raise Fault(f"{after}, and the engine has {len(found)} containers for task {t.name}: {ids}")
        return self.engine.inspect(found[0].container_id)

    def wait_until_ended(self, container_id: str, within: float = 5.0) -> Observed:
        deadline = time.monotonic() + within
        while not (seen := self.engine.inspect(container_id)).ended and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen

    def serves(self, seen: Observed) -> None:
        """The container's web server answers with its own 'Hello from <short id>'."""
        port = seen.host_ports.get("80/tcp")
        if port is None:
            raise Fault(f"container {seen.container_id[:12]} runs but publishes no port for 80/tcp")
        try:
            text = page(port, within=5)
        except Exception as e:  # noqa: BLE001 - any transport error: it does not answer
            short = seen.container_id[:12]
            raise Fault(f"container {short} runs but its port {port} does not answer: {e}") from None
        if text != f"Hello from {seen.container_id[:12]}":
            raise Fault(f"port {port} of container {seen.container_id[:12]} answers {text!r}")

    def owned(self) -> list[dict[str, str]]:
        """The labels of the containers the row owns: its tasks' and its workers'."""
        return [{LABEL_TASK: str(i)} for i in self.task_ids] + [{LABEL_WORKER: w} for w in self.workers]

    def unlabelled(self) -> set[str]:
        """The ids of the engine's containers without cube's label, which no check may touch."""
        with suppress(EngineError):
            return {c.container_id for c in self.engine.containers({}) if LABEL_TASK not in c.labels}
        return set()

    def clean(self) -> None:
        """Remove every container of the row's tasks and workers, and make no more tasks."""
        self.closed = True
        for labels in self.owned():
            try:
                for seen in self.engine.containers(labels):
                    self.engine.remove(seen.container_id)
            except Exception as e:  # noqa: BLE001 - clean what can be cleaned, say what could not
                log.warning("could not remove the containers labelled %s: %s", labels, e)


CALLING: dict[str, str] = {}  # a check's thread name -> the call it began last (what a hang was in)


def call(what: str, fn: Callable, *args, on_purpose: str = ""):
    """fn(*args); an exception from the worker becomes a Fault that names the call. on_purpose: what
    to add when it is one a programmer raises on purpose (Exception, RuntimeError, ValueError)."""
    CALLING[threading.current_thread().name] = what
    try:
        return fn(*args)
    except Fault:
        raise
    except Exception as e:  # noqa: BLE001 - the worker's exception is the finding
        advice = f"; {on_purpose}" if on_purpose and type(e) in (Exception, RuntimeError, ValueError) else ""
        raise Fault(f"{what} raised {type(e).__name__}: {e}{advice}") from None


def record(w, t: Task):
    """The worker's record of task t (None if it has none)."""
    db = call("reading db", lambda: w.db)
    return call(f"db.get({t.name or 'task'}.id)", db.get, t.id) if hasattr(db, "get") else None


def error_of(result) -> str | None:
    return getattr(result, "error", None) or None


def start(w, bench: Bench, t: Task):
    """Queue t and run it; return (the result, the engine's view of its one container)."""
    call("add_task(t)", w.add_task, t)
    result = call("run_task()", w.run_task)
    if error_of(result):
        raise Fault(f"run_task() returned the error {error_of(result)!r} for a SCHEDULED task")
    return result, bench.the_container(t, "run_task() returned")


def run_rows(factory: Callable, checks: list, prefix: str, budget: float, row_seconds: float) -> list[Row]:
    """Run each check (title, level, check(worker, bench)) on a fresh factory(name) worker, on a
    thread of its own, for at most row_seconds, and all of them for at most budget; clean up after
    each. A check that takes the factory instead (its first parameter is `factory`) is given
    (factory, bench, name), to make its workers itself."""
    engine = Docker()
    run_id = uuid.uuid4().hex[:6]
    deadline = time.monotonic() + budget
    rows = []
    for n, (title, level, check) in enumerate(checks):
        left = min(row_seconds, deadline - time.monotonic())
        if left < 0.5:
            rows.append(Row(title, level, False, f"not run: the {budget:.0f} s budget was spent"))
            continue
        rows.append(_one_row(factory, title, level, check, Bench(f"{prefix}-{run_id}-{n}", engine), left))
    return rows


def _one_row(factory, title: str, level: str, check: Callable, bench: Bench, seconds: float) -> Row:
    name = bench.prefix
    bench.workers.add(name)
    outcome: list[str] = []

    def attempt() -> None:
        try:
            if next(iter(inspect.signature(check).parameters)) == "factory":
                check(factory, bench, name)
            else:
                check(call("factory(name)", factory, name), bench)
            outcome.append("")
        except Fault as e:
            outcome.append(str(e))
        except Exception as e:  # noqa: BLE001 - e.g. the engine went away: the row says so
            outcome.append(f"the check itself failed: {type(e).__name__}: {e}")

    began = time.monotonic()
    within(seconds, attempt, bench, f"cube-check-{name}")
    took = time.monotonic() - began
    if not outcome:
        outcome.append(f"did not finish within {seconds:.1f} s: a call into the worker never returned")
    return Row(title, level, not outcome[0], outcome[0], round(took, 2))


class TimeUp(BaseException):
    """Raised in a check that ran out of time (not an Exception, which the code it runs may catch)."""


def within(seconds: float, fn: Callable[[], None], bench: Bench | None, name: str) -> bool:
    """Run fn on a thread of its own for at most `seconds`; True if it returned in time. Then clean
    the bench (when interrupted too: the notebook's stop button). A fn still running is stopped by a
    TimeUp raised in its thread, as soon as it runs Python again (a call that blocks ends first), and
    its bench is cleaned again when it ends: what it started in between."""

    def run() -> None:
        try:
            fn()
            CALLING.pop(name, None)  # it returned in time: no call to name (a time-up's is read, then popped)
        except TimeUp:
            pass
        finally:
            while bench and bench.closed:
                try:
                    bench.clean()
                    break
                except TimeUp:  # it came as fn returned: clean again
                    pass

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        thread.join(seconds)
    finally:
        if bench:
            bench.clean()
    if not thread.is_alive():
        return True
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(TimeUp))
    return False


def table(results: dict[str, list[Row]]) -> str:
    """The rows of several workers side by side, as a Markdown table (✓ passed, ✗ failed)."""
    names = list(results)
    first = results[names[0]]
    lines = ["| row | level | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for i, row in enumerate(first):
        marks = ["✓" if rows[i].passed else "✗" for rows in results.values()]
        lines.append(f"| {row.name} | {row.level} | " + " | ".join(marks) + " |")
    totals = [f"{sum(r.passed for r in rows)}/{len(rows)}" for rows in results.values()]
    lines.append("| **passed** | | " + " | ".join(totals) + " |")
    return "\n".join(lines)
