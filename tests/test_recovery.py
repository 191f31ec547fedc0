"""A real worker process killed with SIGKILL in the middle of its work, again and again, and a new
worker on the same SQLite file picking up: no task lost, no container leaked, none doubled, and no
job run twice (the engine's own `docker events` count the starts)."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import replace

import pytest
from helpers import Starts, eventually, mine

from cube import State, Task, Worker
from cube.state import FINAL_STATES
from cube.store import Store

pytestmark = pytest.mark.sigkill

# The child: a worker on the db file, working in the background with two threads, until killed.
CHILD = """
import sys, time
from cube import Worker
w = Worker(sys.argv[1], db_path=sys.argv[2], parallel=2)
w.start()
print("ready", flush=True)
time.sleep(120)
"""
ROUNDS = 12
STEP = 0.12  # in even rounds the kill comes 200, 320, 440 ... ms after the child's loop started (its
# stops come first, then its starts); in odd rounds, as soon as the engine reports the child stopping a
# container: a stop is far shorter than a start, and a kill at a given moment seldom finds one under way


@pytest.fixture
def name(client):
    name = f"test-kill-{uuid.uuid4().hex[:8]}"
    yield name
    for c in mine(client, worker=name):
        c.remove(force=True)


def check_recovered(w: Worker, client, every_task: set) -> None:
    """What must hold after any crash, once a new worker has reconciled."""
    db, queued = w.db, {t.id for t in w.queue}
    assert every_task <= set(db) | queued, "a task the worker was given is lost"
    assert w.store.busy() == {}, "something is still half done"
    for t in db.values():
        containers = mine(client, task=str(t.id))
        if t.state is State.RUNNING:
            assert [(c.id, c.status) for c in containers] == [(t.container_id, "running")], t
        else:
            assert containers == [], f"{t.state} task {t.id} still has {containers}"
        assert t.state is not State.FAILED, f"misreported: {t.reason}"
        if history := w.history(t.id):
            assert history[-1].dst is t.state
    running = {t.container_id for t in db.values() if t.state is State.RUNNING}
    assert {c.id for c in mine(client, worker=w.name)} == running, "a container belongs to no task"


def test_sigkill_at_many_points_of_starts_and_stops_loses_nothing(client, demo_image, name, tmp_path):
    db = str(tmp_path / "worker.db")
    every_task: set = set()
    caught = {"start": 0, "stop": 0}
    for round in range(ROUNDS):
        with Worker(name, client, db_path=db) as w:
            check_recovered(w, client, every_task)
            stopping = {q.id for q in w.queue if q.state is State.COMPLETED}
            for t in w.db.values():  # stop what runs (unless asked already), start three more
                if t.state is State.RUNNING and t.id not in stopping:
                    w.add_task(replace(t, state=State.COMPLETED))
            for _ in range(3):
                t = Task(image=demo_image, state=State.SCHEDULED)
                w.add_task(t)
                every_task.add(t.id)

        stops = client.events(since=time.time(), filters={"event": "kill", "label": f"cube.worker={name}"})
        child = subprocess.Popen([sys.executable, "-c", CHILD, name, db], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        if round % 2:
            timer = threading.Timer(5, stops.close)  # no stop in this round: kill it after 5 s
            timer.start()
            with suppress(Exception):  # the stream ends when it is closed
                next(iter(stops))
            timer.cancel()
        else:
            time.sleep(0.2 + round // 2 * STEP)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        stops.close()

        store = Store(db, name)  # what the crash left half done, before a worker reconciles it
        for op in store.busy().values():
            caught[op] += 1
        store.close()

    with Worker(name, client, db_path=db) as w:
        check_recovered(w, client, every_task)
        while w.queue:  # finish the work that was still queued
            assert w.run_task().error is None
        for t in w.db.values():
            if t.state is State.RUNNING:
                w.add_task(replace(t, state=State.COMPLETED))
                assert w.run_task().error is None
        assert {t.state for t in w.db.values()} == {State.COMPLETED}
        assert set(w.db) == every_task
    assert mine(client, worker=name) == []
    print(f"kills that caught an operation half done: {caught}")
    assert caught["start"] >= 3 and caught["stop"] >= 3, f"the kills missed the operations: {caught}"


JOB_ROUNDS = 6  # of 3 jobs each


def test_short_jobs_under_sigkill_at_random_moments_each_run_once_with_their_own_exit_code(
    client, demo_image, name, tmp_path
):
    db, rng, starts = str(tmp_path / "worker.db"), random.Random(4), Starts(client, f"cube.worker={name}")
    jobs: dict = {}  # task id -> the exit code its job ends with
    for _ in range(JOB_ROUNDS):
        with Worker(name, client, db_path=db) as w:  # reconciles what the last child left
            for _ in range(3):
                code = rng.choice([0, 3])
                job = Task(
                    image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", f"sleep 0.2; exit {code}"]
                )
                w.add_task(job)
                jobs[job.id] = code
        child = subprocess.Popen([sys.executable, "-c", CHILD, name, db], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.8))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    time.sleep(0.5)  # the last jobs end while no worker is alive
    with Worker(name, client, db_path=db) as w:
        while w.queue:
            w.run_task()
        assert eventually(
            lambda: w.update_tasks() is not None and all(w.db[j].state in FINAL_STATES for j in jobs)
        )
        for job_id, code in jobs.items():
            t = w.db[job_id]
            assert (t.state, t.exit_code) == (State.COMPLETED if code == 0 else State.FAILED, code), t.reason
    counts = starts.close()
    assert {str(j): counts.get(str(j), 0) for j in jobs} == {str(j): 1 for j in jobs}, (
        "a job ran twice, or never"
    )
    assert mine(client, worker=name) == []
