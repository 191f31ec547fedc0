"""Exercises of notebook 05: desired and observed state."""

import uuid
from datetime import UTC, datetime, timedelta

import cube
from cube.doctor import connect
from cube.exercises import Exercise, pair, remove_containers
from cube.judge import call
from cube.observe import Observed, describe_exit
from cube.state import State, Transition
from cube.task import Task
from cube.worker import Worker


def _engine_setup(exercise: str):
    """A worker of its own (a unique name, so that teardown removes only what the solution made)
    and a client, under the names the notebook uses."""

    def setup() -> dict:
        name = f"exercise-{exercise}-{uuid.uuid4().hex[:8]}"
        return {"cube": cube, "Task": Task, "State": State, "w": Worker(name), "client": connect()}

    return setup


def _engine_teardown(names: dict) -> None:
    names["w"].close()
    remove_containers(names["w"].name)


# --- 5.1 -------------------------------------------------------------------------------------------


def _judge_recorded(answer) -> str | None:
    if not callable(answer):
        return "give a function: def recorded(exit_code): ..., then answer = recorded"
    for code in (0, 1, 3, 127, 137, 143, 255):
        got = call(f"your recorded({code})", answer, code)
        if not isinstance(got, State):
            return f"return a State, such as State.COMPLETED; recorded({code}) returned {got!r}"
        right = State.COMPLETED if code == 0 else State.FAILED
        if got is right:
            continue
        if code == 0:
            return f"exit code 0 means the job did its work: recorded(0) should be COMPLETED, not {got}"
        if code in (137, 143):
            return (
                f"exit code {code} is 128 + {code - 128}: killed by a signal. Nobody asked the worker "
                f"to stop this task, so update_tasks() calls it a failure: recorded({code}) is FAILED"
            )
        return f"recorded({code}) should be FAILED: every exit code but 0 is a failure, whatever its number"
    return None


def _only_one(code):
    return State.FAILED if code == 1 else State.COMPLETED


def _sigterm_is_clean(code):
    return State.COMPLETED if code in (0, 143) else State.FAILED


def _words(code):
    return "COMPLETED" if code == 0 else "FAILED"


q1 = Exercise(
    name="5.1",
    question="Write recorded(exit_code): the State update_tasks() records for a RUNNING task whose "
    "container exited by itself with that code. Then answer = recorded.",
    judge=_judge_recorded,
    hint_text="one exit code means the job did its work; read cube.observe.observed, shown above",
    solution_code="""def recorded(exit_code):
    return State.COMPLETED if exit_code == 0 else State.FAILED


answer = recorded""",
    praise="0 is COMPLETED, anything else FAILED, even 143: only a stop the worker was asked for "
    "counts a SIGTERM as a clean end.",
    wrong=[_only_one, _sigterm_is_clean, _words, State.FAILED],
    setup=lambda: {"State": State},
)


# --- 5.2 -------------------------------------------------------------------------------------------


def _judge_removed(answer) -> str | None:
    if isinstance(answer, list):
        answer = tuple(answer)
    if not isinstance(answer, tuple) or len(answer) != 3:
        return (
            "answer a tuple of three: (state, exit_code, reason), e.g. (rec.state, rec.exit_code, rec.reason)"
        )
    state, exit_code, reason = answer
    if not isinstance(state, State):
        return f"answer the state as a State, e.g. State.RUNNING, not {state!r}"
    if state is not State.FAILED:
        return (
            f"the state is FAILED, not {state}: nobody asked the worker to stop the task, so a "
            "container that vanished is a failure"
        )
    if exit_code is not None:
        return (
            f"the exit code is None, not {exit_code!r}: a removed container leaves nothing behind to "
            "ask, so the worker cannot know how its process ended"
        )
    if reason != f"its container {describe_exit(Observed(''))}":  # what update_tasks() records for it
        return "the reason is the sentence the worker recorded: try it, and answer rec.reason"
    return None


q2 = Exercise(
    name="5.2",
    question="A RUNNING task's container is removed behind the worker's back (docker rm -f). What "
    "does update_tasks() record? Answer (state, exit_code, reason).",
    judge=_judge_removed,
    hint_text="start a task with w, remove its container with client.containers.get(...).remove(force=True), "
    "call w.update_tasks() and read w.db[task.id]",
    solution_code="""gone = Task(image=cube.DEMO_IMAGE, state=State.SCHEDULED)
w.add_task(gone)
w.run_task()
client.containers.get(w.db[gone.id].container_id).remove(force=True)  # behind the worker's back
w.update_tasks()
rec = w.db[gone.id]
answer = (rec.state, rec.exit_code, rec.reason)""",
    praise="FAILED, with no exit code: the container is gone, and with it anything the engine knew of "
    "how it ended.",
    wrong=[
        (State.FAILED, 137, "its container exited with code 137 (killed by SIGKILL)"),
        (State.COMPLETED, None, "its container was removed outside cube"),
        (State.FAILED, 0, "its container was removed outside cube"),
        ("FAILED", None, "its container was removed outside cube"),
        (State.FAILED, None, "it was not removed"),
        State.FAILED,
    ],
    setup=_engine_setup("5-2"),
    teardown=_engine_teardown,
)


# --- 5.3 -------------------------------------------------------------------------------------------

_T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_ID = uuid.UUID("00000000-0000-4000-8000-000000000005")


def _at(seconds: float, src: State | None, dst: State, reason: str) -> Transition:
    return Transition(_T0 + timedelta(seconds=seconds), _ID, src, dst, reason)


# A life like nb05-web's: started, restarted, killed, started again, stopped.
SAMPLE_HISTORY = [
    _at(0.0, None, State.SCHEDULED, "accepted"),
    _at(0.2, State.SCHEDULED, State.RUNNING, "started container 0123456789ab"),
    _at(0.5, State.RUNNING, State.RUNNING, "its container was restarted; host ports are now 80/tcp -> 32801"),
    _at(0.7, State.RUNNING, State.FAILED, "its container exited with code 137 (killed by SIGKILL)"),
    _at(0.8, State.FAILED, State.SCHEDULED, "asked to start again"),
    _at(1.0, State.SCHEDULED, State.RUNNING, "started container ba9876543210"),
    _at(1.5, State.RUNNING, State.COMPLETED, "stopped on request"),
]
_SECONDS = {
    State.RUNNING: 1.0,
    State.SCHEDULED: 0.4,
    State.FAILED: 0.1,
    State.COMPLETED: 0.0,
    State.PENDING: 0.0,
}
# A second life, for an answer that only returns the sample's figures: a failed start, then a run.
_OTHER_HISTORY = [
    _at(0.0, None, State.SCHEDULED, "accepted"),
    _at(0.25, State.SCHEDULED, State.FAILED, "could not start task: image not found"),
    _at(2.3, State.FAILED, State.SCHEDULED, "asked to start again"),
    _at(2.65, State.SCHEDULED, State.RUNNING, "started container 0a1b2c3d4e5f"),
    _at(5.125, State.RUNNING, State.COMPLETED, "its container exited with code 0"),
]  # not in tenths of a second, as the sample is: an answer that rounds is told so
_OTHER_SECONDS = {State.RUNNING: 2.475, State.SCHEDULED: 0.6, State.FAILED: 2.05, State.COMPLETED: 0.0}


def _judge_seconds_in(answer) -> str | None:
    if not callable(answer):
        return "give a function: def seconds_in(history, state): ..., then answer = seconds_in"
    if problem := _judge_history(answer, "SAMPLE_HISTORY", SAMPLE_HISTORY, _SECONDS):
        return problem
    if problem := _judge_history(answer, "another history", _OTHER_HISTORY, _OTHER_SECONDS):
        return (
            f"on another history (a failed start, then a run of 2.475 s), {problem}; work from the one given"
        )
    return None


def _judge_history(answer, title: str, history: list[Transition], seconds: dict) -> str | None:
    for state, right in seconds.items():
        got = call(f"your seconds_in({title}, State.{state.name})", answer, list(history), state)
        if isinstance(got, timedelta):
            return "return a number of seconds, not a timedelta: (later - earlier).total_seconds()"
        if isinstance(got, bool) or not isinstance(got, int | float):
            return f"return a number of seconds; for {state} it returned {got!r}"
        if abs(got - right) < 1e-6:
            continue
        if got == 0:  # the sample's stretches are all under a second: either fault gives 0
            return (
                f"for {state} it gives 0, not {right}: either no stretch matched (compare each transition's "
                "dst with the State itself, t.dst is state) or timedelta.seconds dropped the fractions of a "
                "second (use total_seconds())"
            )
        if isinstance(got, int) and got < right:
            return (
                f"for {state} it gives {got}, not {right}: timedelta.seconds drops the fractions of a "
                "second; use total_seconds()"
            )
        if any(abs(got - round(right, digits)) < 1e-9 for digits in (0, 1, 2)):
            return (
                f"for {state} it gives {got}, not {right}: do not round; return the total_seconds() added up"
            )
        if state is State.COMPLETED:
            return (
                f"the last state has not ended: leave it out (0), rather than count it up to now "
                f"(your function gave {got})"
            )
        return (
            f"for {state} it gives {got}, not {right}: add up every stretch that begins with a move "
            "to that state and ends at the next move (RUNNING -> RUNNING ends one stretch and "
            "begins another)"
        )
    return None


def _whole_seconds(history, state):
    return sum(
        (b.time - a.time).seconds for a, b in zip(history, history[1:], strict=False) if a.dst is state
    )


def _until_now(history, state):
    ends = [t.time for t in history[1:]] + [datetime.now(UTC)]
    return sum((end - t.time).total_seconds() for t, end in zip(history, ends, strict=True) if t.dst is state)


def _sample_figures(history, state):  # the sample's answers, whatever the history
    return {State.RUNNING: 1.0, State.SCHEDULED: 0.4, State.FAILED: 0.1}.get(state, 0.0)


def _rounded(history, state):  # to a tenth: right on the sample, whose times are all in tenths
    pairs = zip(history, history[1:], strict=False)
    return round(sum((b.time - a.time).total_seconds() for a, b in pairs if a.dst is state), 1)


def _first_stretch_only(history, state):
    begin = next(t.time for t in history if t.dst is state)
    end = next((t.time for t in history if t.src is state and t.dst is not state), begin)
    return (end - begin).total_seconds()


q3 = Exercise(
    name="5.3",
    question="Write seconds_in(history, state): how many seconds a task spent in `state`, from its "
    "history (Transitions, oldest first), leaving out the last state, which has not ended. Then "
    "answer = seconds_in.",
    judge=_judge_seconds_in,
    hint_text="each Transition begins a stretch in its dst state that lasts until the next Transition's "
    "time; plot_timeline above walks the same pairs with zip(history, history[1:])",
    solution_code="""def seconds_in(history, state):
    return sum(
        (later.time - change.time).total_seconds()
        for change, later in zip(history, history[1:])
        if change.dst is state
    )


answer = seconds_in""",
    praise="try it on the web server: seconds_in(w.history(web.id), State.RUNNING).",
    wrong=[_whole_seconds, _until_now, _first_stretch_only, _sample_figures, _rounded, 1.0],
    setup=lambda: {"State": State},
)


# --- 5.4 -------------------------------------------------------------------------------------------


def _judge_exit_at_once(answer) -> str | None:
    answer = pair(answer)
    if answer == (State.SCHEDULED, State.FAILED):
        return None
    if answer == (State.RUNNING, State.FAILED):
        return (
            "the task was never RUNNING: run() waits until the command shows up beside init, and "
            "this one had ended before that, so nobody saw it run"
        )
    if answer == (State.SCHEDULED, State.COMPLETED):
        return "`true` went there because it exited with 0; this command exits with 5, a failure"
    if answer == (State.SCHEDULED, State.RUNNING):
        return "a start counts only once the command runs; this one ended at once, with code 5"
    if answer == (None, State.SCHEDULED):
        return "that is the first move, 'accepted'; answer the one recorded when the start ends"
    if answer and all(isinstance(s, State) for s in answer):
        return f"the worker records no {answer[0]} -> {answer[1]} here: the task was SCHEDULED as it started"
    return "answer a pair (src, dst) of States, e.g. (State.SCHEDULED, State.RUNNING)"


q4 = Exercise(
    name="5.4",
    question="A task's cmd is ['sh', '-c', 'exit 5']: it ends at once, with code 5. Which move does "
    "the worker record when run_task() starts it? Answer a pair (src, dst).",
    judge=_judge_exit_at_once,
    hint_text="compare with `true` and `nosuch` above: did anyone see this command run, and did it succeed?",
    solution_code="""five = Task(image=cube.DEMO_IMAGE, state=State.SCHEDULED, cmd=["sh", "-c", "exit 5"])
w.add_task(five)
w.run_task()
last = w.history(five.id)[-1]
print(last)
answer = (last.src, last.dst)""",
    praise="SCHEDULED -> FAILED: it never ran as far as anyone could see, and it did not succeed. (Were "
    "the worker to catch sh in the millisecond it runs, it would record SCHEDULED -> RUNNING, then "
    "RUNNING -> FAILED at the next update_tasks(): what it saw. Measured here: 0 of 100 starts.)",
    wrong=[
        (State.RUNNING, State.FAILED),
        (State.SCHEDULED, State.COMPLETED),
        (State.SCHEDULED, State.RUNNING),
        State.FAILED,
    ],
    setup=_engine_setup("5-4"),
    teardown=_engine_teardown,
)


# --- 5.5 -------------------------------------------------------------------------------------------

RECONCILE_CHOICES = {
    "A": "start a second container beside it",
    "B": "adopt the exited container, and record the task as RUNNING",
    "C": "remove that container and start the task again in a new one",
    "D": "record the task as FAILED with the container's exit code",
}


def _judge_reconcile(answer) -> str | None:
    letter = answer.strip().upper() if isinstance(answer, str) else answer
    if letter == "D":
        return None
    return {
        "A": "a task never has two containers: run(adopt=True) looks for the task's containers first",
        "B": "the container is no longer running: recording RUNNING would report a state nobody saw",
        "C": (
            "that container started and did its job (and failed at it): starting it again would carry the "
            "request out twice. A container that never started may be replaced; one that ran may not"
        ),
    }.get(letter, f"answer one letter of {', '.join(RECONCILE_CHOICES)}")


q5 = Exercise(
    name="5.5",
    question="Say the killed worker's container had already exited (with code 1) when the survivor "
    "opened the file. What does the survivor do with the task? Answer a letter: "
    + "; ".join(f"{k}: {v}" for k, v in RECONCILE_CHOICES.items()),
    judge=_judge_reconcile,
    hint_text="the container did start: its command ran, while no worker was alive. Would starting it "
    "again carry the request out once, or twice?",
    solution_code="""answer = "D"  # it ran once: adopted with its exit code, never run again""",
    praise="a request is carried out at most once: a container that started is adopted with what it did "
    "(COMPLETED for exit code 0, FAILED with the code otherwise); only one that never started is replaced.",
    wrong=["A", "B", "C", "adopt"],
)


# --- 5.6 -------------------------------------------------------------------------------------------

CRASHES = ("before create", "after create", "after start", "after the record")
DRIFTS = ("exit 0", "exit 3", "kill", "rm", "restart", "pause")
# What the worker records at its first look: after a crash at each point of a job's start, as the next
# worker reconciles (the job, sh -c "sleep 1; exit 3", has ended if it ran before the crash), and after
# each drift, at the next update_tasks().
OUTCOMES = {
    "before create": (State.RUNNING, "no container was made: the next worker starts the job, once"),
    "after create": (State.RUNNING, "the container never started: it is replaced, and the job starts once"),
    "after start": (
        State.FAILED,
        "the job ran while no worker watched: its container is adopted with its exit code",
    ),
    "after the record": (State.FAILED, "RUNNING was recorded; the next worker looks, and sees exit code 3"),
    "exit 0": (State.COMPLETED, "exit code 0: the job did its work"),
    "exit 3": (State.FAILED, "any exit code but 0 is a failure"),
    "kill": (State.FAILED, "killed by SIGKILL: exit code 137, and nobody asked for it"),
    "rm": (State.FAILED, "the container is gone, and with it all the engine knew"),
    "restart": (State.RUNNING, "the container runs again (perhaps on another host port): still RUNNING"),
    "pause": (State.RUNNING, "a paused container is still there, and will go on: RUNNING, paused"),
}


def _judge_predictions(answer) -> str | None:
    if not isinstance(answer, dict):
        return 'answer a dict from each case to a State: {"before create": State.RUNNING, ...}'
    missing = [case for case in OUTCOMES if case not in answer]
    if missing:
        return f"predict every case; missing: {', '.join(missing)}"
    for case, (state, _why) in OUTCOMES.items():
        if not isinstance(answer[case], State):
            return f"{case!r}: answer a State, such as State.RUNNING, not {answer[case]!r}"
        if answer[case] is not state:
            return f"{case!r}: not {answer[case]}. Think again: {_nudge(case)}"
    return None


def _nudge(case: str) -> str:
    return {
        "before create": "when it died, the worker had only written down what it meant to do",
        "after create": "a container that was made but never started has run nothing",
        "after start": "the job has run, and ended, while no worker was alive",
        "after the record": "what was recorded is no longer true: the job has ended since",
        "restart": "does a restarted container run?",
        "pause": "is a paused container gone, or ended?",
    }.get(case, "what exit code does the engine report, and what does cube record for it?")


q6 = Exercise(
    name="5.6",
    question="Predict what the worker records in each case of the crash lab when it first looks: after a "
    "crash at each point of a job's start, as the next worker reconciles; after each drift, at the next "
    "update_tasks(). Answer a dict from each case to a State.",
    judge=_judge_predictions,
    hint_text="for a crash: did the job run while no worker was alive? For a drift: is the container "
    "still there and running, and if it ended, with which exit code?",
    solution_code="""answer = {
    "before create": State.RUNNING,  # nothing had run: the next worker starts the job, once
    "after create": State.RUNNING,  # never started: replaced, and the job starts once
    "after start": State.FAILED,  # it ran while no worker watched: adopted with its exit code, 3
    "after the record": State.FAILED,  # RUNNING was recorded; the next look sees exit code 3
    "exit 0": State.COMPLETED,
    "exit 3": State.FAILED,
    "kill": State.FAILED,  # 137
    "rm": State.FAILED,  # gone, with all the engine knew
    "restart": State.RUNNING,  # perhaps on another host port
    "pause": State.RUNNING,  # paused, not gone
}""",
    praise="each request carried out at most once, and each drift seen as it is. The table below runs "
    "every case for real.",
    wrong=[
        {case: State.RUNNING for case in OUTCOMES},
        {case: state for case, (state, _) in OUTCOMES.items()} | {"after start": State.RUNNING},
        {case: state for case, (state, _) in OUTCOMES.items()} | {"pause": State.FAILED},
        {"before create": State.RUNNING},
        {case: state.name for case, (state, _) in OUTCOMES.items()},
    ],
    setup=lambda: {"State": State},
)
