"""What does reading one task of a worker's db cost, with 50 tasks and with 5,000?

`worker.db[task_id]` reads that one task from the store (one SQLite row), so a learner's loop
`while w.db[t.id].state is not State.RUNNING: ...` costs the same whatever the worker holds; so does
`GET /tasks/{id}` over HTTP (cube.api.Server on 127.0.0.1). For reference, it also times what every
lookup cost before the db was a view: reading every task. And what a started worker reads of its
store every second, to observe its RUNNING tasks and sample /stats (5 RUNNING among the rest done):
picked by SQLite's index of states, against reading every task, as both did before.
Tasks are written straight into the store (no engine needed but for the loop the API's server
starts). Targets: a lookup, in Python or over HTTP, at 5,000 tasks within 2x of one at 50 (it does
not grow with the db); a second's reads at 5,000 tasks under 5 ms. Exits with status 1 if missed.

    .venv/bin/python benchmarks/bench_db.py [--db]    (or: make bench)
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from cube import State, Task, Worker
from cube.api import Server
from cube.stats import Metrics

SIZES = (50, 5_000)
TARGET = 2.0  # lookup at 5,000 tasks / lookup at 50
SECOND_MS = 5.0  # what the worker reads every second, at 5,000 tasks
RUNS = 2_000


def per_call_us(fn, runs: int) -> float:
    """The median of 5 batches, in microseconds per call."""
    batches = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(runs):
            fn()
        batches.append((time.perf_counter() - began) / runs * 1e6)
    return statistics.median(batches)


def measure(size: int, db_path: str | None) -> tuple[float, ...]:
    """µs per w.db[t.id], per GET /tasks/{id}, per reading every task; ms of a second's reads, now and
    before; for a worker holding `size` tasks."""
    with Worker(f"bench-db-{size}", db_path=db_path) as w:
        tasks = [Task(image="img", state=State.COMPLETED) for _ in range(size - 5)]
        tasks += [Task(image="img", state=State.RUNNING, container_id=f"c{i}") for i in range(5)]
        with w.store.transaction():
            for t in tasks:
                w.store.save(t)
        middle, metrics = tasks[size // 2].id, Metrics(w)  # not started: it follows no container
        one = per_call_us(lambda: w.db[middle], RUNS)
        every = per_call_us(lambda: dict(w.db.items())[middle], max(3, RUNS // size))
        second = per_call_us(lambda: (w.store.tasks(State.RUNNING), metrics.sample()), 20) / 1e3
        before = per_call_us(
            lambda: [t for t in w.db.values() if t.state is State.RUNNING] + w.db.values(), 3
        )
        with Server(w) as s, httpx.Client(base_url=s.url) as api:
            w.stop()  # its loop would observe the engine: only the API is measured
            http = per_call_us(lambda: api.get(f"/tasks/{middle}").raise_for_status(), RUNS // 10)
    return one, http, every, second, before / 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="store_true", help="a SQLite file instead of memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: measure(n, str(Path(tmp) / f"w{n}.db") if args.db else None) for n in SIZES}
    print(f"store: {'SQLite file' if args.db else 'memory'}")
    print(f"{'tasks':>6}{'w.db[t.id]':>14}{'GET /tasks/{id}':>18}{'every task (before)':>22}"
          f"{'a second reads':>17}{'(before)':>12}")  # fmt: skip
    for n, (one, http, every, second, before) in results.items():
        print(f"{n:>6}{one:>11.1f} µs{http:>15.1f} µs{every:>19.1f} µs{second:>14.2f} ms{before:>9.2f} ms")
    small, large = results[SIZES[0]], results[SIZES[-1]]
    ratios = large[0] / small[0], large[1] / small[1]
    ok = max(ratios) <= TARGET and large[3] <= SECOND_MS
    print(f"verdict: at {SIZES[-1]} tasks a lookup is {ratios[0]:.2f}x one at {SIZES[0]}, over HTTP "
          f"{ratios[1]:.2f}x (target <= {TARGET}x); a second's reads {large[3]:.2f} ms (target <= "
          f"{SECOND_MS} ms): " + ("met" if ok else "MISSED"))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
