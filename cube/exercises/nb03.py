"""Exercises of notebook 03: the worker. Exercise 3.3 starts and stops a container on the engine."""

from dataclasses import replace

import docker

import cube
from cube.docker import DockerResult, connect
from cube.exercises import Exercise, practice_name, remove_containers
from cube.image import DEMO_IMAGE
from cube.state import State
from cube.task import Task
from cube.worker import Worker


def _judge_go_copy(answer) -> str | None:
    if not isinstance(answer, bool):
        return "answer True (the queued task sees port 8080) or False (it does not)"
    if answer:
        return None
    return (
        "Go copies the struct, field by field, but ExposedPorts is a map, and a copied map value still "
        "points at the same map: the caller and the queue share it"
    )


q1 = Exercise(
    name="3.1",
    question='In Go, after w.AddTask(t), the caller runs t.ExposedPorts["8080/tcp"] = struct{}{}. '
    "Does the task waiting in the queue now expose 8080/tcp? Answer True or False.",
    judge=_judge_go_copy,
    hint_text="a Go struct is copied field by field; what does copying a field that holds a map copy?",
    solution_code="answer = True  # the copy shares the map: Go's copy is shallow",
    praise="Go's copy is shallow: the string and number fields are the queue's own, the maps are shared. "
    "cube deep-copies and stores the request as JSON, so nothing is shared.",
    wrong=[False, "yes", 1],
)


def _judge_refused(answer) -> str | None:
    right = {State.PENDING, State.SCHEDULED}
    if not isinstance(answer, set | frozenset | list | tuple):
        return "give a set of states, such as {State.PENDING}"
    answer = set(answer)
    if answer == right:
        return None
    if answer & {State.RUNNING, State.FAILED}:
        return (
            "RUNNING -> RUNNING and RUNNING -> FAILED are in the map, so the transition is valid: run_task "
            "refuses those requests with another error, 'asks for nothing'"
        )
    if State.COMPLETED in answer:
        return "RUNNING -> COMPLETED is valid: it is how a task is stopped"
    missing = right - answer
    return f"the map also has no move from RUNNING to {', '.join(sorted(s.name for s in missing))}"


q2 = Exercise(
    name="3.2",
    question="The worker's record of a task says RUNNING. For which requested states does run_task "
    "answer 'invalid transition'? Answer a set of States.",
    judge=_judge_refused,
    hint_text="run_task checks valid_state_transition(RUNNING, requested) first; look up RUNNING in "
    "cube.STATE_TRANSITION_MAP",
    solution_code="answer = {State.PENDING, State.SCHEDULED}",
    praise="only PENDING and SCHEDULED are missing from RUNNING's list in the map. RUNNING and FAILED "
    "pass that check and are refused next, as requests that ask for nothing.",
    wrong=[
        {State.PENDING, State.SCHEDULED, State.RUNNING, State.FAILED},
        {State.SCHEDULED},
        {State.PENDING, State.SCHEDULED, State.COMPLETED},
        State.SCHEDULED,
    ],
    setup=lambda: {"State": State},
)


def _judge_always(answer) -> str | None:
    if isinstance(answer, DockerResult):
        return "pass the worker's record of the task, practice.db[task.id], not the result of run_task"
    if not isinstance(answer, Task):
        return "pass the worker's record of the task: practice.db[task.id]"
    if answer.restart_policy != "always":
        return f"the task's restart_policy is {answer.restart_policy!r}: make it 'always'"
    if not answer.container_id:
        return "this task never had a container: add it as SCHEDULED and call run_task to start it"
    if answer.state is not State.COMPLETED:
        return f"the task is {answer.state}: enqueue it as COMPLETED and call run_task again to stop it"
    try:
        container = connect().containers.get(answer.container_id)
    except docker.errors.NotFound:
        return None
    return f"the engine still has its container, {container.status}: was it really stopped by the worker?"


def _setup_worker() -> dict:
    return {
        "practice": Worker(practice_name()),
        "Task": Task,
        "State": State,
        "cube": cube,
        "replace": replace,
    }


def _close_worker(names: dict) -> None:
    names["practice"].close()
    remove_containers(names["practice"].name)


q3 = Exercise(
    name="3.3",
    question="Start a task with restart_policy='always' through the worker `practice`, stop it through "
    "`practice`, and pass the worker's record of it. Did Docker bring the container back?",
    judge=_judge_always,
    hint_text="two requests: the task as SCHEDULED, then replace(task, state=State.COMPLETED), each "
    "followed by practice.run_task(). Leave the name out (Docker picks one)",
    solution_code="""steady = Task(image=cube.DEMO_IMAGE, state=State.SCHEDULED, restart_policy="always")
practice.add_task(steady)
practice.run_task()
practice.add_task(replace(steady, state=State.COMPLETED))
practice.run_task()
answer = practice.db[steady.id]""",
    praise="COMPLETED, and no container came back: Docker does not apply a restart policy to a container "
    "that was stopped by hand (and cube also removes it). The policy is for containers that exit on "
    "their own.",
    wrong=[
        Task(image=DEMO_IMAGE, state=State.RUNNING, restart_policy="always", container_id="0" * 64),
        Task(image=DEMO_IMAGE, state=State.COMPLETED, container_id="0" * 64),
        Task(image=DEMO_IMAGE, state=State.COMPLETED, restart_policy="always"),
        DockerResult(action="stop", result="success"),
    ],
    setup=_setup_worker,
    teardown=_close_worker,
)


def _judge_failed_stop(answer) -> str | None:
    if answer is State.RUNNING:
        return None
    if answer is State.COMPLETED:
        return (
            "COMPLETED is what the book's StopTask records whatever Docker said (listing 4.5); cube does not"
        )
    if answer is State.FAILED:
        return "nothing failed in the container: the engine was never reached, so nothing changed"
    if isinstance(answer, State):
        return f"the task was RUNNING before the request; would {answer} be true of its container?"
    return "answer one of the five States, e.g. State.PENDING"


q4 = Exercise(
    name="3.4",
    question="A stop request reaches the worker while no engine answers. Which state does the worker's "
    "db give the task afterwards?",
    judge=_judge_failed_stop,
    hint_text="the container is untouched. What should the db say about a container that still runs?",
    solution_code="answer = State.RUNNING  # nothing happened to the container, so nothing changes",
    praise="the db keeps saying what is true of the container, and the request waits first in the queue.",
    wrong=[State.COMPLETED, State.FAILED, State.SCHEDULED, "RUNNING"],
    setup=lambda: {"State": State},
)


def _judge_count(answer) -> str | None:
    if isinstance(answer, bool) or not isinstance(answer, int):
        return "answer a whole number"
    if answer == 2:
        return None
    if answer == 3:
        return "task_count counts different task ids, not calls to add_task: web and its stop request are one"
    if answer == 1:
        return "the refused draft counts too: task_count counts every task id given to add_task"
    return "count the different task ids given to add_task"


q5 = Exercise(
    name="3.5",
    question="A new worker is given task web as SCHEDULED, then web again as COMPLETED, then a PENDING "
    "draft that run_task refuses. What is its task_count?",
    judge=_judge_count,
    hint_text="try it: a new Worker, three add_task calls (add_task alone needs no engine), then "
    "read its task_count",
    solution_code="""counter = Worker("nb03-count")
web = Task(image=cube.DEMO_IMAGE, state=State.SCHEDULED)
counter.add_task(web)
counter.add_task(replace(web, state=State.COMPLETED))
counter.add_task(Task(image=cube.DEMO_IMAGE))  # PENDING: run_task would refuse it
answer = counter.task_count
counter.close()""",
    praise="two different ids: web (twice) and the draft, which counts although it was refused.",
    wrong=[3, 1, 0, "2"],
    setup=lambda: {"Worker": Worker, "Task": Task, "State": State, "cube": cube, "replace": replace},
)
