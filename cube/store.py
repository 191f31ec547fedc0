"""Where a worker keeps what it knows: its tasks, its queue of requests and their history.

One SQLite database: in memory when no path is given (gone with the worker, like the book's map), else a
file that survives the worker being killed at any moment (the book's BoltDB, chapter 11). Every change is
one transaction, committed before the worker acts on it, as Nomad's client writes its state file (WAL,
full sync); a file serves one worker at a time, a second gets StoreInUse at once. A task's `op` is the
operation under way ("start", "stop"), written before the engine is asked: after a crash it says what to
finish. A request stays queued until its operation begins (take()). Tasks are indexed by state."""

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

from cube.state import State, Transition
from cube.task import Task

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, body TEXT NOT NULL, op TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY, task_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY, time TEXT NOT NULL, task_id TEXT NOT NULL,
    src TEXT, dst TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_task ON history (task_id, seq);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (json_extract(body, '$.state'));
CREATE TABLE IF NOT EXISTS given (task_id TEXT PRIMARY KEY);
"""
_READ_ONLY = "is read-only: to ask the worker for a change, queue a request with worker.add_task(task)"


class StoreInUse(RuntimeError):
    """Another worker (in this process or another) has the database file open."""


class StoreClosed(RuntimeError):
    """The worker was closed (worker.close()): its store answers nothing more."""


class Store:
    """A worker's tasks, queue and history, in SQLite (path None: in memory). Thread-safe.

    on_change is told of each move saved and each request queued, in order, in the transaction.

    Raises:
        StoreInUse: another worker has the file open. ValueError: it is another worker's file, or
            not a file SQLite can open as a database.
    """

    def __init__(
        self, path: str | None, worker: str, on_change: Callable[[Transition], None] | None = None
    ) -> None:
        self.path, self.worker, self.on_change = path, worker, on_change or (lambda change: None)
        self._lock, self._closed = threading.RLock(), False
        self._out: dict[uuid.UUID, tuple[int, Task]] = {}  # requests handed out by dequeue(): seq, request
        try:  # isolation_level=None: transactions are begun and ended by transaction() only
            self._db = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            raise ValueError(
                f"{path} cannot be opened as a worker's db ({e}): give a file in a folder that exists"
            ) from None
        try:
            self._open(worker)
        except BaseException as e:
            self._db.close()
            if isinstance(e, sqlite3.DatabaseError):  # not StoreInUse: another error while reading the file
                why = f"{path} cannot be read as a worker's db ({e}): give a new file or a cube db"
                raise ValueError(why) from None
            raise

    def _open(self, worker: str) -> None:
        self._db.execute("PRAGMA busy_timeout = 0")  # another owner: fail at once, never wait
        try:
            if self.path:  # exclusive locking mode keeps the lock from the first write until close()
                for pragma in ("locking_mode = EXCLUSIVE", "journal_mode = WAL", "synchronous = FULL"):
                    self._db.execute(f"PRAGMA {pragma}")
            with self.transaction():
                for statement in filter(str.strip, _SCHEMA.split(";")):  # executescript() would commit
                    self._db.execute(statement)
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('worker', ?)", (worker,))
                (owner,) = self._one("SELECT value FROM meta WHERE key = 'worker'")
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            raise StoreInUse(
                f"{self.path} is in use by another worker: one file serves one running worker. "
                "Stop that worker (worker.close()), or give this one another db_path."
            ) from None
        if owner != worker:
            raise ValueError(
                f"{self.path} holds the tasks of worker {owner!r}, not {worker!r}: open it as "
                f"Worker({owner!r}, db_path=...) or give this worker its own file"
            )

    def close(self) -> None:
        """Release the file (and its lock). The store cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the store, and commit all done inside at the end, or nothing; only the outermost commits."""
        with self._lock:
            if outer := not self._open_or_refuse().in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            if outer:
                self._db.execute("COMMIT")

    # --- tasks -----------------------------------------------------------------------------------

    def task(self, task_id: uuid.UUID | str) -> Task | None:
        """The worker's record of the task, or None."""
        row = self._one("SELECT body FROM tasks WHERE id = ?", str(task_id))
        return row and _task(row[0])

    def ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(i) for (i,) in self._all("SELECT id FROM tasks ORDER BY rowid")]

    def tasks(self, state: State | None = None) -> list[Task]:
        """Every task recorded, oldest first; or those in `state`, picked by SQLite, not read one by one."""
        where, args = ("WHERE json_extract(body, '$.state') = ?", [state.name]) if state else ("", [])
        return [_task(body) for (body,) in self._all(f"SELECT body FROM tasks {where} ORDER BY rowid", *args)]

    def states(self) -> dict[State, int]:
        """How many tasks are in each state (only those some task is in)."""
        rows = self._all("SELECT json_extract(body, '$.state'), COUNT(*) FROM tasks GROUP BY 1")
        return {State[name]: n for name, n in rows}

    def op(self, task_id: uuid.UUID) -> str:
        """The operation under way on the task ("start", "stop"), or "" if none."""
        row = self._one("SELECT op FROM tasks WHERE id = ?", str(task_id))
        return row[0] if row else ""

    def busy(self) -> dict[uuid.UUID, str]:
        """Every task with an operation under way, and the operation."""
        return {uuid.UUID(i): op for i, op in self._all("SELECT id, op FROM tasks WHERE op != ''")}

    def save(self, task: Task, op: str = "", transition: Transition | None = None) -> None:
        """Write the task's record, the operation under way on it, and the move that led there."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO tasks (id, body, op) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body, op = excluded.op",
                (str(task.id), json.dumps(task.to_dict()), op),
            )
            if t := transition:
                self._db.execute(
                    "INSERT INTO history (time, task_id, src, dst, reason) VALUES (?, ?, ?, ?, ?)",
                    (t.time.isoformat(), str(t.task_id), t.src and t.src.name, t.dst.name, t.reason),
                )
                self.on_change(t)

    def swap(self, old: Task, new: Task, transition: Transition) -> bool:
        """Save `new` and the move, if the record is still `old` and no operation is under way on it."""
        with self.transaction():
            if same := self.task(old.id) == old and not self.op(old.id):
                self.save(new, "", transition)
            return same

    # --- the queue -------------------------------------------------------------------------------

    def enqueue(self, task: Task, front: bool = False) -> None:
        """Add a request at the back of the queue (or at its front, to try it again first)."""
        with self.transaction():
            seq = self._one("SELECT COALESCE(MIN(seq), 1) - 1 FROM queue")[0] if front else None
            self._db.execute(
                "INSERT INTO queue (seq, task_id, body) VALUES (?, ?, ?)",
                (seq, str(task.id), json.dumps(task.to_dict())),
            )
            self._db.execute("INSERT OR IGNORE INTO given VALUES (?)", (str(task.id),))
            self.on_change(task)

    def dequeue(self) -> Task | None:
        """Hand out the first request whose task is free: no operation under way, none of its requests
        handed out (so one task's go one at a time, in order). It stays queued until take(request), so a
        crash loses nothing; give_back(request) lets another have it."""
        with self.transaction():
            out = [str(i) for i in self._out]
            row = self._one(
                "SELECT seq, body FROM queue WHERE task_id NOT IN (SELECT id FROM tasks WHERE op != '') "
                f"AND task_id NOT IN ({','.join('?' * len(out))}) ORDER BY seq LIMIT 1",
                *out,
            )
            if row is None:
                return None
            request = _task(row[1])
            self._out[request.id] = (row[0], request)
            return request

    def take(self, request: Task) -> None:
        """Take a request dequeue() handed out off the queue (anything else: nothing happens)."""
        with self.transaction():
            seq, out = self._out.get(request.id, (None, None))
            if out is request:
                self._db.execute("DELETE FROM queue WHERE seq = ?", (seq,))
                del self._out[request.id]

    def give_back(self, request: Task) -> None:
        """Let dequeue() hand out again a request it handed out and that was not taken."""
        with self._lock:
            if self._out.get(request.id, (None, None))[1] is request:
                del self._out[request.id]

    def put_back(self, task: Task, request: Task) -> None:
        """Save the task (its operation over) and queue the request again, first, in one transaction."""
        with self.transaction():
            self.save(task)
            self.enqueue(request, front=True)

    def queued(self) -> list[Task]:
        """The requests waiting, front first."""
        return [_task(body) for (body,) in self._all("SELECT body FROM queue ORDER BY seq")]

    def given(self) -> int:
        """How many different tasks were ever queued."""
        return self._one("SELECT COUNT(*) FROM given")[0]

    # --- history ---------------------------------------------------------------------------------

    def history(self, task_id: uuid.UUID | None = None) -> list[Transition]:
        """The recorded moves, oldest first; only one task's if task_id is given."""
        where, args = ("WHERE task_id = ?", [str(task_id)]) if task_id else ("", [])
        rows = self._all(f"SELECT time, task_id, src, dst, reason FROM history {where} ORDER BY seq", *args)
        return [
            Transition(datetime.fromisoformat(t), uuid.UUID(i), src and State[src], State[dst], why)
            for t, i, src, dst, why in rows
        ]

    def _one(self, sql: str, *args) -> tuple | None:
        return next(iter(self._all(sql, *args)), None)

    def _all(self, sql: str, *args) -> list[tuple]:
        with self._lock:
            return self._open_or_refuse().execute(sql, args).fetchall()

    def refusal(self) -> StoreClosed:
        """What the store says to a call once it is closed."""
        where = f"; its tasks are kept in {self.path}" if self.path else ""
        return StoreClosed(f"worker {self.worker} is closed: make a new Worker to go on{where}")

    def _open_or_refuse(self) -> sqlite3.Connection:
        if self._closed:
            raise self.refusal()
        return self._db


class Records(Mapping):
    """A worker's db: task id -> its record, read at each lookup (one task, not all). Read-only."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, task_id: uuid.UUID) -> Task:
        if (task := self._store.task(task_id)) is None:
            raise KeyError(task_id)
        return task

    def __iter__(self) -> Iterator[uuid.UUID]:
        return iter(self._store.ids())

    def __len__(self) -> int:
        return len(self._store.ids())

    def values(self) -> list[Task]:  # one read, not one per task
        return self._store.tasks()

    def items(self) -> list[tuple[uuid.UUID, Task]]:
        return [(t.id, t) for t in self._store.tasks()]

    def __setitem__(self, *_) -> None:
        raise TypeError(f"worker.db {_READ_ONLY}")

    __delitem__ = __setitem__

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class Requests(tuple):
    """A copy of the requests waiting in a worker's queue, front first: a tuple that says how to queue."""

    def _refuse(self, *_) -> None:
        raise TypeError(f"worker.queue is a copy of the queue and {_READ_ONLY}")

    append = extend = insert = remove = pop = clear = __setitem__ = __delitem__ = __iadd__ = _refuse


def _task(body: str) -> Task:
    return Task.from_dict(json.loads(body))
