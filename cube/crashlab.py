"""The crash lab (notebook 05): kill a real worker in the middle of a start, on purpose, and see what
the next worker on the same db makes of it.

crash(db_path, worker, task, at) starts a child process, a Worker named `worker` on db_path, which
starts `task` (Worker.start_task). When the start reaches the point `at`, the child holds still (a
handler on cube's own log keeps its one thread there) and this process kills it with SIGKILL, as a
power cut would: no clean-up of any kind. crash() returns once the child is dead. A Worker opened on
the same db_path then reconciles (Worker.reconcile): its db and history say what it made of it.

The points, in the order a start reaches them (AT):
- "before create": the intent is recorded (SCHEDULED, a start under way); no container yet;
- "after create": the container exists, and never started;
- "after start": the engine started it; the worker has not recorded that;
- "after the record": what the engine said is recorded (RUNNING, or how the container ended).
"""

import json
import logging
import signal
import subprocess
import sys
import threading

from cube.task import Task
from cube.worker import Worker

AT = ("before create", "after create", "after start", "after the record")


def crash(db_path: str, worker: str, task: Task, at: str, timeout: float = 30.0) -> str:
    """Kill a child worker on db_path with SIGKILL when its start of `task` reaches `at` (one of AT).

    Returns the child's last log line, e.g. "created container 3f2a1b2c3d4e for task 'job'".

    Raises:
        ValueError: `at` is not one of AT.
        RuntimeError: the start never reached `at` (it failed before, say), or took over `timeout` s.
    """
    if at not in AT:
        raise ValueError(f"at: {at!r} is not a point of a start; choose one of {', '.join(map(repr, AT))}")
    command = [sys.executable, "-m", "cube.crashlab", db_path, worker, at]
    pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child = subprocess.Popen(command, **pipes)
    timer = threading.Timer(timeout, child.kill)  # a start that hangs: its line never comes
    timer.start()
    try:
        child.stdin.write(json.dumps(task.to_dict()) + "\n")
        child.stdin.close()
        line = child.stdout.readline()  # the child writes it when it reaches `at`, then waits
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        timer.cancel()
    if not line.startswith("at: "):
        why = child.stderr.read().strip().splitlines()[-1:] or [line]
        raise RuntimeError(f"the start of task {task.name or task.id} never reached {at!r}: {why[0]}")
    return line.removeprefix("at: ").strip()


class _HoldAt(logging.Handler):
    """In the child: at the first log record marked `at`, say so on stdout and hold the thread there."""

    def __init__(self, at: str) -> None:
        super().__init__()
        self.at, self.armed = at, False

    def emit(self, record: logging.LogRecord) -> None:
        if self.armed and getattr(record, "at", None) == self.at:
            print(f"at: {record.getMessage()}", flush=True)
            threading.Event().wait()  # until the parent's SIGKILL


def _child(db_path: str, worker: str, at: str) -> None:
    task = Task.from_dict(json.loads(sys.stdin.readline()))
    hold = _HoldAt(at)
    logging.getLogger("cube").addHandler(hold)
    logging.getLogger("cube").setLevel(logging.INFO)
    with Worker(worker, db_path=db_path) as w:  # it reconciles first: not yet held
        hold.armed = True
        result = w.start_task(task)
    print(f"done: {result.error or result.result}", flush=True)


if __name__ == "__main__":
    _child(*sys.argv[1:4])
