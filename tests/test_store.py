"""cube/store.py: tasks, queue and history in SQLite, in memory or in a file."""

import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cube import State, Task
from cube.state import Transition
from cube.store import Store, StoreClosed, StoreInUse


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "worker.db")


def test_a_file_keeps_tasks_queue_history_and_count_across_reopening(path):
    t = Task(name="kept", image="img", state=State.RUNNING, container_id="c1", host_ports={"80/tcp": 8080})
    t.start_time = datetime.now(UTC)
    move = Transition(datetime.now(UTC), t.id, State.SCHEDULED, State.RUNNING, "started container c1")
    s = Store(path, "w")
    s.save(t, transition=move)
    s.enqueue(Task(name="waiting", image="img", state=State.SCHEDULED))
    s.close()

    s = Store(path, "w")
    assert s.task(t.id) == t
    assert [q.name for q in s.queued()] == ["waiting"]
    assert s.history() == [move]
    assert s.given() == 1
    s.close()


def test_the_queue_is_first_in_first_out_and_front_puts_a_request_back_first():
    s = Store(None, "w")
    a, b, c = (Task(name=n, image="img", state=State.SCHEDULED) for n in ("aa", "bb", "cc"))
    s.enqueue(a)
    s.enqueue(b)
    s.enqueue(c, front=True)
    assert [s.dequeue().name for _ in range(3)] == ["cc", "aa", "bb"]
    assert s.dequeue() is None


def test_dequeue_skips_the_requests_of_a_task_with_an_operation_under_way():
    s = Store(None, "w")
    busy, free = Task(name="busy", image="img"), Task(name="free", image="img")
    s.save(busy, op="start")
    s.enqueue(busy)
    s.enqueue(free)
    assert s.dequeue().name == "free"
    assert s.dequeue() is None, "busy's request waits until the start is over"
    s.save(busy)  # the operation is over
    assert s.dequeue().name == "busy"


def test_a_failed_transaction_changes_nothing():
    s = Store(None, "w")
    t = Task(image="img")
    with pytest.raises(RuntimeError), s.transaction():
        s.save(t)
        s.enqueue(t)
        raise RuntimeError("halfway")
    assert s.tasks() == [] and s.queued() == [] and s.given() == 0


def test_history_of_one_task_is_in_order_and_leaves_out_the_others():
    s = Store(None, "w")
    t, other = Task(image="img"), Task(image="img")
    for src, dst in (
        (None, State.SCHEDULED),
        (State.SCHEDULED, State.RUNNING),
        (State.RUNNING, State.FAILED),
    ):
        s.save(t, transition=Transition(datetime.now(UTC), t.id, src, dst, f"to {dst}"))
        s.save(other, transition=Transition(datetime.now(UTC), other.id, src, dst, "other"))
    assert [(m.src, m.dst) for m in s.history(t.id)] == [
        (None, State.SCHEDULED),
        (State.SCHEDULED, State.RUNNING),
        (State.RUNNING, State.FAILED),
    ]
    assert len(s.history()) == 6


def test_a_second_store_on_a_file_in_use_is_refused_at_once(path):
    first = Store(path, "w")
    with pytest.raises(StoreInUse, match="in use by another worker"):
        Store(path, "w")
    first.close()
    Store(path, "w").close()  # free again once closed


def test_a_second_process_on_a_file_in_use_gets_a_clear_error_not_a_hang(path):
    first = Store(path, "w")
    try:
        child = subprocess.run(
            [sys.executable, "-c", f"from cube.store import Store; Store({path!r}, 'w')"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        first.close()
    assert child.returncode == 1
    assert "StoreInUse" in child.stderr and "in use by another worker" in child.stderr


def test_a_file_made_for_one_worker_is_refused_to_another(path):
    Store(path, "alice").close()
    with pytest.raises(ValueError, match="holds the tasks of worker 'alice', not 'bob'"):
        Store(path, "bob")


def test_tasks_in_one_state_and_the_count_of_each_follow_every_change_in_order(path):
    s = Store(path, "w")
    tasks = [
        Task(name=f"t{i}", image="img", state=State.RUNNING if i % 3 else State.FAILED) for i in range(9)
    ]
    for t in tasks:
        s.save(t)
    s.save(replace(tasks[1], state=State.COMPLETED))  # it leaves RUNNING
    running = [t.name for t in tasks if t.state is State.RUNNING and t.name != "t1"]
    assert [t.name for t in s.tasks(State.RUNNING)] == running, "only those RUNNING, oldest first"
    assert s.states() == {State.RUNNING: 5, State.FAILED: 3, State.COMPLETED: 1}
    assert s.tasks(State.PENDING) == [] and len(s.tasks()) == 9
    s.close()
    s = Store(path, "w")  # read from the file, through its index
    assert ([t.name for t in s.tasks(State.RUNNING)], s.states()[State.COMPLETED]) == (running, 1)
    s.close()


def test_ops_mark_tasks_busy_until_cleared():
    s = Store(None, "w")
    t = Task(image="img")
    s.save(t, op="stop")
    assert s.busy() == {t.id: "stop"} and s.op(t.id) == "stop"
    s.save(t)
    assert s.busy() == {} and s.op(t.id) == "" and s.op(uuid.uuid4()) == ""


def test_requests_put_back_at_the_front_again_and_again_keep_their_order():
    s = Store(None, "w")
    first, second, third = (Task(image=f"i{n}") for n in range(3))
    for t in (first, second, third):
        s.enqueue(t, front=True)  # each one in front of the last: the seq goes 0, -1, -2
    assert [t.image for t in s.queued()] == ["i2", "i1", "i0"]


def test_a_closed_store_says_its_worker_is_closed_and_what_to_do():
    s = Store(None, "w-closed")
    s.close()
    with pytest.raises(StoreClosed, match="worker w-closed is closed: make a new Worker"):
        s.tasks()


@pytest.mark.parametrize("where", ["missing folder", "not a database"])
def test_a_file_that_cannot_be_a_db_is_refused_with_a_valueerror_that_names_it(tmp_path, where):
    path = tmp_path / "no-such-dir" / "w.db" if where == "missing folder" else tmp_path / "notes.txt"
    if where == "not a database":
        path.write_text("these are notes, not a database\n" * 100)
    with pytest.raises(ValueError, match=str(path)):
        Store(str(path), "w")
