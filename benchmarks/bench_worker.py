"""How much does cube's Worker cost over talking to Docker directly?

Starts and stops the demo web server three ways, taking turns so that all three see the same
engine and the same machine load:

- worker: add_task() of a SCHEDULED task + run_task(), then the same task as COMPLETED;
- sdk:    the raw Docker SDK with the container config the worker uses (see Docker._create_args),
          reloading once to read the published port, then stop() and remove();
- cli:    `docker run -d --init -P`, then `docker stop` and `docker rm`.

The worker and the SDK share one DockerClient, so neither pays for a new connection. Targets:
worker start <= 1.10x the raw SDK, worker stop+remove <= 1 s. For reference it also times one stop
without an init process, the book's situation: PID 1 ignores SIGTERM and Docker waits 10 s.

Between start and stop (untimed) it checks that each method made the same container: an init
process and all ports published. The engine may be shared (a test suite removes every cube
container when it ends), so a round that fails is run again, up to MAX_RETRIES times.
Exits with status 1 if a target is missed.

    .venv/bin/python benchmarks/bench_worker.py [--runs N] [--no-book-stop]    (or: make bench)
"""

import argparse
import statistics
import subprocess
import time
import uuid
from contextlib import suppress

import docker
from docker.errors import APIError, DockerException

from cube import LABEL_TASK, LABEL_WORKER, State, Task, Worker, check_engine, ensure_demo_image

WORKER_NAME = "bench"
MINE = {"label": f"{LABEL_WORKER}={WORKER_NAME}"}
START_TARGET = 1.10  # worker start / raw SDK start
STOP_TARGET_MS = 1000.0
MAX_RETRIES = 3


def labels(method: str) -> dict[str, str]:
    return {LABEL_TASK: f"{method}-{uuid.uuid4().hex[:8]}", LABEL_WORKER: WORKER_NAME}


class ViaWorker:
    def __init__(self, worker: Worker, image: str) -> None:
        self.worker, self.image = worker, image

    def start(self) -> Task:
        task = Task(image=self.image, state=State.SCHEDULED)
        self.worker.add_task(task)
        result = self.worker.run_task()
        if result.error or not result.host_ports:
            raise RuntimeError(result.error or f"no port published: {result}")
        return task

    def stop(self, task: Task) -> None:
        task.state = State.COMPLETED
        self.worker.add_task(task)
        result = self.worker.run_task()
        if result.result != "success":
            raise RuntimeError(result.error or f"container was already gone: {result}")


class ViaSDK:
    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.client, self.image = client, image

    def start(self, init: bool = True):
        container = self.client.containers.run(
            self.image, detach=True, init=init, publish_all_ports=True, labels=labels("sdk")
        )
        container.reload()  # the host port is chosen at start, as in Docker.run
        if not container.ports.get("80/tcp"):
            raise RuntimeError(f"no port published: {container.ports}")
        return container

    def stop(self, container) -> None:
        container.stop()
        container.remove()


class ViaCLI:
    def __init__(self, image: str) -> None:
        self.image = image

    def start(self) -> str:
        flags = [arg for k, v in labels("cli").items() for arg in ("--label", f"{k}={v}")]
        return docker_cli("run", "-d", "--init", "-P", *flags, self.image)

    def stop(self, container_id: str) -> None:
        docker_cli("stop", container_id)
        docker_cli("rm", container_id)


def docker_cli(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"docker {args[0]}: {done.stderr.strip()}")
    return done.stdout.strip()


def timed(fn, *args):
    """Return (fn's result, milliseconds it took)."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000


class UnfairComparison(Exception):
    """The three methods did not make the same container."""


def check_config(client: docker.DockerClient, method: str) -> None:
    """Untimed: the running container has the init process and ports all three should give it."""
    for container in client.containers.list(filters=MINE):
        host = container.attrs["HostConfig"]
        if not (host.get("Init") and host.get("PublishAllPorts")):
            raise UnfairComparison(
                f"{method} made container {container.name} with Init={host.get('Init')}, "
                f"PublishAllPorts={host.get('PublishAllPorts')}; expected both true"
            )


def one_round(client: docker.DockerClient, methods: dict, first: int) -> dict[str, tuple[float, float]]:
    """Start then stop with each method in turn, beginning with methods[first]."""
    names = list(methods)
    times = {}
    for name in names[first:] + names[:first]:
        handle, start_ms = timed(methods[name].start)
        check_config(client, name)
        _, stop_ms = timed(methods[name].stop, handle)
        times[name] = (start_ms, stop_ms)
    return times


def measure(client: docker.DockerClient, methods: dict, runs: int) -> dict[str, dict[str, list[float]]]:
    """One warm-up round, then `runs` rounds; who goes first rotates from round to round."""
    times = {name: {"start": [], "stop": []} for name in methods}
    retries = 0
    run = -1  # the warm-up
    while run < runs:
        try:
            result = one_round(client, methods, run % len(methods))
        except (RuntimeError, DockerException) as e:
            retries += 1
            if retries > MAX_RETRIES:
                raise
            print(f"  round {run + 1} was disturbed ({str(e)[:100]}); running it again")
            continue
        if run >= 0:
            for name, (start_ms, stop_ms) in result.items():
                times[name]["start"].append(start_ms)
                times[name]["stop"].append(stop_ms)
        run += 1
    return times


def book_stop_ms(sdk: ViaSDK) -> float:
    """stop+remove of a container whose PID 1 is the web server itself (no init)."""
    container = sdk.start(init=False)
    return timed(sdk.stop, container)[1]


def report(times: dict[str, dict[str, list[float]]], book_ms: float | None) -> bool:
    """Print medians, ratios and the verdict; return True if both targets are met."""
    med = {n: {op: statistics.median(v) for op, v in ops.items()} for n, ops in times.items()}
    print(f"{'':8}{'start ms (min-max)':>26}{'stop+remove ms (min-max)':>32}")
    for name, ops in times.items():
        cells = [f"{med[name][op]:8.1f} ({min(v):6.1f}-{max(v):6.1f})" for op, v in ops.items()]
        print(f"{name:8}{cells[0]:>26}{cells[1]:>32}")

    def ratio(a: str, op: str) -> float:
        return med[a][op] / med["sdk"][op]

    for name in ("worker", "cli"):
        start, stop = ratio(name, "start"), ratio(name, "stop")
        print(f"{name + '/sdk:':12}start {start:.2f}x, stop+remove {stop:.2f}x")
    start, stop = ratio("worker", "start"), med["worker"]["stop"]
    start_ok, stop_ok = start <= START_TARGET, stop <= STOP_TARGET_MS
    print(f"verdict: worker start {start:.2f}x sdk, target <= {START_TARGET}x: {verdict(start_ok)}")
    print(f"         worker stop+remove {stop:.0f} ms, target <= 1 s: {verdict(stop_ok)}")
    if book_ms is not None:
        print(
            f"for reference, stop+remove with no init process (the book's case): "
            f"{book_ms / 1000:.1f} s, against {med['sdk']['stop']:.0f} ms with init"
        )
    return start_ok and stop_ok


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def remove_mine(client: docker.DockerClient) -> list[str]:
    """Remove every container this benchmark made; return the names of any that remain."""
    for container in client.containers.list(all=True, filters=MINE):
        with suppress(APIError):  # someone else may be removing it already (409, or 404)
            container.remove(force=True)
    for _ in range(10):  # give such a removal a moment to finish
        left = client.containers.list(all=True, filters=MINE)
        if not left:
            break
        time.sleep(0.5)
    return [c.name for c in left]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 7 runs gave 1.05x to 1.25x on one and the same code, from run to run; 21 settle the median
    parser.add_argument("--runs", type=int, default=21, help="measured runs per method (default 21)")
    parser.add_argument(
        "--no-book-stop", action="store_true", help="skip the 10 s stop of a container with no init"
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    client = docker.from_env()
    print(check_engine(client))
    image = ensure_demo_image(client)
    sdk = ViaSDK(client, image)
    methods = {
        "worker": ViaWorker(Worker(WORKER_NAME, client), image),
        "sdk": sdk,
        "cli": ViaCLI(image),
    }
    print(f"{args.runs} runs per method, interleaved, after one warm-up round; image {image}")
    try:
        times = measure(client, methods, args.runs)
        book_ms = None if args.no_book_stop else book_stop_ms(sdk)
    finally:
        left = remove_mine(client)
    ok = report(times, book_ms)
    assert not left, f"containers labelled {MINE['label']} were left behind: {left}"
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
