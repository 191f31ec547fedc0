"""Exercises of notebook 01: tasks and states. None of them needs a Docker engine."""

import cube
from cube.exercises import Exercise
from cube.image import DEMO_IMAGE
from cube.state import STATE_TRANSITION_MAP, State
from cube.task import Task


def _judge_task(answer) -> str | None:
    if not isinstance(answer, Task):
        return "make a Task: Task(name=..., image=..., ...)"
    if answer.name != "web-1":
        return f"the name should be 'web-1', not {answer.name!r}"
    if answer.image != DEMO_IMAGE:
        return f"use the demo image, cube.DEMO_IMAGE ({DEMO_IMAGE!r})"
    if answer.memory != 64 * 2**20:
        return f"memory is in bytes: 64 MiB is 64 * 2**20 = {64 * 2**20}, not {answer.memory}"
    if set(answer.exposed_ports) != {"80/tcp"}:
        return "expose the web server's port as exposed_ports={'80/tcp'}"
    if answer.state is not State.SCHEDULED:
        return "a task the worker should start arrives as State.SCHEDULED"
    return None


q1 = Exercise(
    name="1.1",
    question="Make a SCHEDULED Task named 'web-1' for the demo image, with 64 MiB of memory and port "
    "80/tcp exposed.",
    judge=_judge_task,
    hint_text="memory is a whole number of bytes, and exposed_ports a set of strings like '80/tcp'",
    solution_code="""answer = Task(name="web-1", image=cube.DEMO_IMAGE, state=State.SCHEDULED,
              memory=64 * 2**20, exposed_ports={"80/tcp"})""",
    praise="a SCHEDULED task: a worker given it would start it.",
    wrong=[
        Task(name="web-1", image=DEMO_IMAGE, memory=64_000_000, exposed_ports={"80/tcp"}),
        Task(name="web-1", image=DEMO_IMAGE, state=State.SCHEDULED, memory=64 * 2**20),
        Task(name="web-1", image=DEMO_IMAGE, memory=64 * 2**20, exposed_ports={"80/tcp"}),
        "web-1",
    ],
    setup=lambda: {"Task": Task, "State": State, "cube": cube},
)


def _judge_moves(answer) -> str | None:
    right = set(STATE_TRANSITION_MAP[State.RUNNING])
    if not isinstance(answer, set | frozenset | list | tuple):
        return "give a set of states, such as {State.COMPLETED}"
    answer = set(answer)
    if answer == right:
        return None
    missing, extra = right - answer, answer - right
    if State.RUNNING in missing:
        return "RUNNING -> RUNNING is in the map too: a task may be asked to stay where it is"
    if missing:
        return f"the map also lets a RUNNING task go to {', '.join(sorted(s.name for s in missing))}"
    return f"the map has no move from RUNNING to {', '.join(sorted(s.name for s in extra))}"


q2 = Exercise(
    name="1.2",
    question="Which states may a RUNNING task move to? Answer with a set of States.",
    judge=_judge_moves,
    hint_text="look up State.RUNNING in cube.STATE_TRANSITION_MAP, or try each pair in the explorer",
    solution_code="answer = set(cube.STATE_TRANSITION_MAP[State.RUNNING])  # {RUNNING, COMPLETED, FAILED}",
    praise="RUNNING, COMPLETED and FAILED: stay, finish, or fail.",
    wrong=[
        {State.COMPLETED},
        {State.COMPLETED, State.FAILED},
        {State.RUNNING, State.COMPLETED, State.SCHEDULED},
        State.COMPLETED,
    ],
    setup=lambda: {"cube": cube, "State": State},
)


def _judge_missing_image(answer) -> str | None:
    if answer == (State.SCHEDULED, State.FAILED):
        return None
    if answer == (State.PENDING, State.FAILED):
        return (
            "table 4.1's PENDING -> FAILED is a ScheduleEvent: the manager could not place the task on "
            "any worker. A missing image is found later, by the worker that tries to start the task"
        )
    if answer == (State.RUNNING, State.FAILED):
        return "the task never got to RUNNING: without its image, no container could be created"
    return "answer a pair (from, to) of States, e.g. (State.RUNNING, State.COMPLETED)"


q3 = Exercise(
    name="1.3",
    question="A worker takes a SCHEDULED task whose image exists nowhere. Which move does it record "
    "when starting the container fails? Answer a pair (from, to).",
    judge=_judge_missing_image,
    hint_text="table 4.1 has two moves into FAILED. Which event is it when Docker cannot find the image: "
    "ScheduleEvent (the manager) or StartTask (the worker)?",
    solution_code="answer = (State.SCHEDULED, State.FAILED)",
    praise="the worker took the task as SCHEDULED, and starting it failed: SCHEDULED -> FAILED "
    "(table 4.1's StartTask row). Notebook 03 shows it on a real engine.",
    wrong=[(State.PENDING, State.FAILED), (State.RUNNING, State.FAILED), State.FAILED],
    setup=lambda: {"State": State},
)


def _judge_restarts(answer) -> str | None:
    if not isinstance(answer, Task):
        return "make a Task: Task(image=cube.DEMO_IMAGE, restart_policy=...)"
    policy = answer.restart_policy
    if policy == "on-failure:3":
        return None
    if policy == "on-failure":
        return "plain 'on-failure' has no limit: Docker restarts a failing container forever. Add ':3'"
    if policy.startswith("on-failure:"):
        return f"{policy!r} gives up after {policy.partition(':')[2]} restarts, not 3"
    if policy in ("always", "unless-stopped"):
        return f"{policy!r} restarts the container even when it exits with code 0, and never gives up"
    return f"restart_policy {policy!r} never restarts the container; look at Docker's 'on-failure' policy"


q4 = Exercise(
    name="1.4",
    question="Make a Task for the demo image whose container Docker restarts when it fails, but at most "
    "3 times.",
    judge=_judge_restarts,
    hint_text="the error for restart_policy='sometimes' above lists every spelling Task accepts",
    solution_code='answer = Task(image=cube.DEMO_IMAGE, restart_policy="on-failure:3")',
    praise="'on-failure:3' is Docker's own spelling: restart after a non-zero exit, give up after 3.",
    wrong=[
        Task(image=DEMO_IMAGE, restart_policy="on-failure"),
        Task(image=DEMO_IMAGE, restart_policy="always"),
        Task(image=DEMO_IMAGE, restart_policy="on-failure:5"),
        Task(image=DEMO_IMAGE),
        "on-failure:3",
    ],
    setup=lambda: {"Task": Task, "cube": cube},
)
