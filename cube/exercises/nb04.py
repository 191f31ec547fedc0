"""Exercises of notebook 04: putting it together. Exercise 4.1 starts and stops a container; 4.3 asks
the engine for an image that does not exist."""

import re
import uuid
from dataclasses import replace
from types import SimpleNamespace

import cube.web
from cube.exercises import Exercise, practice_name, remove_containers
from cube.image import DEMO_IMAGE
from cube.state import State, Transition
from cube.task import Task
from cube.widgets import ControlPanel
from cube.worker import Worker


def _judge_closing(answer) -> str | None:
    if not (isinstance(answer, tuple) and len(answer) == 2):
        return "answer a pair: (the page's text, the worker's record of the task)"
    text, record = answer
    if not isinstance(text, str) or not isinstance(record, Task):
        return "the pair is (text, record): a string from cube.web.page(port), then worker.db[task.id]"
    if not record.container_id:
        return "the task never had a container: add it as SCHEDULED and call run_task"
    if text != f"Hello from {record.container_id[:12]}":
        return f"the page {text!r} should name the task's container, {record.container_id[:12]}"
    if record.state is not State.COMPLETED:
        return f"the task is still {record.state}: ask for COMPLETED with add_task and run_task"
    return None


def _setup_closing() -> dict:
    return {
        "worker": Worker(practice_name()),
        "Task": Task,
        "State": State,
        "DEMO_IMAGE": DEMO_IMAGE,
        "replace": replace,
        "cube": cube,
    }


def _close_worker(names: dict) -> None:
    names["worker"].close()
    remove_containers(names["worker"].name)


q1 = Exercise(
    name="4.1",
    question="Run the closing program yourself with `worker`: start a new task, fetch its page with "
    "cube.web.page(port), stop it, and answer (page text, the worker's record of the task).",
    judge=_judge_closing,
    hint_text="the port is in run_task()'s result, result.host_ports['80/tcp']; stop by adding "
    "replace(task, state=State.COMPLETED) and calling run_task again",
    solution_code="""mine = Task(image=DEMO_IMAGE, state=State.SCHEDULED)
worker.add_task(mine)
port = worker.run_task().host_ports["80/tcp"]
text = cube.web.page(port)
worker.add_task(replace(mine, state=State.COMPLETED))
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
    teardown=_close_worker,
)


def _judge_who_says(answer) -> str | None:
    answer = getattr(answer, "__func__", answer)  # panel.stop counts as ControlPanel.stop
    if answer is ControlPanel.stop or answer == "ControlPanel.stop":
        return None
    if answer in (Worker.run_task, Worker.stop_task, "Worker.run_task", "Worker.stop_task"):
        return (
            "the worker never hears of that click: the panel finds no RUNNING task to stop and says so "
            "itself. Look for the sentence in cube/widgets.py"
        )
    if isinstance(answer, str):
        return "give the method itself, e.g. Worker.run_task (no quotes, no brackets)"
    return "look for the sentence in cube/widgets.py: which method of ControlPanel writes it?"


q2 = Exercise(
    name="4.2",
    question="After a task is stopped, Stop is clicked again. Which method writes the message the panel "
    "shows? Answer the method, e.g. Worker.run_task.",
    judge=_judge_who_says,
    hint_text="search cube/widgets.py for the words of the message",
    solution_code="answer = ControlPanel.stop",
    praise="ControlPanel.stop: it finds no RUNNING task chosen, and never asks the worker.",
    wrong=[Worker.run_task, Worker.stop_task, ControlPanel.run_next, "Worker.run_task", 3],
    setup=lambda: {"ControlPanel": ControlPanel, "Worker": Worker},
)


def _judge_again(answer) -> str | None:
    if not isinstance(answer, list) or not all(isinstance(t, Transition) for t in answer):
        return "pass the task's history: panel.worker.history(bad.id), a list of Transitions"
    if not answer:
        return "this history is empty: pass panel.worker.history(bad.id)"
    if len({t.task_id for t in answer}) != 1:
        return "this history holds several tasks; pass one task's: panel.worker.history(bad.id)"
    if not any(t.src is State.FAILED and t.dst is State.SCHEDULED for t in answer):
        return (
            "this history has no FAILED -> SCHEDULED: a task made by Enqueue starts from new. Ask for the "
            "same task again: panel.worker.add_task(replace(bad, state=State.SCHEDULED)), then run_task"
        )
    return None


def _setup_again() -> dict:
    worker = Worker(practice_name())
    bad = Task(name=f"bad-{uuid.uuid4().hex[:6]}", image="cube/no-such-image:1.0", state=State.SCHEDULED)
    worker.add_task(bad)
    worker.run_task()
    return {"panel": SimpleNamespace(worker=worker), "bad": bad, "replace": replace, "State": State}


def _fake_history(*moves) -> list[Transition]:
    from datetime import UTC, datetime

    task_id = uuid.uuid4()
    return [Transition(datetime.now(UTC), task_id, src, dst, "") for src, dst in moves]


q3 = Exercise(
    name="4.3",
    question="Ask the panel's worker to start the same FAILED task `bad` again (same id), run it, and pass "
    "the task's history.",
    judge=_judge_again,
    hint_text="Enqueue makes a new task; the worker itself takes the old one back with "
    "add_task(replace(bad, state=State.SCHEDULED)). Then run_task, then history(bad.id)",
    solution_code="""panel.worker.add_task(replace(bad, state=State.SCHEDULED))
panel.worker.run_task()
answer = panel.worker.history(bad.id)""",
    praise="FAILED -> SCHEDULED, the move cube adds to listing 4.10: the same task, tried again (and "
    "failed again: its image is still missing).",
    wrong=[
        _fake_history((None, State.SCHEDULED), (State.SCHEDULED, State.FAILED)),
        _fake_history(),
        Task(image="cube/no-such-image:1.0", state=State.FAILED),
        [],
    ],
    setup=_setup_again,
    teardown=lambda names: names["panel"].worker.close(),
)


def _judge_filter(answer) -> str | None:
    if isinstance(answer, dict):
        answer = answer.get("label")
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        answer = f"label={answer}"
    if not isinstance(answer, str):
        return "answer the filter as a string, as you would type it after docker ps --filter"
    text = re.sub(r"\s+", "", answer.removeprefix("--filter").strip())
    if text == "label=cube.worker=nb04-worker-3":
        return None
    if text == "label=cube.worker":
        return "that lists the containers of every cube worker; say which worker: cube.worker=..."
    if text.startswith("label=cube.task"):
        return "cube.task holds a task's id; the worker's name is in the label cube.worker"
    if text.startswith("name="):
        return "names are the tasks'; the label cube.worker says which worker made a container"
    return "the filter has the form label=KEY=VALUE, with the key cube.worker"


q4 = Exercise(
    name="4.4",
    question="Write the filter that makes docker ps list only the containers of worker nb04-worker-3, "
    "as a string: the part after --filter.",
    judge=_judge_filter,
    hint_text="look at the command line shown above for nb04-worker-2, and change the worker's name",
    solution_code='answer = "label=cube.worker=nb04-worker-3"',
    praise="docker ps --filter label=cube.worker=nb04-worker-3; in the SDK, "
    "containers.list(filters={'label': 'cube.worker=nb04-worker-3'}).",
    wrong=[
        "label=cube.worker",
        "name=nb04-web-3",
        "label=cube.task=nb04-worker-3",
        "cube.worker=nb04-worker-2",
    ],
)


def _judge_lost(answer) -> str | None:
    if not (isinstance(answer, tuple) and len(answer) == 2):
        return "answer a pair: (state, exit code)"
    state, code = answer
    if not isinstance(state, State):
        return "the first item is a State, e.g. State.COMPLETED"
    if state is State.COMPLETED:
        return "only exit code 0 is COMPLETED; a container killed by a signal did not do its work"
    if state is State.RUNNING:
        return "update_tasks saw the container gone from running: the task does not stay RUNNING"
    if state is not State.FAILED:
        return f"the task was RUNNING; {state} cannot follow it"
    if code != 137:
        return "an exit by a signal is 128 + the signal's number, and SIGKILL is 9"
    return None


q5 = Exercise(
    name="4.5",
    question="A RUNNING task's container is killed with SIGKILL behind the worker's back. After "
    "update_tasks(), what are the task's state and exit code? Answer a pair.",
    judge=_judge_lost,
    hint_text="read the reason update_tasks() recorded above for nb04-web-1",
    solution_code="answer = (State.FAILED, 137)  # 128 + 9, SIGKILL",
    praise="FAILED with exit code 137: killed by SIGKILL (128 + 9). Only exit code 0 counts as COMPLETED.",
    wrong=[(State.COMPLETED, 137), (State.FAILED, 9), (State.FAILED, 0), State.FAILED],
    setup=lambda: {"State": State},
)
