"""How fast does a started worker get 50 tasks running, and stop them, next to docker-py itself?

Three ways, taking turns so that all see the same engine and machine load, in one run:

- sdk8:   docker-py from 8 threads: containers.run() with the worker's settings (init, all ports
          published, labels) and one reload to read the published port, per task; then stop() and
          remove() from 8 threads;
- loop8:  Worker(parallel=8).start(): add_task() of 50 SCHEDULED tasks, timed until the worker
          has recorded all 50 RUNNING; then 50 COMPLETED requests until all are recorded COMPLETED;
- loop1:  the same with parallel=1, the book's one-at-a-time worker.

The worker is told nothing but add_task(); the clock stops when its listener (subscribe) has heard
the last transition, so no polling is timed. The worker does more than the SDK for each task: it
records its intent and the outcome in its store, checks that the container's command really runs,
and reads its ports. Also timed: stop of one task through a started worker, request to COMPLETED.

Targets: loop8 to all RUNNING within 1.15x sdk8; stop of one task <= 1 s. Exits 1 if missed.

    .venv/bin/python benchmarks/bench_loop.py [--tasks 50] [--rounds 3] [--db]    (or: make bench)
"""

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import docker
from docker.errors import APIError

from cube import LABEL_TASK, LABEL_WORKER, State, Task, Worker, check_engine, ensure_demo_image
from cube.state import Transition

PREFIX = "bench-loop"
MINE = {"label": f"{LABEL_WORKER}"}
PARALLEL_TARGET = 1.15  # loop8 / sdk8, to all RUNNING
STOP_TARGET_S = 1.0


def sdk8(client: docker.DockerClient, image: str, n: int) -> tuple[float, float]:
    labels = {LABEL_TASK: "", LABEL_WORKER: f"{PREFIX}-sdk"}

    def start(_):
        c = client.containers.run(
            image,
            detach=True,
            init=True,
            publish_all_ports=True,
            labels={**labels, LABEL_TASK: str(uuid.uuid4())},
        )
        c.reload()
        if not c.ports.get("80/tcp"):
            raise RuntimeError(f"no port published: {c.ports}")
        return c

    def stop(c):
        c.stop()
        c.remove()

    with ThreadPoolExecutor(8) as pool:
        t0 = time.perf_counter()
        containers = list(pool.map(start, range(n)))
        t1 = time.perf_counter()
        list(pool.map(stop, containers))
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


class Counter:
    """Counts the tasks a worker has recorded in a state; wakes a waiter when all n are there."""

    def __init__(self, worker: Worker, n: int) -> None:
        self.n, self.seen, self.done = n, {}, threading.Event()
        self.lock = threading.Lock()
        self.wanted = State.RUNNING
        worker.subscribe(self.hear)

    def expect(self, state: State) -> None:
        with self.lock:
            self.wanted, self.seen = state, {}
            self.done.clear()

    def hear(self, change) -> None:
        if isinstance(change, Transition):
            with self.lock:
                if change.dst is self.wanted:
                    self.seen[change.task_id] = True
                elif change.dst is State.FAILED:
                    raise RuntimeError(f"a task failed: {change.reason}")
                if len(self.seen) == self.n:
                    self.done.set()

    def wait(self, timeout: float = 300) -> None:
        if not self.done.wait(timeout):
            raise RuntimeError(f"only {len(self.seen)} of {self.n} tasks became {self.wanted}")


def loop(
    client: docker.DockerClient, image: str, n: int, parallel: int, db: str | None
) -> tuple[float, float]:
    w = Worker(f"{PREFIX}-{parallel}-{uuid.uuid4().hex[:6]}", client, db_path=db, parallel=parallel)
    try:
        heard = Counter(w, n)
        w.start()
        tasks = [Task(image=image, state=State.SCHEDULED) for _ in range(n)]
        t0 = time.perf_counter()
        for t in tasks:
            w.add_task(t)
        heard.wait()
        t1 = time.perf_counter()
        heard.expect(State.COMPLETED)
        t1b = time.perf_counter()
        for t in tasks:
            w.add_task(replace(t, state=State.COMPLETED))
        heard.wait()
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1b
    finally:
        w.close()


def one_stop(client: docker.DockerClient, image: str) -> float:
    """Seconds from a COMPLETED request to the task recorded COMPLETED, with the worker started."""
    w = Worker(f"{PREFIX}-one-{uuid.uuid4().hex[:6]}", client)
    try:
        heard = Counter(w, 1)
        w.start()
        t = Task(image=image, state=State.SCHEDULED)
        w.add_task(t)
        heard.wait()
        heard.expect(State.COMPLETED)
        t0 = time.perf_counter()
        w.add_task(replace(t, state=State.COMPLETED))
        heard.wait()
        return time.perf_counter() - t0
    finally:
        w.close()


def remove_leftovers(client: docker.DockerClient) -> list[str]:
    left = [
        c for c in client.containers.list(all=True, filters=MINE) if c.labels[LABEL_WORKER].startswith(PREFIX)
    ]
    for c in left:
        with suppress(APIError):
            c.remove(force=True)
    return [c.name for c in left]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all three, taking turns")
    parser.add_argument("--db", action="store_true", help="workers keep their store in a SQLite file")
    args = parser.parse_args()

    client = docker.from_env(max_pool_size=16)
    print(check_engine(client))
    image = ensure_demo_image(client)
    n = args.tasks
    times: dict[str, list[tuple[float, float]]] = {"sdk8": [], "loop8": [], "loop1": []}
    with tempfile.TemporaryDirectory() as tmp:

        def db() -> str | None:
            return str(Path(tmp) / f"{uuid.uuid4().hex}.db") if args.db else None

        ways = {
            "sdk8": lambda: sdk8(client, image, n),
            "loop8": lambda: loop(client, image, n, 8, db()),
            "loop1": lambda: loop(client, image, n, 1, db()),
        }
        print(
            f"{n} tasks, {args.rounds} rounds taking turns, store: {'SQLite file' if args.db else 'memory'}"
        )
        try:
            sdk8(client, image, 8)  # warm-up
            names = list(ways)
            for r in range(args.rounds):
                for name in names[r % 3 :] + names[: r % 3]:
                    start, stop = ways[name]()
                    times[name].append((start, stop))
                    print(f"  round {r + 1} {name}: {start:.2f} s to start, {stop:.2f} s to stop")
            stops = [one_stop(client, image) for _ in range(5)]
        finally:
            left = remove_leftovers(client)

    med = {
        k: (statistics.median(s for s, _ in v), statistics.median(t for _, t in v)) for k, v in times.items()
    }
    print(f"\n{'':8}{'all RUNNING':>14}{'per task':>10}{'all stopped':>14}")
    for name, (start, stop) in med.items():
        print(f"{name:8}{start:12.2f} s{start / n * 1000:7.0f} ms{stop:12.2f} s")
    ratio = med["loop8"][0] / med["sdk8"][0]
    stop_one = statistics.median(stops)
    ok = ratio <= PARALLEL_TARGET and stop_one <= STOP_TARGET_S
    print(f"loop8/sdk8 to all RUNNING: {ratio:.2f}x (target <= {PARALLEL_TARGET}x)")
    print(f"loop8/loop1 to all RUNNING: {med['loop8'][0] / med['loop1'][0]:.2f}x")
    print(f"loop8/sdk8 to all stopped: {med['loop8'][1] / med['sdk8'][1]:.2f}x")
    print(f"stop of one task through a started worker: {stop_one * 1000:.0f} ms (target <= 1 s)")
    print("verdict:", "met" if ok else "MISSED")
    assert not left, f"containers were left behind: {left}"
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
