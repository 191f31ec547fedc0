"""Exercises of notebook 06: the worker's API."""

import uuid

import httpx
from pydantic import ValidationError

import cube
from cube.api import Server, TaskEvent
from cube.exercises import Exercise, pair
from cube.judge import Fault, call
from cube.worker import Worker

# --- 6.1 -------------------------------------------------------------------------------------------


def _judge_start(answer) -> str | None:
    if not callable(answer):
        return "give a function: def start(api, name): ..., then answer = start"
    worker = Worker(f"exercise-6-1-{uuid.uuid4().hex[:8]}")
    server = Server(worker)
    worker.stop()  # no loop takes the request: it waits in the queue, and no container is made
    answers: list[httpx.Response] = []
    api = httpx.Client(base_url=server.url, timeout=10, event_hooks={"response": [answers.append]})
    try:
        try:
            got, raised = call('your start(api, "nb06-check")', answer, api, "nb06-check"), None
        except Fault as e:  # what the worker answered comes first: it is likely the cause
            got, raised = None, str(e)
        queued = worker.queue
        if not queued:
            if answers and answers[-1].status_code >= 400:
                r = answers[-1]
                r.read()
                return f"the worker refused the request with {r.status_code}: {r.json().get('error', r.text)}"
            return (
                raised
                or "the worker got no request: send POST /tasks with the client the function is given, api"
            )
        task = queued[-1]
        if len(queued) > 1:
            return f"your start sent {len(queued)} requests, each a task of its own: send one POST /tasks"
        if task.name != "nb06-check":
            return f"the task should be named after the function's `name` argument, not {task.name!r}"
        if task.image != cube.DEMO_IMAGE:
            return f"use the demo image, cube.DEMO_IMAGE, not {task.image!r}"
        if task.exposed_ports != {"80/tcp"}:
            return 'expose the web server\'s port: "exposed_ports": ["80/tcp"] in the task'
        if raised:
            return f"the task was queued, but {raised}"
        if isinstance(got, httpx.Response):
            return "return the task's id, not the response: r.json()['id']"
        if isinstance(got, dict):
            return "return only the id, not the whole task: r.json()['id']"
        if str(got) != str(task.id):
            return f"return the new task's id, the 'id' of the 201 answer; the function returned {got!r}"
        return None
    finally:
        api.close()
        server.stop()
        worker.close()


def _returns_task(api, name):
    event = {
        "state": "SCHEDULED",
        "task": {"name": name, "image": cube.DEMO_IMAGE, "exposed_ports": ["80/tcp"]},
    }
    return api.post("/tasks", json=event).json()


def _no_port(api, name):
    event = {"state": "SCHEDULED", "task": {"name": name, "image": cube.DEMO_IMAGE}}
    return api.post("/tasks", json=event).json()["id"]


def _asks_running(api, name):
    event = {
        "state": "RUNNING",
        "task": {"name": name, "image": cube.DEMO_IMAGE, "exposed_ports": ["80/tcp"]},
    }
    return api.post("/tasks", json=event).json().get("id")


def _returns_status(api, name):
    event = {
        "state": "SCHEDULED",
        "task": {"name": name, "image": cube.DEMO_IMAGE, "exposed_ports": ["80/tcp"]},
    }
    return api.post("/tasks", json=event).status_code


def _posts_twice(api, name):
    event = {
        "state": "SCHEDULED",
        "task": {"name": name, "image": cube.DEMO_IMAGE, "exposed_ports": ["80/tcp"]},
    }
    first = api.post("/tasks", json=event).json()["id"]
    api.post("/tasks", json=event)  # "to be sure"
    return first


q1 = Exercise(
    name="6.1",
    question="Write start(api, name): with the httpx client `api`, ask the worker to start a task named "
    "`name` from the demo image with port 80/tcp exposed, and return the new task's id. Then answer = start.",
    judge=_judge_start,
    hint_text="build a task event as in the cell above, api.post('/tasks', json=event), and read the "
    "'id' of the answer's JSON",
    solution_code="""def start(api, name):
    task = {"name": name, "image": cube.DEMO_IMAGE, "exposed_ports": ["80/tcp"]}
    r = api.post("/tasks", json={"state": "SCHEDULED", "task": task})
    return r.json()["id"]


answer = start""",
    praise="the checker called it against a worker of its own; start(api, 'nb06-mine') would start a "
    "real one on this notebook's worker.",
    wrong=[_returns_task, _no_port, _asks_running, _returns_status, _posts_twice, "nb06-web"],
    setup=lambda: {"cube": cube},
)


# --- 6.2 -------------------------------------------------------------------------------------------


def _judge_stop_body(answer, task_id) -> str | None:
    if not isinstance(answer, dict):
        return 'answer a dict, the JSON body: {"state": ..., "task": {...}}'
    if "id" in answer and "task" not in answer:
        return 'the id belongs inside the task: {"state": ..., "task": {"id": ...}}'
    task = answer.get("task")
    if isinstance(task, dict) and isinstance(task.get("id"), uuid.UUID):
        return "JSON has no uuid type: send the id as a string, str(task_id)"
    try:
        TaskEvent.model_validate(answer)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the body"
        if first["loc"] == ("state",):
            return (
                "state must be 'SCHEDULED' (start) or 'COMPLETED' (stop): a stop brings the task to COMPLETED"
            )
        return f"the API would refuse this body with a 422 at {where}: {first['msg']}"
    if answer["state"] != "COMPLETED":
        return "SCHEDULED asks the worker to start a task; to stop one, ask for COMPLETED"
    if not task.get("id"):
        return "the worker names a task by its id, not its name: put the task's id in the task"
    if task["id"] != str(task_id):
        return f"that id, {task['id']}, is not the task's: task_id is {task_id}"
    return None


_SOME_ID = "0b6c3e0a-3f7e-4d2b-9a51-6f0f3a9c2d11"

q2 = Exercise(
    name="6.2",
    question="Build the JSON body of a POST /tasks that stops the task with id task_id: the same request "
    "as DELETE /tasks/{task_id}. Answer a dict.",
    judge=_judge_stop_body,
    hint_text="a task event is {'state': ..., 'task': {...}}; which state means 'stop', and which field "
    "names a task the worker knows?",
    solution_code="""answer = {"state": "COMPLETED", "task": {"id": task_id}}""",
    names=("answer", "task_id"),
    praise="send it with api.post('/tasks', json=answer): nb06-web is already COMPLETED, so the worker "
    "answers 409, as it did to the second DELETE.",
    wrong=[
        {"state": "COMPLETED", "task": {"name": "nb06-web"}},
        {"state": "STOPPED", "task": {"id": _SOME_ID}},
        {"state": "COMPLETED", "id": _SOME_ID},
        {"state": "SCHEDULED", "task": {"id": _SOME_ID}},
        {"state": "COMPLETED", "task": {"id": uuid.UUID(_SOME_ID)}},
        {"state": "COMPLETED", "task": {"id": _SOME_ID}},  # a task, but not this one
    ],
    setup=lambda: {"task_id": str(uuid.uuid4())},
)


# --- 6.3 -------------------------------------------------------------------------------------------


def _judge_stop_by_name(answer) -> str | None:
    if (answer := pair(answer)) is None:
        return "answer a pair (status code, where), e.g. (200, 'body.state')"
    status, where = answer
    if (status, where) == (422, "body.task.id"):
        return None
    if status == 404:
        return "the API never looks a name up: names need not be unique, so it refuses before it looks"
    if status == 409:
        return (
            "409 is for a task that cannot make the move; here the API cannot even tell which task is meant"
        )
    if status == 400:
        return "400 is for a body that is not JSON at all; this one parses"
    if status == 422 and where == "task.id":
        return "close: 422, and `where` begins with `body.`, the part of the request (see problem(r))"
    if status == 422 and where != "body.task.id":
        return "422 is right; `where` points at what is missing from the request, not at what was sent"
    return "send it with post({'name': 'nb06-web'}, state='COMPLETED') and read problem(r)"


def _served_worker() -> dict:
    worker = Worker(f"exercise-6-3-{uuid.uuid4().hex[:8]}")
    server = Server(worker)
    api = httpx.Client(base_url=server.url, timeout=10)

    def problem(r):
        body = r.json()
        return f"{r.status_code} {body['where']}: {body['error']}"

    def post(task, state="SCHEDULED"):
        return api.post("/tasks", json={"state": state, "task": task})

    return {"w": worker, "server": server, "api": api, "problem": problem, "post": post}


def _stop_server(names: dict) -> None:
    names["server"].stop()
    names["api"].close()
    names["w"].close()


q3 = Exercise(
    name="6.3",
    question="A client tries to stop a task by its name: "
    '{"state": "COMPLETED", "task": {"name": "nb06-web"}}. What does it get? Answer (status code, where).',
    judge=_judge_stop_by_name,
    hint_text="which field names a task the worker knows? Read post_task above, or send the request "
    "with post() and problem()",
    solution_code="""r = post({"name": "nb06-web"}, state="COMPLETED")
print(problem(r))
answer = (r.status_code, r.json()["where"])""",
    praise="a stop needs the task's id; the API says so before it looks anything up.",
    wrong=[(404, "body.task.name"), (409, "body.task.id"), (422, "body.task.name"), (400, "body"), 422],
    setup=_served_worker,
    teardown=_stop_server,
)
