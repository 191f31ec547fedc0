"""What does the HTTP API add to a worker's latency?

Two ways, taking turns, in one run:

- api:    a worker process (`python -m cube worker --port 0 --token ...`) driven over HTTP with httpx,
          every request carrying its token:
          POST /tasks, then GET /tasks until it says RUNNING (GET /tasks/{id} would also ask the
          engine, every time); DELETE /tasks/{id}, then ask the engine until the container is gone;
- worker: a started Worker in this process: add_task(), then worker.db until RUNNING;
          add_task() as COMPLETED, then the engine until the container is gone.

Both wait by asking every POLL seconds, so both pay the same for waiting. Both workers run with
parallel=1 on the same engine. Prints medians and the ratio api/worker.

    .venv/bin/python benchmarks/bench_api.py [--runs 10]    (or: make bench)
"""

import argparse
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import docker
import httpx
from docker.errors import NotFound

from cube import DEMO_IMAGE, LABEL_WORKER, State, Task, Worker, check_engine, ensure_demo_image

POLL = 0.02
TIMEOUT = 30


def until(check) -> float:
    """Seconds until check() is true, asking every POLL seconds."""
    t0 = time.perf_counter()
    while not check():
        if time.perf_counter() - t0 > TIMEOUT:
            raise RuntimeError("timed out")
        time.sleep(POLL)
    return time.perf_counter() - t0


def gone(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except NotFound:
        return True
    return False


def via_api(http: httpx.Client, client: docker.DockerClient) -> tuple[float, float]:
    body = {"state": "SCHEDULED", "task": {"image": DEMO_IMAGE}}
    t0 = time.perf_counter()
    task_id = http.post("/tasks", json=body).raise_for_status().json()["id"]
    seen = {}

    def running() -> bool:
        seen.update(next(t for t in http.get("/tasks").json() if t["id"] == task_id))
        return seen["state"] == "RUNNING"

    until(running)
    start = time.perf_counter() - t0
    t0 = time.perf_counter()
    http.delete(f"/tasks/{task_id}").raise_for_status()
    until(lambda: gone(client, seen["container_id"]))
    return start, time.perf_counter() - t0


def via_worker(worker: Worker, client: docker.DockerClient) -> tuple[float, float]:
    t = Task(image=DEMO_IMAGE, state=State.SCHEDULED)
    t0 = time.perf_counter()
    worker.add_task(t)
    until(lambda: t.id in (db := worker.db) and db[t.id].state is State.RUNNING)
    start = time.perf_counter() - t0
    container_id = worker.db[t.id].container_id
    t0 = time.perf_counter()
    worker.add_task(replace(t, state=State.COMPLETED))
    until(lambda: gone(client, container_id))
    return start, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    client = docker.from_env()
    print(check_engine(client))
    ensure_demo_image(client)
    names = [f"bench-api-{uuid.uuid4().hex[:6]}", f"bench-worker-{uuid.uuid4().hex[:6]}"]
    token = secrets.token_hex(24)  # as a worker beyond loopback must have: every request carries it
    server = subprocess.Popen(
        [sys.executable, "-m", "cube", "worker", "--port", "0", "--name", names[0], "--token", token],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    worker = Worker(names[1], client)
    try:
        url = server.stdout.readline().split(" listening on ")[1].split()[0]
        worker.start()
        times: dict[str, list[tuple[float, float]]] = {"api": [], "worker": []}
        with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as http:
            via_api(http, client), via_worker(worker, client)  # warm-up
            for run in range(args.runs):
                order = ["api", "worker"] if run % 2 == 0 else ["worker", "api"]
                for way in order:
                    start, stop = via_api(http, client) if way == "api" else via_worker(worker, client)
                    times[way].append((start, stop))
                    print(f"  {way:6} {start * 1000:5.0f} ms to RUNNING, {stop * 1000:5.0f} ms to gone")
    finally:
        server.terminate()
        server.wait(10)
        worker.close()
        for name in names:
            for c in client.containers.list(all=True, filters={"label": f"{LABEL_WORKER}={name}"}):
                c.remove(force=True)

    med = {way: [statistics.median(x) * 1000 for x in zip(*v, strict=True)] for way, v in times.items()}
    print(f"{args.runs} runs each, taking turns; medians, waiting by asking every {POLL * 1000:.0f} ms")
    print(f"{'':8}{'request to RUNNING':>20}{'stop to container gone':>26}")
    for way, (start, stop) in med.items():
        print(f"{way:8}{start:17.0f} ms{stop:23.0f} ms")
    print(
        f"api/worker: to RUNNING {med['api'][0] / med['worker'][0]:.2f}x, "
        f"to gone {med['api'][1] / med['worker'][1]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
