"""The threads that drive a worker in the background (the book's chapter 8 goroutines), the one that
tells its listeners what changed, and the gate that lets close() wait for the work under way.

Loop: `parallel` threads take requests (worker.run_task()), sleeping until poked when none is ready
(the book's sleep 10 s); one more observes (worker.update_tasks()) every OBSERVE_SECONDS, as the
kubelet relists every second. Notifier: one thread tells each listener in turn, in order, as the PLEG
hands its events to a channel: a slow listener never slows the worker. Gate: counts the operations
under way on any thread, the caller's too, so that close() waits for them to end before the store
closes (else a worker opened next on the db would begin a start that is still going on, again).
"""

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

log = logging.getLogger(__name__)

OBSERVE_SECONDS = 1.0  # how often the engine is asked about the worker's containers
RETRY_SECONDS = 1.0  # how long to wait before asking an engine that did not answer again
MAX_PARALLEL = 64  # threads that take requests: more only wait on the same engine (and cost memory)


class Loop:
    """Calls only a cube.Worker's thread-safe public methods: run_task() and update_tasks()."""

    def __init__(self, worker, parallel: int) -> None:
        if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= MAX_PARALLEL:
            raise ValueError(f"parallel: must be a whole number from 1 to {MAX_PARALLEL}, got {parallel!r}")
        self.worker, self.parallel = worker, parallel
        self._stopping = threading.Event()
        self._ready = threading.Condition()  # told when a request may have become ready
        self._pokes = 0
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stopping.is_set()

    def start(self) -> None:
        if self.running:
            return
        # New threads get a new event: one that a stop left busy still ends once its operation is done.
        self._stopping = stopping = threading.Event()
        name = f"cube-{self.worker.name}"
        jobs = {f"{name}-{i}": self._take for i in range(self.parallel)} | {f"{name}-observer": self._observe}
        # daemon: a forgotten loop must not keep Python from exiting
        fresh = [threading.Thread(target=f, args=(stopping,), name=n, daemon=True) for n, f in jobs.items()]
        for thread in fresh:
            thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + fresh  # and one a stop left busy

    def stop(self, timeout: float | None) -> None:  # None: as long as what is under way takes
        self._stopping.set()
        self.poke()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(deadline and max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s is still busy after %.1f s", thread.name, timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def poke(self) -> None:
        """Wake the threads waiting for work: a request may be ready."""
        with self._ready:
            self._pokes += 1
            self._ready.notify_all()

    def _take(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            with self._ready:
                pokes = self._pokes
            try:
                result = self.worker.run_task()
            except Exception:  # noqa: BLE001 - a thread that died would leave its requests unserved
                log.exception("worker %s failed to run a request", self.worker.name)
                stopping.wait(RETRY_SECONDS)  # then try again
                continue
            if result.unreachable:
                stopping.wait(RETRY_SECONDS)
            elif result.action == "none" and result.error:  # a request taken and dropped: say so
                log.warning("worker %s: %s", self.worker.name, result.error)
            elif result.action == "none" and not result.error:  # nothing ready: sleep until poked
                with self._ready:
                    self._ready.wait_for(
                        lambda p=pokes: self._pokes != p or stopping.is_set(), OBSERVE_SECONDS
                    )

    def _observe(self, stopping: threading.Event) -> None:
        while not stopping.wait(OBSERVE_SECONDS):
            try:
                self.worker.update_tasks()
            except Exception:  # noqa: BLE001 - the observer must outlive any one bad round
                log.exception("worker %s failed to observe its tasks", self.worker.name)


class Notifier:
    """Tells each listener(change) of every change it is told, in order, on one thread of its own."""

    def __init__(self, name: str) -> None:
        self.name, self.listeners, self._teller = name, [], None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"cube-{name}-notifier")

    def subscribe(self, listener: Callable) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: listener in self.listeners and self.listeners.remove(listener)  # once is enough

    def tell(self, change):
        """Hand the change to the notifier's thread (one job at a time, in order); returns it at once."""
        if self.listeners:
            with suppress(RuntimeError):  # closed: the worker is closing, there is no one left to tell
                self._thread.submit(self._tell, change, list(self.listeners))
        return change

    def close(self) -> None:
        """Tell what is left to tell, then end the thread (from a listener: without waiting for itself)."""
        self._thread.shutdown(wait=threading.current_thread() is not self._teller)

    def _tell(self, change, listeners: list[Callable]) -> None:
        self._teller = threading.current_thread()
        for listener in listeners:
            if listener in self.listeners:  # not unsubscribed since
                try:
                    listener(change)
                except Exception:  # noqa: BLE001 - one bad listener must not stop the others
                    log.exception("a listener of worker %s failed", self.name)


class Gate:
    """Counts the operations under way (a thread's nested ones as one); once closed, refuses new ones."""

    def __init__(self) -> None:
        self._under_way, self._refusal = 0, None
        self._changed, self._mine = threading.Condition(), threading.local()

    def __enter__(self) -> None:
        with self._changed:
            if self._refusal and not self._depth():
                raise self._refusal()
            self._mine.depth, self._under_way = self._depth() + 1, self._under_way + 1

    def __exit__(self, *_) -> None:
        with self._changed:
            self._mine.depth, self._under_way = self._depth() - 1, self._under_way - 1
            self._changed.notify_all()

    def close(self, refusal: Callable[[], Exception]) -> None:
        """Refuse new operations with refusal() from now on; wait for those under way (but this thread's)."""
        with self._changed:
            self._refusal = refusal
            self._changed.wait_for(lambda: self._under_way == self._depth())

    def _depth(self) -> int:
        return getattr(self._mine, "depth", 0)

    @staticmethod
    def guards(*names: str) -> Callable[[type], type]:
        """A class decorator: the methods `names` go through the object's Gate, `_gate`, on any thread."""

        def through_gate(method: Callable) -> Callable:
            @functools.wraps(method)
            def under_way(self, *args, **kwargs):
                with self._gate:
                    return method(self, *args, **kwargs)

            return under_way

        def decorate(cls: type) -> type:
            for name in names:
                setattr(cls, name, through_gate(getattr(cls, name)))
            return cls

        return decorate
