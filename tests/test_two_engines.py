"""Two workers, each on its own real engine: tasks land on the right one, a crash of the second
engine leaves the first untouched, and the second worker recovers when its engine comes back."""

import os
import sys
import time
from dataclasses import replace

import httpx
import pytest
from engines import second_engine
from helpers import eventually, mine, page

from cube import State, Task, Worker, ensure_demo_image
from cube.loop import RETRY_SECONDS

engine2 = pytest.fixture(second_engine)

# Where a second engine cannot exist at all (Docker Desktop, no root). Root on Linux without
# dockerd or ip is not skipped: it fails, saying what to install.
pytestmark = [
    pytest.mark.second_engine,
    pytest.mark.skipif(
        sys.platform != "linux" or os.geteuid() != 0, reason="a second dockerd needs Linux and root"
    ),
]


def states(worker: Worker) -> dict:
    return {t.id: t.state for t in worker.db.values()}


def serving(worker: Worker, task: Task) -> bool:
    t = worker.db[task.id]
    try:
        return page(t.host_ports["80/tcp"]).strip() == f"Hello from {t.container_id[:12]}"
    except httpx.TransportError:
        return False


def test_two_workers_on_two_engines_and_one_engine_crashing(client, demo_image, engine2, tmp_path):
    client2 = engine2.client(timeout=5)
    ensure_demo_image(client2)  # built there from the host's busybox: no registry needed
    w1 = Worker("test-engine-1", client)
    w2 = Worker("test-engine-2", client2, db_path=str(tmp_path / "w2.db"))
    try:
        w1.start()
        w2.start()
        on1 = [Task(image=demo_image, state=State.SCHEDULED) for _ in range(2)]
        plain = Task(image=demo_image, state=State.SCHEDULED)
        always = Task(image=demo_image, state=State.SCHEDULED, restart_policy="always")
        for t in on1:
            w1.add_task(t)
        for t in (plain, always):
            w2.add_task(t)
        assert eventually(lambda: set(states(w1).values()) == {State.RUNNING} and len(states(w1)) == 2)
        assert eventually(lambda: set(states(w2).values()) == {State.RUNNING} and len(states(w2)) == 2)

        # Each task runs on its own worker's engine, and only there.
        assert {c.id for c in mine(client, worker=w1.name)} == {w1.db[t.id].container_id for t in on1}
        assert {c.id for c in mine(client2, worker=w2.name)} == {
            w2.db[t.id].container_id for t in (plain, always)
        }
        assert mine(client, worker=w2.name) == [] and mine(client2, worker=w1.name) == []
        assert all(serving(w1, t) for t in on1) and all(serving(w2, t) for t in (plain, always))

        engine2.kill()  # the second engine crashes while its tasks run
        late = Task(image=demo_image, state=State.SCHEDULED)
        w2.add_task(late)
        more = Task(image=demo_image, state=State.SCHEDULED)
        w1.add_task(more)
        assert eventually(lambda: states(w1).get(more.id) is State.RUNNING), "the first engine is unaffected"
        assert all(serving(w1, t) for t in (*on1, more))
        time.sleep(2.5)  # two rounds of observation with no engine to ask
        assert states(w2) == {plain.id: State.RUNNING, always.id: State.RUNNING, late.id: State.SCHEDULED}
        # kept: first in the queue between tries (a try, every RETRY_SECONDS, takes it off for its while)
        kept = eventually(lambda: [q.id for q in w2.queue] == [late.id], seconds=2 * RETRY_SECONDS)
        assert kept, "the request made during the crash is kept"

        engine2.restart()  # back: dockerd stops what it finds running, then honours restart policies
        assert eventually(
            lambda: (
                states(w2)
                == {
                    plain.id: State.FAILED,
                    always.id: State.RUNNING,
                    late.id: State.RUNNING,
                }
            ),
            seconds=15,
        ), states(w2)
        assert w2.db[plain.id].reason == "its container exited with code 143 (killed by SIGTERM)"
        assert eventually(lambda: serving(w2, always)), "the restarted container is reachable again"
        assert serving(w2, late)
        assert all(serving(w1, t) for t in (*on1, more))

        for w, tasks in ((w1, (*on1, more)), (w2, (always, late))):
            for t in tasks:
                w.add_task(replace(t, state=State.COMPLETED))
        assert eventually(lambda: all(s is State.COMPLETED for s in states(w1).values()))
        assert eventually(lambda: sum(s is State.COMPLETED for s in states(w2).values()) == 2)
        assert mine(client, worker=w1.name) == [] and mine(client2, worker=w2.name) == []
    finally:
        w1.close()
        w2.close()
        for c in mine(client, worker=w1.name):
            c.remove(force=True)
