"""Exercises of notebook 01: tasks and states. None of them needs a Docker engine.

1.2 and 1.3 are code: the learner writes listing 4.10's map and listing 4.11's two helpers, which
the checkers try on all 25 pairs of states; when they pass they are saved in the workbook, and
notebook 03's run_task uses them.
"""

import cube
import cube.book
from cube.exercises import Exercise, Wrong, ____, in_place_of, pair
from cube.image import DEMO_IMAGE
from cube.judge import call
from cube.state import State
from cube.task import Task

P, S, R, C, F = State.PENDING, State.SCHEDULED, State.RUNNING, State.COMPLETED, State.FAILED
LISTING_4_10 = {(a, b) for a in State for b in State if cube.book.valid_state_transition(a, b)}
DEMO_NAMES = (DEMO_IMAGE, DEMO_IMAGE.removesuffix(":latest"))  # the image with or without its tag


def _ports(ports) -> set[str]:
    """Ports as Docker reads them: "80" is "80/tcp"."""
    return {p if "/" in str(p) else f"{p}/tcp" for p in ports}


def _judge_task(answer) -> str | None:
    if not isinstance(answer, Task):
        return "make a Task: Task(name=..., image=..., ...)"
    if answer.name != "web-1":
        return f"the name should be 'web-1', not {answer.name!r}"
    if answer.image not in DEMO_NAMES:
        return f"use the demo image, cube.DEMO_IMAGE ({DEMO_IMAGE!r})"
    if answer.memory != 64 * 2**20:
        return f"memory is in bytes: 64 MiB is 64 * 2**20 = {64 * 2**20}, not {answer.memory}"
    if _ports(answer.exposed_ports) != {"80/tcp"}:
        return "expose the web server's port as exposed_ports={'80/tcp'}"
    if answer.state is not State.SCHEDULED:
        return "a task the worker should start arrives as State.SCHEDULED"
    return None


q1 = Exercise(
    name="1.1",
    question="Make a SCHEDULED Task named 'web-1' for the demo image, with 64 MiB of memory and port "
    "80/tcp exposed.",
    judge=_judge_task,
    hint_text="state=State.SCHEDULED; memory is a whole number of bytes, and exposed_ports a set of strings "
    "like '80/tcp'",
    solution_code="""answer = Task(name="web-1", image=cube.DEMO_IMAGE, state=State.SCHEDULED,
              memory=64 * 2**20, exposed_ports={"80/tcp"})""",
    praise="a SCHEDULED task: a worker given it would start it.",
    wrong=[
        Task(name="web-1", image=DEMO_IMAGE, memory=64_000_000, exposed_ports={"80/tcp"}),
        Task(name="web-1", image=DEMO_IMAGE, state=State.SCHEDULED, memory=64 * 2**20),
        Task(name="web-1", image=DEMO_IMAGE, memory=64 * 2**20, exposed_ports={"80/tcp"}),
        Task(name="web-1", image="nginx", state=State.SCHEDULED, memory=64 * 2**20, exposed_ports={"80"}),
        "web-1",
    ],
    setup=lambda: {"Task": Task, "State": State, "cube": cube},
)

_WHY_NOT = {
    (P, F): " (table 4.1 has it: the chapter's table and its map disagree, as this notebook shows below)",
    (S, C): " (the chapter's prose says so, but its map does not)",
    (F, S): " (cube adds that move to its own map, for a reason this notebook gives below)",
}
_WHY = {
    (S, S): ": the self-loops matter, because a task the worker has never seen is compared with itself",
    (R, R): ": the self-loops matter, because a task the worker has never seen is compared with itself",
}


def _first_wrong_pair(allows) -> str | None:
    """Every pair of states in order; the first on which `allows(src, dst)` and listing 4.10 differ."""
    for src in State:
        for dst in State:
            mine, right = allows(src, dst), (src, dst) in LISTING_4_10
            if mine and not right:
                return f"it lets a {src} task move to {dst}, but listing 4.10 does not" + _WHY_NOT.get(
                    (src, dst), ""
                )
            if right and not mine:
                return f"listing 4.10 lets a {src} task move to {dst}, but it does not" + _WHY.get(
                    (src, dst), ""
                )
    return None


def _judge_map(answer) -> str | None:
    if not isinstance(answer, dict):
        return "STATE_TRANSITION_MAP is a dict: {State.PENDING: [State.SCHEDULED], ...}"
    for key in answer:
        if not isinstance(key, State):
            return f"the keys are States, such as State.PENDING, not {key!r}"
    for state in State:
        if state not in answer:
            return f"your map has no entry for {state}: a state with no way out maps to an empty list, []"
        moves = answer[state]
        if not isinstance(moves, list | tuple | set | frozenset) or not all(
            isinstance(m, State) for m in moves
        ):
            return f"the value for {state} is a list of States, such as [State.SCHEDULED], not {moves!r}"
    wrong = _first_wrong_pair(lambda src, dst: dst in answer[src])
    return wrong and f"your map is not listing 4.10's: {wrong}"


q2 = Exercise(
    name="1.2",
    question="Write listing 4.10's map, STATE_TRANSITION_MAP: a dict from each of the five States to "
    "the list of States a task in it may move to.",
    judge=_judge_map,
    hint_text="five keys, one per State; PENDING has one move, SCHEDULED and RUNNING three each "
    "(a self-loop among them), COMPLETED and FAILED none: []",
    solution_code="""STATE_TRANSITION_MAP = {
    State.PENDING: [State.SCHEDULED],
    State.SCHEDULED: [State.SCHEDULED, State.RUNNING, State.FAILED],
    State.RUNNING: [State.RUNNING, State.COMPLETED, State.FAILED],
    State.COMPLETED: [],
    State.FAILED: [],
}""",
    praise="that is listing 4.10: 7 of the 25 pairs, two of them self-loops.",
    names=("STATE_TRANSITION_MAP",),
    keep=("STATE_TRANSITION_MAP",),
    wrong=[
        {P: [S, F], S: [R, F], R: [C], C: [], F: []},  # table 4.1
        dict(cube.STATE_TRANSITION_MAP),  # cube's: listing 4.10 and two moves more
        {P: [S], S: [R, F], R: [C, F], C: [], F: []},  # no self-loops
        {"PENDING": ["SCHEDULED"]},
        {P: [S], S: [S, R, F], R: [R, C, F], F: []},  # no entry for COMPLETED
        {P: S, S: [S, R, F], R: [R, C, F], C: [], F: []},
    ],
    setup=lambda: {"State": State},
)


def _judge_helpers(contains, valid_state_transition) -> str | None:
    for f, what in ((contains, "contains"), (valid_state_transition, "valid_state_transition")):
        if not callable(f):
            return f"{what} should be the function you wrote, not {f!r}"
    for states, state, right in (([R, F], F, True), ([], P, False), ([R], C, False), ((S, R), S, True)):
        args = f"contains([{', '.join(f'State.{s.name}' for s in states)}], State.{state.name})"
        got = call(f"your {args}", contains, states, state)
        if got is None:
            return f"your {args} returned None: did you forget `return`?"
        if bool(got) is not right:
            return f"your {args} returned {got!r}, but it should be {right}"
    if valid_state_transition.__globals__.get("STATE_TRANSITION_MAP", None) is ____:
        return (
            "your valid_state_transition reads STATE_TRANSITION_MAP, which is still the blank: do 1.2 first"
        )

    def allows(src: State, dst: State) -> bool:
        args = f"valid_state_transition(State.{src.name}, State.{dst.name})"
        got = call(f"your {args}", valid_state_transition, src, dst)
        if got is None:
            raise ValueError(f"your {args} returned None: did you forget `return`?")
        return bool(got)

    try:
        wrong = _first_wrong_pair(allows)
    except ValueError as e:
        return str(e)
    if wrong:
        return (
            f"your valid_state_transition is not listing 4.11's: {wrong}. Does it look up "
            "STATE_TRANSITION_MAP[src] and ask whether dst is in it? Is your map right (1.2)?"
        )
    return _reads_the_map(valid_state_transition, allows)


def _reads_the_map(valid_state_transition, allows) -> str | None:
    """Does it follow STATE_TRANSITION_MAP when the map changes (a PENDING task may now run, a SCHEDULED
    one no longer)? Its own map is put back however the calls end."""
    mine = valid_state_transition.__globals__.get("STATE_TRANSITION_MAP")
    if not isinstance(mine, dict):
        return None  # no map of that name where it looks: the pairs above were judged already
    changed = {src: list(dsts) for src, dsts in mine.items()} | {P: [S, R], S: [S, F]}
    with in_place_of(valid_state_transition, "STATE_TRANSITION_MAP", changed):
        follows = allows(P, R) and not allows(S, R)
    if not follows:
        return (
            "your valid_state_transition answers as listing 4.10 does, but not by reading the map: with "
            "STATE_TRANSITION_MAP changed to let PENDING move to RUNNING, it still says no (or still lets "
            "SCHEDULED run). Return contains(STATE_TRANSITION_MAP[src], dst)"
        )
    return None


q3 = Exercise(
    name="1.3",
    question="Write listing 4.11's contains(states, state) and valid_state_transition(src, dst), which "
    "reads your STATE_TRANSITION_MAP.",
    judge=_judge_helpers,
    hint_text="contains loops over states and returns True when one == state, False after the loop; "
    "valid_state_transition returns contains(STATE_TRANSITION_MAP[src], dst)",
    solution_code="""def contains(states, state):
    for s in states:
        if s == state:
            return True
    return False


def valid_state_transition(src, dst):
    return contains(STATE_TRANSITION_MAP[src], dst)""",
    praise="all 25 pairs answer as listing 4.10 says. (In Python, `state in states` does contains' loop.)",
    names=("contains", "valid_state_transition"),
    keep=("contains", "valid_state_transition"),
    wrong=[
        Wrong(
            "def contains(states, state):\n    return True\n\n"
            "def valid_state_transition(src, dst):\n    return contains(STATE_TRANSITION_MAP[src], dst)",
            "returned True, but it should be False",
        ),
        Wrong(
            "def contains(states, state):\n    return state in states\n\n"
            "def valid_state_transition(src, dst):\n    return contains(STATE_TRANSITION_MAP[dst], src)",
            "listing 4.10 lets a PENDING task move to SCHEDULED, but it does not",
        ),
        Wrong(
            "def contains(states, state):\n    return state in states\n\n"
            "def valid_state_transition(src, dst):\n    contains(STATE_TRANSITION_MAP[src], dst)",
            "returned None: did you forget `return`?",
        ),
        Wrong(
            "def contains(states, state):\n    for s in states:\n        return s == state\n"
            "    return False\n\n"
            "def valid_state_transition(src, dst):\n    return contains(STATE_TRANSITION_MAP[src], dst)",
            "contains([State.RUNNING, State.FAILED], State.FAILED) returned False",
        ),
        Wrong(
            "def contains(states, state):\n    return state in states\n\n"
            "def valid_state_transition(src, dst):\n"
            "    return (src, dst) in {(State.PENDING, State.SCHEDULED),\n"
            "        (State.SCHEDULED, State.SCHEDULED), (State.SCHEDULED, State.RUNNING),\n"
            "        (State.SCHEDULED, State.FAILED),\n"
            "        (State.RUNNING, State.RUNNING), (State.RUNNING, State.COMPLETED),\n"
            "        (State.RUNNING, State.FAILED)}",
            "not by reading the map",
        ),
    ],
    setup=lambda: {"State": State, "STATE_TRANSITION_MAP": cube.book.STATE_TRANSITION_MAP},
)


def _judge_missing_image(answer) -> str | None:
    move = pair(answer)
    if move == (State.SCHEDULED, State.FAILED):
        return None
    if move == (State.PENDING, State.FAILED):
        return (
            "table 4.1's PENDING -> FAILED is a ScheduleEvent: the manager could not place the task on "
            "any worker. A missing image is found later, by the worker that tries to start the task"
        )
    if move == (State.RUNNING, State.FAILED):
        return "the task never got to RUNNING: without its image, no container could be created"
    if move and not all(isinstance(s, State) for s in move):
        return "answer a pair of States, e.g. (State.PENDING, State.SCHEDULED), not strings"
    if move and move[1] is not State.FAILED:
        return f"{move[0]} -> {move[1]} is not what a failed start records: the task ends FAILED. From what?"
    if move:
        return f"the task was not {move[0]} when the worker took it: it takes a task queued as SCHEDULED"
    return "answer a pair (from, to) of States, e.g. (State.PENDING, State.SCHEDULED)"


q4 = Exercise(
    name="1.4",
    question="A worker takes a SCHEDULED task whose image exists nowhere. Which move does it record "
    "when starting the container fails? Answer a pair (from, to).",
    judge=_judge_missing_image,
    hint_text="table 4.1 has two moves into FAILED, each with the event that causes it. Who finds out "
    "that the image is missing: the manager placing the task, or the worker starting it?",
    solution_code="answer = (State.SCHEDULED, State.FAILED)",
    praise="the worker took the task as SCHEDULED, and starting it failed: SCHEDULED -> FAILED "
    "(table 4.1's StartTask row). Notebook 03 shows it on a real engine.",
    wrong=[
        (State.PENDING, State.FAILED),
        (State.RUNNING, State.FAILED),
        (State.SCHEDULED, State.COMPLETED),
        (State.SCHEDULED, State.SCHEDULED),
        State.FAILED,
        ("SCHEDULED", "FAILED"),
    ],
    setup=lambda: {"State": State},
)


def _judge_restarts(answer) -> str | None:
    if not isinstance(answer, Task):
        return "make a Task: Task(image=cube.DEMO_IMAGE, restart_policy=...)"
    if answer.image not in DEMO_NAMES:
        return f"use the demo image, cube.DEMO_IMAGE ({DEMO_IMAGE!r}), not {answer.image!r}"
    name, _, retries = answer.restart_policy.partition(":")
    if name == "on-failure" and retries and int(retries) == 3:
        return None
    if name == "on-failure" and not retries:
        return "plain 'on-failure' has no limit: Docker restarts a failing container forever. Add ':3'"
    if name == "on-failure" and int(retries) == 0:
        return "'on-failure:0' sets no limit: Docker reads a maximum of 0 as 'restart forever'. Use ':3'"
    if name == "on-failure":
        return f"{answer.restart_policy!r} gives up after {int(retries)} restarts, not 3"
    if name in ("always", "unless-stopped"):
        return f"{name!r} restarts the container even when it exits with code 0, and never gives up"
    policy = answer.restart_policy
    return f"restart_policy {policy!r} never restarts the container; look at Docker's 'on-failure'"


q5 = Exercise(
    name="1.5",
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
        Task(image=DEMO_IMAGE, restart_policy="on-failure:0"),
        Task(image=DEMO_IMAGE),
        Task(image="nginx", restart_policy="on-failure:3"),
        "on-failure:3",
    ],
    setup=lambda: {"Task": Task, "cube": cube},
)
