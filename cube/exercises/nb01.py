"""Exercises of notebook 01: tasks and states."""

from cube.exercises import Exercise
from cube.state import STATE_TRANSITION_MAP, State
from cube.task import Task


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


q1 = Exercise(
    name="1.1",
    question="Which states may a RUNNING task move to? Answer with a set of States.",
    judge=_judge_moves,
    hint_text="look up State.RUNNING in cube.STATE_TRANSITION_MAP, or try each pair in the explorer",
    solution_code="answer = set(STATE_TRANSITION_MAP[State.RUNNING])  # {RUNNING, COMPLETED, FAILED}",
    praise="RUNNING, COMPLETED and FAILED: stay, finish, or fail.",
    wrong=[
        {State.COMPLETED},
        {State.COMPLETED, State.FAILED},
        {State.RUNNING, State.COMPLETED, State.SCHEDULED},
    ],
    setup=lambda: {"STATE_TRANSITION_MAP": STATE_TRANSITION_MAP, "State": State},
)


def _judge_task(answer) -> str | None:
    if not isinstance(answer, Task):
        return "make a Task: Task(name=..., image=..., ...)"
    if answer.name != "web-1":
        return f"the name should be 'web-1', not {answer.name!r}"
    if answer.image != "cube/helloworld-http:latest":
        return "use the demo image, cube.DEMO_IMAGE ('cube/helloworld-http:latest')"
    if answer.memory != 64 * 2**20:
        return f"memory is in bytes: 64 MiB is 64 * 2**20 = {64 * 2**20}, not {answer.memory}"
    if set(answer.exposed_ports) != {"80/tcp"}:
        return "expose the web server's port as exposed_ports={'80/tcp'}"
    if answer.state is not State.SCHEDULED:
        return "a task the worker should start arrives as State.SCHEDULED"
    return None


q2 = Exercise(
    name="1.2",
    question="Make a SCHEDULED Task named 'web-1' for the demo image, with 64 MiB of memory and port "
    "80/tcp exposed.",
    judge=_judge_task,
    hint_text="memory is a whole number of bytes, and exposed_ports a set of strings like '80/tcp'",
    solution_code="""answer = Task(name="web-1", image=DEMO_IMAGE, state=State.SCHEDULED,
              memory=64 * 2**20, exposed_ports={"80/tcp"})""",
    wrong=[
        Task(name="web-1", image="cube/helloworld-http:latest", memory=64_000_000, exposed_ports={"80/tcp"}),
        Task(name="web-1", image="cube/helloworld-http:latest", state=State.SCHEDULED, memory=64 * 2**20),
        "web-1",
    ],
    setup=lambda: {"Task": Task, "State": State, "DEMO_IMAGE": "cube/helloworld-http:latest"},
)


def _judge_missing_image(answer) -> str | None:
    if answer == (State.SCHEDULED, State.FAILED):
        return None
    if answer == (State.PENDING, State.FAILED):
        return (
            "table 4.1's PENDING -> FAILED is a scheduling failure (no worker could take the task); "
            "a missing image is found later, when the worker tries to start the task"
        )
    return "answer a pair (from, to) of States, e.g. (State.RUNNING, State.COMPLETED)"


q3 = Exercise(
    name="1.3",
    question="A task's image does not exist. Which move does cube record when start_task finds out? "
    "Answer a pair (from, to).",
    judge=_judge_missing_image,
    hint_text="the worker only learns the image is missing when it asks Docker to create the container",
    solution_code="answer = (State.SCHEDULED, State.FAILED)",
    praise="the worker took the task as SCHEDULED, and Docker.run() failed: SCHEDULED -> FAILED.",
    wrong=[(State.PENDING, State.FAILED), (State.RUNNING, State.FAILED), State.FAILED],
    setup=lambda: {"State": State},
)
