"""The background loop that drives a worker: what the book's chapter 8 adds as goroutines.

`parallel` threads take requests off the worker's queue (worker.run_task()) and sleep when there
is nothing ready, until they are poked: the worker pokes the loop when a request arrives or a task
becomes free. One more thread observes the engine (worker.update_tasks()) every OBSERVE_SECONDS,
as the kubelet relists its runtime every second. All of them only call the worker's public
methods, which are safe from several threads, so the loop holds no state of its own to protect.

The book's loops sleep a fixed time between rounds (10 s), so a request waits up to 10 s; here a
request is taken at once. stop() lets what is under way finish, and leaves the queue as it is.
"""

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)

OBSERVE_SECONDS = 1.0  # how often the engine is asked about the worker's containers
RETRY_SECONDS = 1.0  # how long to wait before asking an engine that did not answer again


class Drivable(Protocol):
    """What the loop needs of a worker (cube.Worker)."""

    name: str

    def run_task(self): ...

    def update_tasks(self): ...


class Loop:
    def __init__(self, worker: Drivable, parallel: int) -> None:
        self.worker = worker
        self.parallel = parallel
        self._stopping = threading.Event()
        self._ready = threading.Condition()  # told when a request may have become ready
        self._pokes = 0
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stopping.is_set()

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        name = f"cube-{self.worker.name}"
        self._threads = [
            threading.Thread(target=self._take_requests, name=f"{name}-{i}") for i in range(self.parallel)
        ]
        self._threads.append(threading.Thread(target=self._observe, name=f"{name}-observer"))
        for thread in self._threads:
            thread.daemon = True  # a forgotten loop must not keep Python from exiting
            thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self.poke()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s is still busy after %.1f s", thread.name, timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def poke(self) -> None:
        """Wake the threads waiting for work: a request may be ready."""
        with self._ready:
            self._pokes += 1
            self._ready.notify_all()

    def _take_requests(self) -> None:
        while not self._stopping.is_set():
            with self._ready:
                pokes = self._pokes
            result = self.worker.run_task()
            if result.unreachable:
                self._stopping.wait(RETRY_SECONDS)
            elif result.action == "none" and not result.error:  # nothing ready: sleep until poked
                self._sleep_until_poked(since=pokes)

    def _sleep_until_poked(self, since: int) -> None:
        with self._ready:
            self._ready.wait_for(lambda: self._pokes != since or self._stopping.is_set(), OBSERVE_SECONDS)

    def _observe(self) -> None:
        while not self._stopping.wait(OBSERVE_SECONDS):
            try:
                self.worker.update_tasks()
            except Exception:  # noqa: BLE001 - the observer must outlive any one bad round
                log.exception("worker %s failed to observe its tasks", self.worker.name)
