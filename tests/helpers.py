"""Small helpers the tests share."""

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import docker
import httpx

from cube import LABEL_TASK, LABEL_WORKER


def eventually(check, seconds: float = 10, every: float = 0.05):
    """Call check() until it returns something true, for up to `seconds`; return its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


class Starts:
    """The engine's container starts, by task id, from `docker events` followed as they happen: to a
    query for past events (since=...) the engine replays only its last 256, and beside other tests
    it has more than that. Made before the work it counts; close() returns the counts."""

    def __init__(self, client: docker.DockerClient, label: str) -> None:
        filters = {"type": "container", "event": "start", "label": label}
        self._events = client.events(since=time.time(), filters=filters, decode=True)
        self.counts: Counter = Counter()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        with suppress(Exception):  # ends when close() closes the stream
            for event in self._events:
                self.counts[event["Actor"]["Attributes"].get(LABEL_TASK, "")] += 1

    def close(self) -> Counter:
        time.sleep(0.3)  # an event the engine sent a moment ago is on its way
        self._events.close()
        self._thread.join(5)
        return self.counts


def mine(client: docker.DockerClient, **labels: str) -> list:
    """The containers, running or not, carrying every given cube label (task=..., worker=...); one
    removed while they are listed is not among them."""
    names = {"task": LABEL_TASK, "worker": LABEL_WORKER}
    wanted = [f"{names[k]}={v}" for k, v in labels.items()]
    return client.containers.list(all=True, filters={"label": wanted}, ignore_removed=True)


def page(port: int, within: float = 5.0) -> str:
    """The page at 127.0.0.1:port, asking again on any transport error (refused, or reset by
    Docker's proxy while the server starts) for up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def token_env(extra: dict | None = None) -> dict:
    """This process's environment for a worker process: no CUBE_TOKEN of the caller's, but `extra`."""
    return {**{k: v for k, v in os.environ.items() if k != "CUBE_TOKEN"}, **(extra or {})}


class CubeServer:
    """A `python -m cube worker` process on port 0: its URL, and what it has printed so far.

    stdout is read on a thread (uvicorn logs every request there, and a full pipe would block
    the server); stderr goes to a file in `directory`, beside the db.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        db: str | None = "worker.db",
        parallel: int = 4,
        token: str | None = "random",
        host: str | None = None,
    ) -> None:
        """token: "random" (the default, so that every API test runs with a token), one given, or
        None for none (loopback only). `headers` carries it for a client."""
        self.name = name
        self.token = secrets.token_hex(16) if token == "random" else token
        self.headers = {"Authorization": f"Bearer {self.token}"} if self.token not in (None, "auto") else {}
        self.log = directory / f"{name}-{time.monotonic_ns()}.log"  # one per process
        args = [sys.executable, "-m", "cube", "worker", "--port", "0", "--name", name]
        args += ["--parallel", str(parallel)] + (["--db", str(directory / db)] if db else [])
        args += ["--token", "auto"] if self.token == "auto" else []  # any other in CUBE_TOKEN, not in ps
        args += ["--host", host] if host else []
        env = token_env({"CUBE_TOKEN": self.token} if self.token not in (None, "auto") else None)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        self.lines: list[str] = []
        self._first = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._first.wait(30)
        first = self.lines[0] if self.lines else ""
        found = re.search(r"listening on (http://\S+)", first)
        self.url = found and found.group(1).replace("0.0.0.0", "127.0.0.1")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._first.set()
        self._first.set()  # the process ended, perhaps before printing anything

    def client(self, **options) -> httpx.Client:
        """An httpx client of this worker's API, with its token."""
        return httpx.Client(base_url=self.url, headers=self.headers, **options)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stderr(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, within: float = 5.0) -> int | None:
        """Send `sig` and wait up to `within` seconds; the exit status, or None if still running."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(within)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(2)  # everything it printed is in self.lines
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(2)
        self.process.stdout.close()


@contextmanager
def cube_server(directory: Path, name: str, **options) -> Iterator[CubeServer]:
    """Run a worker process (CubeServer) and kill it afterwards, however the test ended.

    The containers it made are left for the caller to remove (see remove_containers)."""
    server = CubeServer(directory, name, **options)
    try:
        assert server.url, f"the worker printed no URL: {server.lines}\n{server.stderr()[-3000:]}"
        yield server
    finally:
        server.kill()


def remove_containers(client: docker.DockerClient, worker: str) -> None:
    """Remove every container labelled for `worker`, running or not."""
    for c in mine(client, worker=worker):
        with suppress(docker.errors.NotFound, docker.errors.APIError):  # already being removed
            c.remove(force=True)


def run_cell(code: str, namespace: dict) -> dict:
    """Run code as a notebook cell: in `namespace` as __main__, with the source of the functions it
    defines readable by inspect.getsource, as IPython keeps the source of every cell."""
    import linecache
    import uuid

    filename = f"<cell-{uuid.uuid4().hex[:8]}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    namespace.setdefault("__name__", "__main__")
    exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - the test's own code
    return namespace


def left_by(client: docker.DockerClient, benches: list) -> list[str]:
    """The names of the containers still labelled for a task or a worker of `benches`."""
    return [
        c.name
        for b in benches
        for labels in b.owned()
        for c in client.containers.list(
            all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]}, ignore_removed=True
        )
    ]


def cells_using(cells: list, names: tuple[str, ...], count: int) -> list:
    """The code cells of a notebook (nbformat's, or its JSON) whose source uses one of `names`; fails
    unless there are `count` of them, so that a changed notebook is noticed, not half left out."""
    found = [c for c in cells if c["cell_type"] == "code" and any(n in "".join(c["source"]) for n in names)]
    assert len(found) == count, f"{len(found)} cells use {names}, not {count}: the notebook changed"
    return found


def cli_refusal(monkeypatch, capsys, *args: str, env: dict | None = None) -> tuple[int, str, str]:
    """`python -m cube worker --port 0 ARGS`, with no CUBE_TOKEN but what `env` gives, run by
    cube.__main__.main in this process: for refusals it makes before it starts anything (a process
    of its own costs a second of CPU; the tests that need one run it). Returns (status, stdout, stderr)."""
    from cube.__main__ import main

    monkeypatch.delenv("CUBE_TOKEN", raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    try:
        status = main(["worker", "--port", "0", "--name", f"test-cli-{uuid.uuid4().hex[:6]}", *args])
    except SystemExit as e:  # argparse's own refusals
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err
