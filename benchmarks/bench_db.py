"""What does reading one task of a worker's db cost, with 50 tasks and with 5,000?

`worker.db[task_id]` reads that one task from the store (one SQLite row), so a learner's loop
`while w.db[t.id].state is not State.RUNNING: ...` costs the same whatever the worker holds. For
reference, it also times what every lookup cost before the db was a view: reading every task.
Tasks are written straight into the store (no engine needed). Target: a lookup at 5,000 tasks
within 2x of one at 50 (it does not grow with the db). Exits with status 1 if missed.

    .venv/bin/python benchmarks/bench_db.py [--db]    (or: make bench)
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cube import State, Task, Worker

SIZES = (50, 5_000)
TARGET = 2.0  # lookup at 5,000 tasks / lookup at 50
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


def measure(size: int, db_path: str | None) -> tuple[float, float]:
    """(µs per w.db[t.id], µs per reading every task) for a worker holding `size` tasks."""
    with Worker(f"bench-db-{size}", db_path=db_path) as w:
        tasks = [Task(image="img", state=State.RUNNING, container_id=f"c{i}") for i in range(size)]
        with w.store.transaction():
            for t in tasks:
                w.store.save(t)
        middle = tasks[size // 2].id
        one = per_call_us(lambda: w.db[middle], RUNS)
        every = per_call_us(lambda: dict(w.db.items())[middle], max(3, RUNS // size))
    return one, every


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="store_true", help="a SQLite file instead of memory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: measure(n, str(Path(tmp) / f"w{n}.db") if args.db else None) for n in SIZES}
    print(f"store: {'SQLite file' if args.db else 'memory'}")
    print(f"{'tasks':>6}{'w.db[t.id]':>14}{'every task (before)':>24}")
    for n, (one, every) in results.items():
        print(f"{n:>6}{one:>11.1f} µs{every:>21.1f} µs")
    ratio = results[SIZES[-1]][0] / results[SIZES[0]][0]
    ok = ratio <= TARGET
    print(
        f"verdict: a lookup at {SIZES[-1]} tasks is {ratio:.2f}x one at {SIZES[0]}, target <= {TARGET}x: ",
        end="",
    )
    print("met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
