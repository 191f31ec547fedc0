"""What memory does a worker hold, and does it keep growing as it works?

Two ways, each in a process of its own so that each has its own memory to measure, started one after
the other on the same engine:

- sdk:    the raw Docker SDK: containers.run() of the demo web server with the worker's settings,
          one reload for its port, then stop() and remove();
- worker: a started Worker(parallel=2) with a listener: add_task() of a SCHEDULED task, until the
          listener hears RUNNING, then the COMPLETED request, until it hears COMPLETED.

Each does WARMUP cycles, then CYCLES more while tracemalloc follows Python's allocations. Printed:
the process's resident memory (RSS) after the warm-up, its growth over the measured cycles, and the
Python objects still held at the end that were not at its start, per cycle. A worker keeps a record
of each task and its history (a few hundred bytes in SQLite, which tracemalloc does not see, by
design: it is the book's map); anything else it kept per cycle would be a leak.
Also measured, without an engine: the resident memory a worker's store takes per task, at 5,000;
and the Python objects a worker's HTTP API keeps per request, over 1,500 (answers and refusals).

Targets: a worker's Python objects grow by <= 1 KiB per cycle (a leaked Task or Transition is more);
its RSS <= 1.5x the SDK's after the warm-up; its API keeps <= 100 B per request. Exits with status
1 if missed.

    .venv/bin/python benchmarks/bench_memory.py [--cycles 60]    (or: make bench)
"""

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from dataclasses import replace

import docker
import psutil

from cube import LABEL_TASK, LABEL_WORKER, State, Task, Worker, check_engine, ensure_demo_image
from cube.state import Transition

PREFIX = "bench-memory"
WARMUP = 60  # to fill docker-py's bounded caches (a pool per URL, up to 25; urlsplit's 128): after 30 the
# worker still grew by ~300 B a cycle, after 60 by 20 (measured from cycle 60 to 120)
GROWTH_TARGET = 1024  # bytes of Python objects kept per cycle
RSS_TARGET = 1.5  # worker RSS / SDK RSS, after the warm-up
STORE_TASKS = 5_000
API_REQUESTS, API_TARGET = 1_500, 100  # requests measured (after 300), bytes kept per request


API_TOKEN = "bench-memory-token"
_AUTH = {"authorization": f"Bearer {API_TOKEN}", "content-type": "application/json"}


def rss() -> int:
    return psutil.Process().memory_info().rss


def sdk_cycles(client: docker.DockerClient, image: str) -> callable:
    labels = {LABEL_TASK: "", LABEL_WORKER: f"{PREFIX}-sdk"}

    def cycle() -> None:
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
        c.stop()
        c.remove()

    return cycle, lambda: None


def worker_cycles(client: docker.DockerClient, image: str) -> callable:
    w = Worker(f"{PREFIX}-{uuid.uuid4().hex[:6]}", client, parallel=2)
    heard, wanted = threading.Event(), {}

    def hear(change) -> None:
        if isinstance(change, Transition) and change.dst is wanted.get(change.task_id):
            heard.set()
        elif isinstance(change, Transition) and change.dst is State.FAILED:
            raise RuntimeError(f"a task failed: {change.reason}")

    def ask(task: Task, state: State, until: State) -> None:
        heard.clear()
        wanted[task.id] = until
        w.add_task(replace(task, state=state))
        if not heard.wait(60):
            raise RuntimeError(f"task {task.id} was not recorded {until} in 60 s")

    def cycle() -> None:
        task = Task(image=image)
        ask(task, State.SCHEDULED, State.RUNNING)
        w.db[task.id]  # a learner's lookup, too
        ask(task, State.COMPLETED, State.COMPLETED)
        wanted.pop(task.id)

    w.subscribe(hear)
    w.start()
    return cycle, w.close


def held() -> int:
    """Bytes of Python objects alive now, after a collection: the least of three looks 0.3 s apart,
    so that what a round of the observer has in hand at one of them does not count."""
    looks = []
    for _ in range(3):
        time.sleep(0.3)
        gc.collect()
        looks.append(tracemalloc.get_traced_memory()[0])
    return min(looks)


def child(method: str, cycles: int) -> dict:
    """Run in a process of its own: warm up, then measure `cycles` cycles of `method`."""
    tracemalloc.start()  # from the first: an object made in the warm-up and replaced later nets out
    client, image = docker.from_env(), ensure_demo_image()
    cycle, close = (sdk_cycles if method == "sdk" else worker_cycles)(client, image)
    try:
        for _ in range(WARMUP):
            cycle()
        held_before, rss_before, before = held(), rss(), tracemalloc.take_snapshot()
        began = time.perf_counter()
        for _ in range(cycles):
            cycle()
        seconds = time.perf_counter() - began
        held_after, after = held(), tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        close()
    diff = after.compare_to(before, "lineno")
    top = [f"{d.traceback[0].filename.split('site-packages/')[-1]}:{d.traceback[0].lineno} {d.size_diff:+d} B"
           for d in diff[:3] if d.size_diff > 0]  # fmt: skip
    grown = held_after - held_before
    return {
        "rss": rss_before,
        "rss_grown": rss() - rss_before,
        "grown": grown,
        "top": top,
        "seconds": seconds,
    }


def api_requests() -> float:
    """Python bytes a worker's API server keeps per request (no engine: answers and refusals only)."""
    import httpx  # here: the other ways' processes do not load the API's libraries

    from cube.api import Server

    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        client = docker.DockerClient(base_url=f"unix://{tmp}/no-engine.sock", version="1.41", timeout=1)
        with Worker(f"{PREFIX}-api", client) as w, Server(w, token=API_TOKEN) as server:
            with httpx.Client(base_url=server.url, timeout=10) as http:
                asks = [
                    lambda i: http.get("/tasks", headers=_AUTH),
                    lambda i: http.get(f"/tasks/{uuid.uuid4()}", headers=_AUTH),  # 404
                    lambda i: http.post("/tasks", content=b'{"image": 3}', headers=_AUTH),  # 422
                    lambda i: http.post("/tasks", content=b"not json", headers=_AUTH),  # 400
                    lambda i: http.get("/tasks"),  # 401: no token
                    lambda i: http.get(f"/nowhere/{i}", headers=_AUTH),  # 404
                ]
                for i in range(300 + API_REQUESTS):
                    if i == 300:
                        before = held()
                    asks[i % len(asks)](i)
                return (held() - before) / API_REQUESTS


def store_per_task() -> float:
    """Resident bytes per task held in an in-memory store, at STORE_TASKS tasks (no engine)."""
    code = (
        "import psutil; from cube import State, Task, Worker\n"
        "p = psutil.Process(); w = Worker('bench-memory-store'); base = p.memory_info().rss\n"
        f"with w.store.transaction():\n"
        f"    for i in range({STORE_TASKS}):\n"
        "        w.store.save(Task(image='img', state=State.RUNNING, container_id=f'c{i}'))\n"
        "print(p.memory_info().rss - base)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out) / STORE_TASKS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--child", choices=("sdk", "worker", "api"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(api_requests() if args.child == "api" else child(args.child, args.cycles)))
        return 0
    check_engine()
    ensure_demo_image()
    seen = {}
    for method in ("sdk", "worker"):
        command = [sys.executable, __file__, "--child", method, "--cycles", str(args.cycles)]
        seen[method] = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    print(f"{args.cycles} start+stop cycles after {WARMUP} to warm up, each method in its own process")
    print(f"{'':8}{'RSS':>10}{'RSS grown':>12}{'Python objects kept':>22}{'time':>9}")
    for method, s in seen.items():
        kept = f"{s['grown'] / args.cycles:+.0f} B/cycle"
        grown = f"{s['rss_grown'] / 2**20:+.1f} MiB"
        print(f"{method:8}{s['rss'] / 2**20:>6.1f} MiB{grown:>12}{kept:>22}{s['seconds']:>8.1f}s")
        for line in s["top"]:
            print(f"{'':10}most kept: {line}")
    per_task = store_per_task()
    print(f"store: {per_task:.0f} B of RSS per task, {STORE_TASKS} tasks in memory")
    command = [sys.executable, __file__, "--child", "api"]
    per_request = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    print(f"API: {per_request:+.1f} B of Python objects kept per request, over {API_REQUESTS} after 300")
    growth = seen["worker"]["grown"] / args.cycles
    ratio = seen["worker"]["rss"] / seen["sdk"]["rss"]
    ok = growth <= GROWTH_TARGET and ratio <= RSS_TARGET and per_request <= API_TARGET
    print(
        f"verdict: the worker keeps {growth:+.0f} B of Python objects per cycle (target <= {GROWTH_TARGET}),"
        f" its RSS is {ratio:.2f}x the SDK's (target <= {RSS_TARGET}x), its API keeps {per_request:+.1f} B"
        f" per request (target <= {API_TARGET}): {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
