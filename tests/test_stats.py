"""Metrics (cube/stats.py): the arithmetic on made-up samples, then a real worker's containers,
one busy and one idle, measured through the engine's stats stream."""

import threading
import time
from collections import namedtuple
from dataclasses import replace

import pytest
from helpers import eventually

from cube import State, Task
from cube.stats import Metrics, _busy_percent, _container_cpu, _container_memory

# --- the pure parts, on fake inputs ----------------------------------------------------------------

# psutil.cpu_times() on Linux, and on macOS (no iowait), in seconds
LinuxTimes = namedtuple("LinuxTimes", "user nice system idle iowait irq softirq steal")
MacTimes = namedtuple("MacTimes", "user nice system idle")


def test_busy_percent_of_fake_cpu_times_counts_idle_and_iowait_as_not_busy():
    before = LinuxTimes(user=100, nice=0, system=50, idle=800, iowait=50, irq=0, softirq=0, steal=0)
    after = LinuxTimes(user=120, nice=0, system=60, idle=860, iowait=60, irq=0, softirq=0, steal=0)
    # 100 s of CPU time passed: 30 busy, 60 idle, 10 waiting for I/O
    assert _busy_percent(before, after) == 30.0


def test_busy_percent_of_fake_cpu_times_without_iowait_as_on_macos():
    assert _busy_percent(MacTimes(10, 0, 10, 80), MacTimes(13, 0, 11.5, 85.5)) == 45.0


@pytest.mark.parametrize("later", [0, -1], ids=["no time passed", "counters went back"])
def test_busy_percent_of_fake_cpu_times_with_no_time_between_is_none(later):
    before = MacTimes(10, 0, 10, 80)
    assert _busy_percent(before, MacTimes(10, 0, 10, 80 + later)) is None


def fake_frame(
    used: int, pre_used: int | None, system: int, pre_system: int | None, cpus=2, **memory
) -> dict:
    """A made-up frame of the engine's stats stream; times in nanoseconds. pre_*=None: the first
    frame, which has nothing before it."""
    before = (
        {} if pre_system is None else {"cpu_usage": {"total_usage": pre_used}, "system_cpu_usage": pre_system}
    )
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": used}, "system_cpu_usage": system, "online_cpus": cpus},
        "precpu_stats": before,
        "memory_stats": memory,
    }


def test_container_cpu_of_a_fake_first_frame_is_none():
    assert _container_cpu(fake_frame(5_000, None, 10**12, None)) is None
    # what the engine sends for the first frame: zeros before
    frame = fake_frame(5_000, 0, 10**12, 0)
    assert _container_cpu(frame) is None


def test_container_cpu_of_fake_frames_one_busy_core_of_two_is_100():
    # one second passed: 2 s of CPU time on 2 CPUs, of which the container used 1 s
    frame = fake_frame(used=3 * 10**9, pre_used=2 * 10**9, system=10**13 + 2 * 10**9, pre_system=10**13)
    assert _container_cpu(frame) == 100.0
    idle = fake_frame(
        used=2 * 10**9 + 10**7, pre_used=2 * 10**9, system=10**13 + 2 * 10**9, pre_system=10**13
    )
    assert _container_cpu(idle) == 1.0


def test_container_cpu_of_fake_cgroup_v1_frames_counts_cpus_from_percpu_usage():
    frame = fake_frame(
        used=3 * 10**9, pre_used=2 * 10**9, system=10**13 + 4 * 10**9, pre_system=10**13, cpus=0
    )
    frame["cpu_stats"]["cpu_usage"]["percpu_usage"] = [1, 2, 3, 4]  # 4 CPUs, no online_cpus
    assert _container_cpu(frame) == 100.0


def test_container_memory_of_fake_frames_leaves_out_the_inactive_page_cache():
    v1 = {"usage": 50_000_000, "stats": {"total_inactive_file": 20_000_000, "cache": 25_000_000}}
    v2 = {"usage": 50_000_000, "stats": {"inactive_file": 15_000_000, "active_file": 5_000_000}}
    assert _container_memory(fake_frame(0, None, 0, None, **v1)) == 30_000_000
    assert _container_memory(fake_frame(0, None, 0, None, **v2)) == 35_000_000
    assert _container_memory(fake_frame(0, None, 0, None, usage=1234)) == 1234  # no stats at all


def test_container_memory_of_a_fake_frame_of_a_stopped_container_is_none():
    assert _container_memory(fake_frame(0, None, 0, None)) is None  # memory_stats: {}


# --- on a real worker ------------------------------------------------------------------------------

BUSY = ["sh", "-c", "while :; do :; done"]


def run(worker, task: Task) -> Task:
    worker.add_task(replace(task, state=State.SCHEDULED))
    result = worker.run_task()
    assert result.error is None, result.error
    return worker.db[task.id]


@pytest.fixture
def metrics(worker):
    m = Metrics(worker)
    m.start()
    yield m
    m.stop()


def measured(metrics: Metrics, *tasks: Task, within: float = 8) -> dict[str, dict]:
    """Each task's entry in a snapshot, once every one of them has a CPU percentage."""

    def ready():
        entries = {e["id"]: e for e in metrics.snapshot()["tasks"]}
        found = [entries.get(str(t.id)) for t in tasks]
        return all(e and e["cpu_percent"] is not None for e in found) and entries

    return eventually(ready, seconds=within, every=0.2) or pytest.fail(f"not measured: {metrics.snapshot()}")


@pytest.mark.slow
@pytest.mark.alone  # a busy loop gets a whole core only when no other test wants the CPUs
def test_a_busy_container_reads_about_one_core_and_an_idle_one_little(worker, metrics, demo_image):
    busy = run(worker, Task(name=f"{worker.name}-busy", image=demo_image, cmd=BUSY))
    idle = run(worker, Task(name=f"{worker.name}-idle", image=demo_image))

    readings = []  # three frames a second apart: another program on this machine may take a core
    for _ in range(3):
        time.sleep(1.05)
        readings.append(measured(metrics, busy, idle))
    cpu = {t.name: [r[str(t.id)]["cpu_percent"] for r in readings] for t in (busy, idle)}
    print(f"\nCPU % over three seconds: {cpu}")

    assert 50 <= max(cpu[busy.name]) <= 110, "one busy core (of 2)"
    assert max(cpu[idle.name]) < 20
    last = readings[-1]
    assert last[str(busy.id)]["memory_bytes"] > 0 and last[str(idle.id)]["memory_bytes"] > 0
    assert (last[str(busy.id)]["name"], last[str(idle.id)]["name"]) == (busy.name, idle.name)


@pytest.mark.slow
def test_two_snapshots_a_second_apart_are_two_samples_of_the_machine(metrics):
    first = metrics.snapshot()
    time.sleep(1.2)
    second = metrics.snapshot()

    assert first["time"] < second["time"]
    for snap in (first, second):
        host = snap["host"]
        assert host["cpu_percent"] is None or 0 <= host["cpu_percent"] <= 100
        assert 0 < host["memory_used"] <= host["memory_total"]
        assert 0 <= host["memory_percent"] <= 100
        assert host["memory_percent"] == round(100 * host["memory_used"] / host["memory_total"], 1)
        assert 0 < host["disk_used"] <= host["disk_total"] and 0 <= host["disk_percent"] <= 100
        assert len(host["load_avg"]) == 3
    assert isinstance(second["host"]["cpu_percent"], float), "two samples give a CPU percentage"


@pytest.mark.slow
def test_task_count_and_states_count_the_workers_tasks(worker, metrics, demo_image):
    assert (metrics.sample()["task_count"], metrics.sample()["tasks"]) == (0, [])

    running = run(worker, Task(image=demo_image))
    failed = Task(image=demo_image, state=State.SCHEDULED, cmd=["sh", "-c", "exit 3"])
    worker.add_task(failed)
    assert worker.run_task().error
    done = run(worker, Task(image=demo_image))
    worker.add_task(replace(done, state=State.COMPLETED))
    assert worker.run_task().error is None
    assert worker.db[failed.id].state is State.FAILED

    snap = metrics.sample()
    assert snap["task_count"] == 3
    assert snap["states"] == {"PENDING": 0, "SCHEDULED": 0, "RUNNING": 1, "COMPLETED": 1, "FAILED": 1}
    assert [e["id"] for e in snap["tasks"]] == [str(running.id)]


@pytest.mark.slow
def test_stop_ends_the_sampling_threads_while_containers_are_followed(worker, demo_image):
    run(worker, Task(image=demo_image))
    before = set(threading.enumerate())
    m = Metrics(worker)
    m.start()
    measured(m, *worker.db.values())  # its stats stream is open and being read

    def ours():
        return [t.name for t in set(threading.enumerate()) - before if t.name.startswith("cube-metrics")]

    assert sorted(ours()) == ["cube-metrics", "cube-metrics-stream"]
    began = time.monotonic()
    m.stop()
    print(f"\nstop() took {time.monotonic() - began:.2f} s")
    assert ours() == []
    m.stop()  # twice is fine


def test_states_count_a_task_only_queued_as_pending_as_get_tasks_shows_it(worker, demo_image):
    for name in ("a", "b", "c"):
        worker.add_task(Task(name=f"stats-queued-{name}", image=demo_image, state=State.SCHEDULED))
    sample = Metrics(worker).sample()
    assert sample["task_count"] == 3 and sample["states"]["PENDING"] == 3
    assert sum(sample["states"].values()) == sample["task_count"]
