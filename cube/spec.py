"""One graded suite for every worker with the chapter's interface, run on the real engine.

    rows = cube.spec.run(cube.Worker)          # or cube.book.Worker, or your own class
    print(cube.spec.table({"cube": rows}))

`run(factory)` calls `factory(name)` for a fresh worker before each row; the worker needs the
chapter's interface: `add_task(task)`, `run_task()`, `db` (task id -> the worker's record) and
`task_count`. Each row says what it checks, and where that comes from; `level` is "chapter" for
what chapter 4 asks, and "agent" for what a real node agent (the kubelet, Nomad's client) must do
as well. A row that fails says what the engine showed, in one sentence: the engine, not the
worker's word, is what each row judges.

Whatever the worker does (raise, hang, leave containers behind), `run` returns rows: every call into
the worker runs on a thread of its own with a time limit, and after each row every container made
for the row's tasks (by their `cube.task` label) or by the row's worker (`cube.worker`) is removed.
The idea is MIT 6.824's: the suite, not a person, says what is wrong, and it runs the code under the
faults it must survive.
"""

import inspect
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace

from cube.docker import GONE
from cube.judge import MISSING_IMAGE, Bench, Fault, Row, call, error_of, record, run_rows, start, table
from cube.state import State

__all__ = ["AGENT", "CHAPTER", "ROWS", "Row", "run", "table"]

BUDGET_SECONDS = 60.0  # for one worker, every row included
ROW_SECONDS = 15.0  # for one row


# --- the chapter's rows -------------------------------------------------------------------------


def start_serve_record(w, bench: Bench) -> None:
    t = bench.task(exposed_ports={"80/tcp"})
    _, seen = start(w, bench, t)
    if seen.status != "running":
        raise Fault(f"the task's container {seen.container_id[:12]} is {seen.status}, not running")
    bench.serves(seen)
    rec = record(w, t)
    short = seen.container_id[:12]
    if rec is None:
        raise Fault(f"container {short} serves its page, but the db has no record of the task")
    if rec.state is not State.RUNNING:
        raise Fault(f"container {short} serves its page, but the db says {rec.state}")
    if rec.container_id != seen.container_id:
        raise Fault(f"the task runs in container {short}, but the db records {rec.container_id[:12]!r}")
    if rec.start_time is None:
        raise Fault("the db records RUNNING with no start_time")


def stop_and_remove(w, bench: Bench) -> None:
    t = bench.task()
    _, seen = start(w, bench, t)
    t.container_id = seen.container_id  # as listing 4.13 copies it, from the result
    t.state = State.COMPLETED
    call("add_task(t) as COMPLETED", w.add_task, t)
    result = call("run_task()", w.run_task)
    after = bench.engine.inspect(seen.container_id)
    if after.status != GONE:
        raise Fault(
            f"the stop returned {error_of(result) or 'no error'}, but container {seen.container_id[:12]} "
            f"still exists ({after.status}): a stop must stop and remove it"
        )
    rec = record(w, t)
    if rec is None or rec.state is not State.COMPLETED:
        raise Fault(f"the container is gone, but the db says {rec and rec.state}, not COMPLETED")
    if rec.finish_time is None:
        raise Fault("the db records COMPLETED with no finish_time")


def first_in_first_out(w, bench: Bench) -> None:
    first, second = bench.task("first"), bench.task("second")
    call("add_task(first)", w.add_task, first)
    call("add_task(second)", w.add_task, second)
    call("run_task()", w.run_task)
    if bench.containers(second):
        raise Fault("one run_task() after queueing two tasks started the one queued second: LIFO")
    if not bench.containers(first):
        raise Fault("one run_task() after queueing two tasks started neither of them")


def invalid_transitions(w, bench: Bench) -> None:
    draft = bench.task("draft", state=State.PENDING)
    call("add_task(draft)", w.add_task, draft)
    result = call("run_task()", w.run_task)
    if not error_of(result) or bench.containers(draft):
        raise Fault("a first-time PENDING task (PENDING -> PENDING) was not refused with an error")
    if record(w, draft) is not None:
        raise Fault("the refused PENDING task has a record in the db: a refused request must change nothing")
    t = bench.task()
    _, seen = start(w, bench, t)
    again = replace(t, state=State.SCHEDULED)
    call("add_task(t) as SCHEDULED again", w.add_task, again)
    result = call("run_task()", w.run_task)
    found = bench.containers(t)
    if not error_of(result) or len(found) != 1:
        raise Fault(
            f"RUNNING -> SCHEDULED was not refused with an error: the engine has {len(found)} container(s)"
        )
    rec = record(w, t)
    if rec is None or rec.state is not State.RUNNING or rec.container_id != seen.container_id:
        raise Fault(f"after refusing RUNNING -> SCHEDULED the db says {rec and rec.state}, not RUNNING")


def missing_image(w, bench: Bench) -> None:
    t = bench.task("missing", image=MISSING_IMAGE)
    call("add_task(t)", w.add_task, t)
    result = call("run_task()", w.run_task)
    rec = record(w, t)
    if not error_of(result):
        raise Fault(f"run_task() gave no error for the image {MISSING_IMAGE!r}, which exists nowhere")
    if rec is None or rec.state is not State.FAILED:
        raise Fault(
            f"the start failed ({error_of(result)!r}), but the db says {rec and rec.state}, not FAILED"
        )


def empty_queue(w, bench: Bench) -> None:
    result = call("run_task() on an empty queue", w.run_task)
    if error_of(result):
        raise Fault(f"run_task() on an empty queue returned the error {error_of(result)!r}")


def counts_tasks(w, bench: Bench) -> None:
    one, two = bench.task("one"), bench.task("two")
    call("add_task(one)", w.add_task, one)
    call("add_task(two)", w.add_task, two)
    count = call("task_count", lambda: w.task_count)
    if count != 2:
        raise Fault(f"task_count is {count!r} after two tasks were given")
    call("add_task(one) as COMPLETED", w.add_task, replace(one, state=State.COMPLETED))
    count = call("task_count", lambda: w.task_count)
    if count != 2:
        raise Fault(f"task_count is {count!r} after two tasks were given, one of them twice")


def failed_stop(w, bench: Bench) -> None:
    t = bench.task()
    _, seen = start(w, bench, t)
    stop = replace(t, state=State.COMPLETED, container_id="")  # the caller forgot to copy the id
    call("add_task(t) as COMPLETED", w.add_task, stop)
    result = call("run_task()", w.run_task)
    now = bench.engine.inspect(seen.container_id)
    rec = record(w, t)
    state = rec and rec.state
    if now.status == "running" and state is not State.RUNNING:
        why = error_of(result) or "no error"
        raise Fault(
            f"a stop without the container id returned {why!r} and container {seen.container_id[:12]} "
            f"still runs, but the db says {state}"
        )
    if now.status == GONE and state is not State.COMPLETED:
        raise Fault(f"the container was stopped and removed, but the db says {state}")


# --- what a node agent must also do -------------------------------------------------------------


def _needs(w, method: str, why: str) -> None:
    if not callable(getattr(w, method, None)):
        raise Fault(f"the worker has no {method}(): {why}")


def _ends_by_itself(w, bench: Bench, cmd: list[str], state: State, code: int) -> None:
    _needs(w, "update_tasks", "it never looks at a container after starting it, so its db cannot see it end")
    t = bench.task(cmd=cmd)
    call("add_task(t)", w.add_task, t)
    call("run_task()", w.run_task)
    for seen in bench.containers(t):  # none if the worker saw it end already, and removed it
        bench.wait_until_ended(seen.container_id)
    call("update_tasks()", w.update_tasks)
    rec = record(w, t)
    if rec is None or rec.state is not state or rec.exit_code != code:
        got = rec and (rec.state, rec.exit_code)
        raise Fault(f"the container ended with exit code {code}, but the db says {got}")


def exits_0(w, bench: Bench) -> None:
    _ends_by_itself(w, bench, ["sh", "-c", "sleep 1"], State.COMPLETED, 0)


def exits_3(w, bench: Bench) -> None:
    _ends_by_itself(w, bench, ["sh", "-c", "sleep 1; exit 3"], State.FAILED, 3)


def _behind_its_back(w, bench: Bench, act: Callable[[str], None], code: int | None) -> None:
    _needs(w, "update_tasks", "it never looks at a container after starting it")
    t = bench.task()
    _, seen = start(w, bench, t)
    act(seen.container_id)
    bench.wait_until_ended(seen.container_id)
    call("update_tasks()", w.update_tasks)
    rec = record(w, t)
    if rec is None or rec.state is not State.FAILED or rec.exit_code != code:
        raise Fault(f"the db says {rec and (rec.state, rec.exit_code)}, not (FAILED, {code})")


def killed(w, bench: Bench) -> None:
    _behind_its_back(w, bench, bench.engine.kill, 137)


def removed(w, bench: Bench) -> None:
    _behind_its_back(w, bench, bench.engine.remove, None)


def two_threads(w, bench: Bench) -> None:
    t = bench.task("")  # no name: a second container for it would not be stopped by a name clash
    call("add_task(t)", w.add_task, t)
    call("add_task(t) again", w.add_task, replace(t))
    both = threading.Barrier(2)
    errors: list[str] = []

    def take():
        both.wait()
        try:
            w.run_task()
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=take, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ROW_SECONDS / 2)
    found = bench.containers(t)
    if len(found) != 1:
        ids = ", ".join(c.container_id[:12] for c in found)
        raise Fault(f"two threads each took a request for the same task: {len(found)} containers ({ids})")
    if errors:
        raise Fault(f"run_task() raised {errors[0]} when two threads called it at once")


def reopened(factory: Callable, bench: Bench, name: str) -> None:
    try:
        inspect.signature(factory).bind(name, db_path="")
    except (TypeError, ValueError):
        raise Fault("the worker takes no db_path: all it knows lives in memory, gone with it") from None
    with tempfile.TemporaryDirectory(prefix="cube-spec-") as folder:
        path = os.path.join(folder, "worker.db")
        w = call("factory(name, db_path=...)", lambda: factory(name, db_path=path))
        t, later = bench.task(), bench.task("later")
        _, seen = start(w, bench, t)
        call("add_task(later)", w.add_task, later)
        if callable(getattr(w, "close", None)):
            call("close()", w.close)
        again = call("factory(name, db_path=...) again", lambda: factory(name, db_path=path))
        try:
            rec = record(again, t)
            if rec is None or rec.state is not State.RUNNING or rec.container_id != seen.container_id:
                raise Fault(f"reopened, the db says {rec and rec.state} for a task that still runs")
            queued = [q.id for q in call("queue", lambda: list(again.queue))]
            if queued != [later.id]:
                raise Fault(f"reopened, the queue holds {len(queued)} request(s), not the one left in it")
        finally:
            if callable(getattr(again, "close", None)):
                call("close()", again.close)


CHAPTER = "chapter"
AGENT = "agent"
ROWS: list[tuple[str, str, Callable]] = [
    ("start, serve and record (listing 4.7)", CHAPTER, start_serve_record),
    ("stop and remove (listing 4.5)", CHAPTER, stop_and_remove),
    ("first in, first out (section 4.3)", CHAPTER, first_in_first_out),
    ("invalid transitions refused, nothing changed (listings 4.10-4.12)", CHAPTER, invalid_transitions),
    ("a missing image gives FAILED (listing 4.7)", CHAPTER, missing_image),
    ("an empty queue is no error (listing 4.12)", CHAPTER, empty_queue),
    ("task_count counts the tasks given (section 4.5)", CHAPTER, counts_tasks),
    ("a stop that fails leaves the task as it was (listing 4.5)", CHAPTER, failed_stop),
    ("a container that exits 0 is seen COMPLETED (chapter 9)", AGENT, exits_0),
    ("a container that exits 3 is seen FAILED with its code (chapter 9)", AGENT, exits_3),
    ("a container killed behind its back is seen FAILED, 137 (chapter 9)", AGENT, killed),
    ("a container removed behind its back is seen FAILED (chapter 9)", AGENT, removed),
    ("two threads never make two containers (chapter 8)", AGENT, two_threads),
    ("a worker reopened on its db_path loses nothing (chapter 11)", AGENT, reopened),
]


def run(
    factory: Callable,
    levels: tuple[str, ...] = (CHAPTER, AGENT),
    budget: float = BUDGET_SECONDS,
    row_seconds: float = ROW_SECONDS,
) -> list[Row]:
    """Check a fresh factory(name) worker against every row of `levels`; return the rows.

    Never raises for what the worker does. Each row gets at most `row_seconds`, and all of them
    `budget`: rows that would begin after that fail, saying so.
    """
    return run_rows(factory, [row for row in ROWS if row[1] in levels], "spec", budget, row_seconds)
