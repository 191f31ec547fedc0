"""Metrics, the worker's fifth part (chapter 6): how busy its machine is, and what each running
task's container uses.

The book reads Linux's /proc, computes the memory percentage in integer division (always 0) and
CPU from counters since boot, never sets its task count, and refreshes every 15 s, so two samples
taken 3 s apart are the same. cube reads the machine with psutil (Linux, macOS, Windows) and
computes every CPU percentage over the interval between two samples, about a second apart:

    CPU % = 100 * (busy time between the two samples) / (all CPU time between them)

The machine is sampled every SAMPLE_SECONDS by one background thread. Each running container is
followed with the engine's stats stream, which sends a sample every second, with the one before it,
as `docker stats` does; a container's CPU % is its CPU time over the machine's in that second,
times the number of CPUs (so one busy core of four reads 100 %, not 25 %). The stream ends by
itself when the container is removed.
"""

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import psutil

from cube.docker import Docker, EngineError
from cube.state import State
from cube.store import StoreClosed

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 1.0


@dataclass
class HostStats:
    cpu_percent: float | None  # None until two samples exist
    memory_total: int
    memory_used: int  # total - available: what programs hold, not counting reclaimable cache
    memory_percent: float
    disk_total: int
    disk_used: int
    disk_percent: float
    load_avg: tuple[float, float, float]  # processes running or waiting, over 1, 5 and 15 minutes


@dataclass
class TaskStats:
    id: str
    name: str
    cpu_percent: float | None  # None until two samples of this container exist
    memory_bytes: int | None


class Metrics:
    """Samples the machine every SAMPLE_SECONDS and follows the worker's running containers.

    Args:
        worker: whose tasks to count and whose containers to measure.
        disk: the path whose file system's usage is reported (default: the root).
    """

    def __init__(self, worker, disk: str | None = None) -> None:
        self.worker = worker
        self.disk = disk or os.path.abspath(os.sep)
        self._cpu = psutil.cpu_times()  # the baseline for the first CPU percentage
        self._cpu_percent: float | None = None
        self._followed: dict[str, tuple[float | None, int | None]] = {}  # container -> (cpu %, memory)
        self._readers: dict[str, threading.Thread] = {}  # container -> the thread reading its stream
        self._latest: dict | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[dict], None]] = []
        self._engine = Docker(client=worker.client)

    def start(self) -> None:
        """Sample in the background until stop()."""
        if self._thread:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._keep_sampling, name="cube-metrics", daemon=True)
        self._thread.start()

    @property
    def sampling(self) -> bool:
        """True while it samples in the background (it stops by itself once the worker is closed)."""
        return bool(self._thread and self._thread.is_alive())

    def stop(self) -> None:
        """Stop sampling; each stats stream is closed by its reader at its next frame (<= 1 s)."""
        self._stopping.set()
        with self._lock:
            threads = [self._thread, *self._readers.values()]
        for thread in filter(None, threads):
            thread.join(5)
        self._thread = None

    def subscribe(self, listener: Callable[[dict], None]) -> Callable[[], None]:
        """Call listener(snapshot) after each sample; returns a function to unsubscribe."""
        self._listeners.append(listener)
        return lambda: listener in self._listeners and self._listeners.remove(listener)  # once is enough

    def snapshot(self) -> dict:
        """The latest sample as plain JSON types; one is taken now if none is recent enough."""
        with self._lock:
            latest = self._latest
        if latest is None or _age(latest) > 2 * SAMPLE_SECONDS:
            latest = self.sample()
        return latest

    def sample(self) -> dict:
        """Measure the machine now, against the previous sample; return (and keep) the result
        with the latest reading of each running task's container."""
        store = self.worker.store
        with store.transaction():  # one look: the states add up to the task count
            running, counted, count = store.tasks(State.RUNNING), store.states(), self.worker.task_count
            only_queued = {q.id for q in self.worker.queue if q.id not in self.worker.db}
        if not self._stopping.is_set() and self._thread:
            for t in running:
                self._follow(t.container_id)
        states = {s.name: counted.get(s, 0) for s in State}
        states[State.PENDING.name] += len(only_queued)  # not taken yet: PENDING, as GET /tasks shows it
        with self._lock:
            host = self._host()
            latest = {
                "time": datetime.now(UTC).isoformat(),
                "host": asdict(host),
                "task_count": count,
                "states": states,
                "tasks": [
                    asdict(TaskStats(str(t.id), t.name, *self._followed.get(t.container_id, (None, None))))
                    for t in running
                ],
            }
            self._latest = latest
        for listener in list(self._listeners):
            try:
                listener(latest)
            except Exception:  # noqa: BLE001 - a bad listener must not stop the sampling
                log.exception("a metrics listener failed")
        return latest

    def _host(self) -> HostStats:
        now = psutil.cpu_times()
        if sum(now) - sum(self._cpu) >= 0.1 * psutil.cpu_count():  # else too little time has passed
            self._cpu_percent, self._cpu = _busy_percent(self._cpu, now), now
        cpu = self._cpu_percent
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(self.disk)
        return HostStats(
            cpu_percent=cpu,
            memory_total=memory.total,
            memory_used=memory.total - memory.available,
            memory_percent=round(100 * (memory.total - memory.available) / memory.total, 1),
            disk_total=disk.total,
            disk_used=disk.used,
            disk_percent=disk.percent,
            load_avg=tuple(round(x, 2) for x in psutil.getloadavg()),
        )

    def _follow(self, container_id: str) -> None:
        """Read the container's stats stream on a thread of its own, unless one does already."""
        with self._lock:
            if container_id in self._readers:
                return
            reader = threading.Thread(
                target=self._read, args=(container_id,), name="cube-metrics-stream", daemon=True
            )
            self._readers[container_id] = reader
        reader.start()

    def _read(self, container_id: str) -> None:
        try:
            for frame in self._engine.stats(container_id):  # breaking off closes the stream, on this thread
                self._followed[container_id] = (_container_cpu(frame), _container_memory(frame))
                if self._stopping.is_set():
                    break
        except EngineError as e:
            log.info("stats of container %s ended: %s", container_id[:12], e)  # the next sample retries
        finally:
            with self._lock:
                del self._readers[container_id]
                self._followed.pop(container_id, None)

    def _keep_sampling(self) -> None:
        while not self._stopping.wait(SAMPLE_SECONDS):
            try:
                self.sample()
            except StoreClosed:  # the worker was closed: there is nothing left to sample
                return
            except Exception:  # noqa: BLE001 - one bad round must not end the sampling
                log.exception("sampling metrics failed")


def _container_cpu(frame: dict) -> float | None:
    """A container's CPU % over the second between a stats frame and the one before it."""
    now, before = frame.get("cpu_stats", {}), frame.get("precpu_stats", {})
    used = now.get("cpu_usage", {}).get("total_usage", 0) - before.get("cpu_usage", {}).get("total_usage", 0)
    elapsed = now.get("system_cpu_usage", 0) - before.get("system_cpu_usage", 0)
    if not before.get("system_cpu_usage") or elapsed <= 0:
        return None  # the first frame has nothing before it
    cpus = now.get("online_cpus") or len(now.get("cpu_usage", {}).get("percpu_usage") or [1])
    return round(100 * used / elapsed * cpus, 2)


def _container_memory(frame: dict) -> int | None:
    """Memory in use, as `docker stats` counts it: without the page cache the kernel can reclaim."""
    m = frame.get("memory_stats", {})
    if "usage" not in m:
        return None
    cache = m.get("stats", {})
    return m["usage"] - cache.get("inactive_file", cache.get("total_inactive_file", 0))


def _busy_percent(before, after) -> float | None:
    """The share of CPU time spent busy between two psutil.cpu_times() samples, in percent."""
    # On Linux, guest time is already counted in user time (psutil's own cpu_percent does the same)
    total = sum(after) - sum(before) - _guest(after) + _guest(before)
    if total <= 0:
        return None
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    return round(100 * (total - idle) / total, 1)


def _guest(times) -> float:
    return getattr(times, "guest", 0) + getattr(times, "guest_nice", 0)


def _age(snapshot: dict) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(snapshot["time"])).total_seconds()
