"""Exercises of notebook 04: putting it together. 4.1 and 4.2 start and stop containers through the
learner's worker (the reference's in tests); 4.4 asks the engine which containers a filter lists."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import cube.web
from cube.docker import GONE, Docker
from cube.exercises import Exercise, Wrong, nb03, pair, practice_name, remove_containers
from cube.image import DEMO_IMAGE
from cube.judge import Bench, call, error_of
from cube.observe import DockerResult
from cube.state import State, Transition
from cube.task import LABEL_WORKER, Task
from cube.worker import Worker


def _judge_closing(answer) -> str | None:
    answer = pair(answer)
    if answer is None:
        return "answer a pair: (the page's text, the worker's record of the task)"
    text, record = answer
    if not isinstance(text, str) or not isinstance(record, Task):
        return "the pair is (text, record): a string from cube.web.page(port), then worker.db[task.id]"
    if not record.container_id:
        return "the record has no container id: add the task as SCHEDULED and call run_task"
    short = record.container_id[:12]
    if text != f"Hello from {short}":
        return f"the page {text!r} should name the task's container, {short}"
    if record.state is not State.COMPLETED:
        return f"the task is still {record.state}: ask for COMPLETED with add_task and run_task"
    seen = Docker().inspect(record.container_id)
    if seen.status != GONE:
        return f"the db says COMPLETED, but the engine still has container {short} ({seen.status})"
    return None


def _setup_closing() -> dict:
    cls, _ = nb03.your_worker()
    return {
        "worker": cls(practice_name()),
        "Task": Task,
        "State": State,
        "DEMO_IMAGE": DEMO_IMAGE,
        "cube": cube,
    }


q1 = Exercise(
    name="4.1",
    question="Run the closing program yourself with `worker`: start a new task, fetch its page with "
    "cube.web.page(port), stop it, and answer (page text, the worker's record of the task).",
    judge=_judge_closing,
    hint_text="the port is in run_task()'s result, result.host_ports['80/tcp']. To stop, do as listing "
    "4.13: copy result.container_id into the task, set its state to COMPLETED, add it, run_task",
    solution_code="""mine = Task(image=DEMO_IMAGE, state=State.SCHEDULED)
worker.add_task(mine)
result = worker.run_task()
text = cube.web.page(result.host_ports["80/tcp"])
mine.container_id = result.container_id
mine.state = State.COMPLETED
worker.add_task(mine)
worker.run_task()
answer = (text, worker.db[mine.id])""",
    praise="one task, one container: its page named it, and the worker stopped and removed it.",
    wrong=[
        (
            "Hello from 0123456789ab",
            Task(image=DEMO_IMAGE, state=State.RUNNING, container_id="0123456789ab" * 5),
        ),
        ("Hello from 0123456789ab", Task(image=DEMO_IMAGE, state=State.COMPLETED, container_id="f" * 64)),
        ("Hello from 0123456789ab", Task(image=DEMO_IMAGE, state=State.COMPLETED)),
        "Hello from 0123456789ab",
    ],
    setup=_setup_closing,
    teardown=lambda names: remove_containers(names["worker"].name),
)


def _judge_stop(stop, bench: Bench) -> str | None:
    cls, _ = nb03.your_worker()
    bench.workers.add(bench.prefix)
    w = cls(bench.prefix)
    t = bench.task()
    w.add_task(t)
    started = w.run_task()
    if error_of(started) or not started.container_id:
        return f"the check could not start a task to stop: {error_of(started)}"
    short = started.container_id[:12]
    asked, add_task = [], w.add_task  # the requests the learner's stop queues, as they were queued

    def recorded(request):
        asked.append(replace(request))
        return add_task(request)

    w.add_task = recorded
    result = call("your stop(worker, task)", stop, w, t)
    seen = bench.engine.inspect(started.container_id)
    rec = w.db.get(t.id)
    if seen.status != GONE:
        if any(q.id == t.id for q in w.queue):
            return f"container {short} still runs and your request waits in the queue: call worker.run_task()"
        if rec is not None and rec.state is State.COMPLETED and error_of(result):
            return (
                f"container {short} still runs and the worker refused your request ({error_of(result)!r}): "
                "worker.db[task.id] is the worker's record itself, not a copy, so changing it made the "
                "worker compare COMPLETED with COMPLETED. Queue a new request: replace(task, state=...)"
            )
        if rec is not None and rec.state is State.COMPLETED:
            return (
                f"the db says COMPLETED, but container {short} still runs: changing the worker's record "
                "does not stop anything. Queue a stop request and let the worker run it"
            )
        if not asked:
            return (
                f"container {short} still runs and your stop queued no request: worker.add_task(a copy of "
                "task asking COMPLETED), then return worker.run_task()"
            )
        why = error_of(result) or "no error"
        return (
            f"container {short} still runs (the stop said {why!r}): the caller's task has no container id; "
            "copy it from worker.db[task.id], as listing 4.13 copies it from the start's result"
        )
    if rec is None or rec.state is not State.COMPLETED:
        return f"container {short} is gone, but the db says {rec and rec.state}"
    if len(asked) != 1:
        return f"the container is gone, but your stop queued {len(asked)} requests: one stop is one request"
    if asked[0].container_id != started.container_id:
        return (
            f"the container is gone, but your request carried container_id {asked[0].container_id!r}: copy "
            "it in, as listing 4.13 does (container_id=worker.db[task.id].container_id); the worker you "
            "built found it itself, the book's would not"
        )
    if not isinstance(result, DockerResult) or error_of(result):
        return f"the container is gone, but stop returned {result!r}: return what worker.run_task() returned"
    return None


q2 = Exercise(
    name="4.2",
    question="Write stop(worker, task): ask `worker` to stop `task` as listing 4.13 does, with the "
    "container id copied in from the worker's db (the caller's task has none), and return run_task's "
    "result. The panel's Stop button does the same.",
    judge=_judge_stop,
    hint_text="request = replace(task, state=State.COMPLETED, container_id=worker.db[task.id].container_id); "
    "worker.add_task(request); return worker.run_task()",
    solution_code="""def stop(worker, task):
    known = worker.db[task.id]
    worker.add_task(replace(task, state=State.COMPLETED, container_id=known.container_id))
    return worker.run_task()""",
    praise="the container id travels with the request, as in listing 4.13; cube's worker looks it up in "
    "its own db instead, so its callers need not.",
    names=("stop",),
    engine=True,
    wrong=[
        Wrong(
            "def stop(worker, task):\n"
            "    worker.add_task(replace(task, state=State.COMPLETED))\n"
            "    return worker.run_task()",
            "copy it from worker.db[task.id]",
        ),
        Wrong(
            "def stop(worker, task):\n"
            "    known = worker.db[task.id]\n"
            "    worker.add_task(replace(task, state=State.COMPLETED, container_id=known.container_id))",
            "call worker.run_task()",
        ),
        Wrong(
            "def stop(worker, task):\n"
            "    known = worker.db[task.id]\n"
            "    known.state = State.COMPLETED\n"
            "    worker.add_task(known)\n"
            "    return worker.run_task()",
            "is the worker's record itself, not a copy",
        ),
        Wrong(
            "def stop(worker, task):\n    worker.db[task.id].state = State.COMPLETED",
            "changing the worker's record does not stop anything",
        ),
        Wrong(
            "def stop(worker, task):\n"
            "    known = worker.db[task.id]\n"
            "    worker.add_task(replace(task, state=State.COMPLETED, container_id=known.container_id))\n"
            "    worker.run_task()",
            "stop returned None",
        ),
        Wrong(
            "def stop(worker, task):\n"
            "    known = worker.db[task.id]\n"
            "    worker.add_task(replace(task, state=State.COMPLETED, container_id=known.container_id))\n"
            "    worker.run_task()\n"
            "    return 'stopped'",
            "stop returned 'stopped'",
        ),
        Wrong(
            "def stop(worker, task):\n"
            "    known = worker.db[task.id]\n"
            "    request = replace(task, state=State.COMPLETED, container_id=known.container_id)\n"
            "    worker.add_task(request)\n"
            "    worker.add_task(request)\n"
            "    return worker.run_task()",
            "one stop is one request",
        ),
    ],
    setup=lambda: {"replace": replace, "State": State},
)


def _judge_again(answer) -> str | None:
    if not isinstance(answer, list) or not all(isinstance(t, Transition) for t in answer):
        return "pass the task's history: cube_panel.worker.history(bad.id), a list of Transitions"
    if not answer:
        return "this history is empty: pass cube_panel.worker.history(bad.id)"
    if len({t.task_id for t in answer}) != 1:
        return "this history holds several tasks; pass one task's: cube_panel.worker.history(bad.id)"
    if not any(t.src is State.FAILED and t.dst is State.SCHEDULED for t in answer):
        return (
            "this history has no FAILED -> SCHEDULED: a task made by Enqueue starts from new. Ask for the "
            "same task again: cube_panel.worker.add_task(replace(bad, state=State.SCHEDULED)), then run_task"
        )
    return None


def _setup_again() -> dict:
    worker = Worker(practice_name())
    bad = Task(name=f"bad-{uuid.uuid4().hex[:6]}", image="cube/no-such-image:1.0", state=State.SCHEDULED)
    worker.add_task(bad)
    worker.run_task()
    return {"cube_panel": SimpleNamespace(worker=worker), "bad": bad, "replace": replace, "State": State}


def _fake_history(*moves) -> list[Transition]:
    task_id = uuid.uuid4()
    return [Transition(datetime.now(UTC), task_id, src, dst, "") for src, dst in moves]


q3 = Exercise(
    name="4.3",
    question="Ask cube's worker, cube_panel.worker, to start the same FAILED task `bad` again (same id), "
    "run it, and pass the task's history.",
    judge=_judge_again,
    hint_text="Enqueue makes a new task; the worker itself takes the old one back with "
    "add_task(replace(bad, state=State.SCHEDULED)). Then run_task, then history(bad.id)",
    solution_code="""cube_panel.worker.add_task(replace(bad, state=State.SCHEDULED))
cube_panel.worker.run_task()
answer = cube_panel.worker.history(bad.id)""",
    praise="FAILED -> SCHEDULED, the move cube adds to listing 4.10: the same task, tried again (and "
    "failed again: its image is still missing).",
    wrong=[
        _fake_history((None, State.SCHEDULED), (State.SCHEDULED, State.FAILED)),
        _fake_history(),
        Task(image="cube/no-such-image:1.0", state=State.FAILED),
        [],
    ],
    setup=_setup_again,
    teardown=lambda names: names["cube_panel"].worker.close(),
)

WORKER_3 = "nb04-worker-3"


def _judge_filter(answer) -> str | None:
    if not isinstance(answer, str):
        return "answer the filter as a string, as you would type it after docker ps --filter"
    text = answer.strip().removeprefix("--filter").strip()
    kind, _, value = text.partition("=")
    if kind.strip() == "name":
        return "a name is a task's; the label cube.worker says which worker made a container"
    if kind != "label" or not value:
        return "a label filter has the form label=KEY=VALUE"
    key, _, wanted = value.partition("=")
    if not wanted:
        return f"label={key} lists the containers of every worker that has such a label: say which worker"
    engine = Docker()
    expected = {c.container_id for c in engine.containers({LABEL_WORKER: WORKER_3})}
    if not expected:
        return f"the engine has no container of {WORKER_3} now: run the cells above first, then check again"
    listed = {c.container_id for c in engine.containers({key: wanted})}
    if listed == expected:
        return None
    if not listed:
        return f"Docker lists no container for the filter {text!r}: spaces count, and so does each letter"
    return f"that lists {len(listed)} container(s), but not those of {WORKER_3}: cube.worker names the worker"


def _setup_filter() -> dict:
    worker = Worker(WORKER_3)
    worker.add_task(Task(image=DEMO_IMAGE, state=State.SCHEDULED))
    worker.run_task()
    return {"worker_3": worker}


q4 = Exercise(
    name="4.4",
    question=f"Write the filter that makes docker ps list only the containers of worker {WORKER_3}, as a "
    "string: the part after --filter. The check asks the engine what it lists.",
    judge=_judge_filter,
    hint_text="docker ps --filter takes label=KEY=VALUE; the key that names a container's worker is "
    "cube.worker",
    solution_code=f'answer = "label=cube.worker={WORKER_3}"',
    praise=f"docker ps --filter label=cube.worker={WORKER_3}; in the SDK, "
    f"containers.list(filters={{'label': 'cube.worker={WORKER_3}'}}).",
    wrong=[
        "label=cube.worker",
        "name=nb04-web-3",
        f"label=cube.task={WORKER_3}",
        f"label=cube.worker = {WORKER_3}",
        f"cube.worker={WORKER_3}",
    ],
    setup=_setup_filter,
    teardown=lambda names: (names["worker_3"].close(), remove_containers(WORKER_3)),
)


def _judge_lost(answer) -> str | None:
    answer = pair(answer)
    if answer is None:
        return "answer a pair: (state, exit code)"
    state, code = answer
    if not isinstance(state, State):
        return "the first item is a State, e.g. State.COMPLETED"
    if state is State.COMPLETED:
        return "only exit code 0 is COMPLETED; a container killed by a signal did not do its work"
    if state is State.RUNNING:
        return "update_tasks sees the container is no longer running: the task does not stay RUNNING"
    if state is not State.FAILED:
        return f"the task was RUNNING; {state} cannot follow it"
    if isinstance(code, bool) or not isinstance(code, int):
        return f"the second item is the exit code, a number such as 0 or 1, not {code!r}"
    if code != 137:
        return "an exit by a signal is 128 + the signal's number, and SIGKILL is 9"
    return None


q5 = Exercise(
    name="4.5",
    question="A RUNNING task's container is killed with SIGKILL behind cube's worker's back. After "
    "update_tasks(), what are the task's state and exit code? Answer a pair.",
    judge=_judge_lost,
    hint_text="which exit codes count as the task's work done? And what exit code does a process killed "
    "by a signal get: 128 plus what?",
    solution_code="answer = (State.FAILED, 137)  # 128 + 9, SIGKILL",
    praise="FAILED with exit code 137: killed by SIGKILL (128 + 9). Only exit code 0 counts as COMPLETED.",
    wrong=[
        (State.COMPLETED, 137),
        (State.FAILED, 9),
        (State.FAILED, 0),
        (State.FAILED, "137"),
        State.FAILED,
        ["FAILED", 137],
    ],
    setup=lambda: {"State": State},
)
