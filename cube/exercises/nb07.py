"""Exercises of notebook 07: metrics. Every one works on made-up numbers, so that its answer is the
same on any machine."""

from collections import namedtuple

from cube.exercises import Exercise
from cube.judge import call

GiB = 2**30

# Two readings of the CPU time counters, 25 seconds apart on a machine with 4 CPUs, shaped like
# psutil.cpu_times() on Linux (fewer fields, the same idea): seconds since boot, summed over CPUs.
cpu_times = namedtuple("cpu_times", "user nice system idle iowait")
CPU_BEFORE = cpu_times(user=1000.0, nice=0.0, system=400.0, idle=8000.0, iowait=100.0)
CPU_AFTER = cpu_times(user=1030.0, nice=0.0, system=410.0, idle=8050.0, iowait=110.0)

# A machine's memory, shaped like psutil.virtual_memory() (three of its fields), in bytes.
virtual_memory = namedtuple("virtual_memory", "total available free")
MEMORY = virtual_memory(total=16 * GiB, available=10 * GiB, free=2 * GiB)

# One frame of the engine's stats stream, with only the fields a CPU percentage needs: the
# container's CPU time and the machine's, in nanoseconds, now and one second before.
FRAME = {
    "cpu_stats": {
        "cpu_usage": {"total_usage": 2_500_000_000},
        "system_cpu_usage": 804_000_000_000,
        "online_cpus": 4,
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 2_000_000_000},
        "system_cpu_usage": 800_000_000_000,
    },
}


def _number(answer) -> str | None:
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return f"answer a number, not {answer!r}"
    return None


# --- 7.1 -------------------------------------------------------------------------------------------


def _judge_cpu(answer) -> str | None:
    if problem := _number(answer):
        return problem
    if abs(answer - 40) < 0.05:
        return None
    if abs(answer - 0.4) < 0.0005:
        return "that is a share, 0.4; a percentage is 100 times it"
    if abs(answer - 15.0) < 0.05 or abs(answer - 100 * 1400 / 9500) < 0.05:
        return "that is the average since boot, from one reading; subtract CPU_BEFORE from CPU_AFTER first"
    if abs(answer - 50) < 0.05:
        return "iowait is time spent waiting for the disk with nothing to run: count it as idle, not busy"
    if abs(answer - 60) < 0.05:
        return "that is the share of time spent idle (idle and iowait); the question asks for busy"
    return "busy = all time - idle - iowait, each as CPU_AFTER - CPU_BEFORE; then 100 * busy / all time"


q1 = Exercise(
    name="7.1",
    question="CPU_BEFORE and CPU_AFTER are two made-up readings of the CPU time counters. What CPU % "
    "was busy between them?",
    judge=_judge_cpu,
    hint_text="subtract each field of CPU_BEFORE from CPU_AFTER; busy is everything but idle and iowait",
    solution_code="""all_time = sum(CPU_AFTER) - sum(CPU_BEFORE)
idle = (CPU_AFTER.idle + CPU_AFTER.iowait) - (CPU_BEFORE.idle + CPU_BEFORE.iowait)
answer = 100 * (all_time - idle) / all_time  # cube.stats._busy_percent(CPU_BEFORE, CPU_AFTER) agrees""",
    praise="40 %: 40 of the 100 CPU-seconds between the readings were busy.",
    wrong=[0.4, 15.0, 50.0, 60.0, "40 %"],
    setup=lambda: {"CPU_BEFORE": CPU_BEFORE, "CPU_AFTER": CPU_AFTER},
)


# --- 7.2 -------------------------------------------------------------------------------------------


def _judge_memory(answer) -> str | None:
    if problem := _number(answer):
        return problem
    if answer == 6 * GiB:
        return None
    if answer == 6:
        return "in bytes, please, as /stats gives it: 6 GiB is 6 * 2**30"
    if answer == 14 * GiB:
        return "total - free leaves out the cache the kernel hands back on demand: use available, not free"
    if answer == 10 * GiB:
        return "available is what programs could still have; used is the rest of the total"
    if abs(answer - 37.5) < 0.05:
        return "that is memory_percent; the question asks for memory_used, in bytes"
    return "memory_used = total - available"


q2 = Exercise(
    name="7.2",
    question="MEMORY is a made-up psutil.virtual_memory(): total 16 GiB, available 10 GiB, free 2 GiB. "
    "How many bytes does cube report as memory_used?",
    judge=_judge_memory,
    hint_text="free memory is used for nothing at all; available adds what the kernel can take back",
    solution_code="answer = MEMORY.total - MEMORY.available",
    praise="6 GiB: what programs hold. total - free would have said 14, counting the cache as used.",
    wrong=[14 * GiB, 10 * GiB, 6, 37.5],
    setup=lambda: {"MEMORY": MEMORY},
)


# --- 7.3 -------------------------------------------------------------------------------------------

# The last pair is where a float cannot follow: 100 * used / total is 99.99999999999999999 exactly,
# and a float rounds it to 100.0 before int() or math.floor() sees it.
_PAIRS = [(3, 8), (6 * GiB, 16 * GiB), (1, 3), (0, 5), (5, 5), (2**40 - 1, 2**40), (10**18 - 1, 10**18)]


def _judge_percent(answer) -> str | None:
    if not callable(answer):
        return "give a function: def percent(used, total): ..., then answer = percent"
    for used, total in _PAIRS:
        got, right = call(f"your percent({used}, {total})", answer, used, total), 100 * used // total
        if isinstance(got, bool) or not isinstance(got, int | float):
            return f"percent({used}, {total}) returned {got!r}: return the whole per cent, a number"
        if isinstance(got, float):
            return (
                f"percent({used}, {total}) is a float, {got}: in Python `/` always gives one. With "
                "whole numbers only, as in Go, divide with //"
            )
        if got == right:
            continue
        if got == used // total * 100:
            return "that divides first: used // total is 0 whenever used < total; multiply by 100 first"
        if got == int(100 * used / total) and got != right:
            return (
                f"percent({used}, {total}) gives {got}, not {right}: a float cannot hold that many digits, "
                "so 100 * used / total rounds up to a whole 100 before int() drops anything. Whole "
                "numbers only: //"
            )
        if got == right + 1:
            return (
                f"percent({used}, {total}) gives {got}: whole-number division drops the fraction, not rounds"
            )
        return f"percent({used}, {total}) should be {right}, not {got!r}"
    return None


def _book(used, total):
    return used // total * 100


def _floats(used, total):
    return 100 * used / total


def _rounded(used, total):
    return round(100 * used / total)


def _int_of_floats(used, total):
    return int(used * 100 / total)


def _floor_of_floats(used, total):
    import math

    return math.floor(100 * used / total)


q3 = Exercise(
    name="7.3",
    question="Write percent(used, total) with whole numbers only, as Go would compute it, that gives the "
    "whole per cent, dropping the fraction: percent(3, 8) is 37. Then answer = percent.",
    judge=_judge_percent,
    hint_text="dividing first loses everything; what if 100 multiplies before the division?",
    solution_code="""def percent(used, total):
    return 100 * used // total


answer = percent""",
    praise="in Go, 100 * used / total on integers does the same: the order of the operations is the fix.",
    wrong=[_book, _floats, _rounded, _int_of_floats, _floor_of_floats, 37],
)


# --- 7.4 -------------------------------------------------------------------------------------------


def _judge_container_cpu(answer) -> str | None:
    if problem := _number(answer):
        return problem
    if abs(answer - 50) < 0.01:
        return None
    if abs(answer - 12.5) < 0.01:
        return (
            "system_cpu_usage counts the time of all 4 CPUs, so that is a share of the whole machine; "
            "a container's CPU % is of ONE CPU: multiply by online_cpus"
        )
    if abs(answer - 0.5) < 0.001:
        return "that is 0.5 CPUs, a share of one CPU; as a percentage it is 100 times that"
    if abs(answer - 100 * 2.5 / 804 * 4) < 0.01:
        return "those are the totals since the container started; subtract precpu_stats from cpu_stats first"
    return "100 * (container time used) / (machine time elapsed) * online_cpus, each a difference"


q4 = Exercise(
    name="7.4",
    question="FRAME is a made-up frame of the engine's stats stream. What cpu_percent does cube give "
    "the container?",
    judge=_judge_container_cpu,
    hint_text="do what the cell that read one frame by hand did: two differences, a division, and the "
    "number of CPUs",
    solution_code="""now, before = FRAME["cpu_stats"], FRAME["precpu_stats"]
used = now["cpu_usage"]["total_usage"] - before["cpu_usage"]["total_usage"]
elapsed = now["system_cpu_usage"] - before["system_cpu_usage"]
answer = 100 * used / elapsed * now["online_cpus"]  # cube.stats._container_cpu(FRAME) agrees""",
    praise="50 %: half a CPU for the second, whatever the machine's 4 CPUs did meanwhile.",
    wrong=[12.5, 0.5, 100 * 2.5 / 804 * 4, 200.0],
    setup=lambda: {"FRAME": FRAME},
)
