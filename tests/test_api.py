"""The worker's HTTP API (cube/api.py) and its command line (cube/__main__.py), as a client sees
them: real HTTP to a real `python -m cube worker` process, on the real engine (issue 7).

Every endpoint; every kind of bad input, each a 4xx with {"error": what, "where": where}; a load
of GETs and POSTs at once; a worker killed with SIGKILL and started again on its --db; and how the
process starts and stops.
"""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import docker
import httpx
import psutil
import pytest
from helpers import CubeServer, cli_refusal, cube_server, eventually, mine, page, remove_containers

from cube import DEMO_IMAGE, State, Task
from cube.api import Server

WEB = {"image": DEMO_IMAGE, "exposed_ports": ["80/tcp"]}


def unique(kind: str) -> str:
    return f"test-{kind}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, client, demo_image):
    """One worker process for the tests of endpoints and bad input; each test makes its own tasks."""
    name = unique("api")
    with cube_server(tmp_path_factory.mktemp("api"), name) as s:
        yield s
        s.stop()
    remove_containers(client, name)


@pytest.fixture(scope="module")
def api(server):
    with server.client(timeout=10) as c:
        yield c


def start(api: httpx.Client, **task) -> dict:
    """POST a new task to start; the task as the API accepted it."""
    r = api.post("/tasks", json={"state": "SCHEDULED", "task": {**WEB, **task}})
    assert r.status_code == 201, r.text
    return r.json()


def wait_for(api: httpx.Client, task_id: str, *states: str, within: float = 20) -> dict:
    """GET /tasks/{id} until the task is in one of `states`; the task then."""
    deadline = time.monotonic() + within
    while True:
        r = api.get(f"/tasks/{task_id}")
        assert r.status_code == 200, r.text
        if r.json()["state"] in states or time.monotonic() > deadline:
            assert r.json()["state"] in states, f"still {r.json()['state']}: {r.json()['reason']}"
            return r.json()
        time.sleep(0.05)


def stop(api: httpx.Client, task_id: str) -> dict:
    """DELETE the task and wait until it is COMPLETED, so that the next test finds nothing moving."""
    r = api.delete(f"/tasks/{task_id}")
    assert (r.status_code, r.content) == (204, b""), r.text
    return wait_for(api, task_id, "COMPLETED", within=10)


def refused(r: httpx.Response, status: int, where: str, *words: str) -> dict:
    """Check a refusal: the status, a JSON body whose "where" matches and whose "error" is a
    sentence holding each of `words`."""
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert re.fullmatch(where, body.get("where") or ""), body
    for word in words:
        assert word in body["error"], body
    return body


def gone(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return True
    return False


def engine_ports(client: docker.DockerClient, container_id: str) -> dict[str, int]:
    """The host port of each published container port, on the IPv4 address, as the engine says."""
    ports = client.api.inspect_container(container_id)["NetworkSettings"]["Ports"]
    return {
        port: int(next(b for b in bindings if ":" not in b["HostIp"])["HostPort"])
        for port, bindings in ports.items()
        if bindings
    }


# --- every endpoint --------------------------------------------------------------------------------


def test_post_starts_a_task_whose_page_answers_from_its_container(api, client):
    accepted = start(api)
    assert uuid.UUID(accepted["id"])
    assert (accepted["state"], accepted["image"], accepted["container_id"]) == ("SCHEDULED", DEMO_IMAGE, "")

    t = wait_for(api, accepted["id"], "RUNNING")
    assert page(t["host_ports"]["80/tcp"]).strip() == f"Hello from {t['container_id'][:12]}"
    (container,) = mine(client, task=accepted["id"])
    assert container.id == t["container_id"]
    stop(api, t["id"])


def test_a_null_id_is_a_new_task_as_an_id_left_out_is(api):
    accepted = start(api, id=None)
    assert uuid.UUID(accepted["id"])
    stop(api, wait_for(api, accepted["id"], "RUNNING")["id"])


def test_get_tasks_lists_every_task_with_its_state(api):
    one, two = start(api), start(api, cmd=["sh", "-c", "exit 3"])
    wait_for(api, one["id"], "RUNNING")
    wait_for(api, two["id"], "FAILED")

    r = api.get("/tasks")
    assert r.status_code == 200
    listed = {t["id"]: t for t in r.json()}
    assert (listed[one["id"]]["state"], listed[two["id"]]["state"]) == ("RUNNING", "FAILED")
    assert len(listed) == len(r.json()), "a task is listed twice"
    stop(api, one["id"])


def test_get_task_says_what_the_engine_says_of_its_container(api, client):
    t = wait_for(api, start(api)["id"], "RUNNING")

    container = api.get(f"/tasks/{t['id']}").json()["container"]
    assert container == {
        "status": client.containers.get(t["container_id"]).status,
        "exit_code": None,
        "host_ports": engine_ports(client, t["container_id"]),
    }
    assert container["status"] == "running"
    assert container["host_ports"] == t["host_ports"]

    client.containers.get(t["container_id"]).kill()  # behind the worker's back: exit code 137
    failed = wait_for(api, t["id"], "FAILED")
    assert failed["exit_code"] == 137
    # The worker records the task FAILED, then removes its container.
    assert eventually(lambda: gone(client, t["container_id"])), "the container of a finished task is left"
    assert api.get(f"/tasks/{t['id']}").json()["container"] == {
        "status": "gone",
        "exit_code": None,
        "host_ports": {},
    }


def test_delete_stops_the_container_and_completes_the_task(api, client):
    t = wait_for(api, start(api)["id"], "RUNNING")

    r = api.delete(f"/tasks/{t['id']}")
    assert (r.status_code, r.content) == (204, b"")
    done = wait_for(api, t["id"], "COMPLETED", within=10)
    assert gone(client, t["container_id"])
    assert done["reason"].startswith("stopped on request")
    assert done["container"]["status"] == "gone"

    refused(api.delete(f"/tasks/{t['id']}"), 409, r"path\.task_id", "already COMPLETED")


def test_post_completed_stops_a_task_too(api, client):
    t = wait_for(api, start(api)["id"], "RUNNING")

    r = api.post("/tasks", json={"state": "COMPLETED", "task": {"id": t["id"]}})
    assert r.status_code == 201, r.text
    assert (r.json()["id"], r.json()["state"]) == (t["id"], "COMPLETED")
    wait_for(api, t["id"], "COMPLETED", within=10)
    assert gone(client, t["container_id"])

    again = api.post("/tasks", json={"state": "COMPLETED", "task": {"id": t["id"]}})
    refused(again, 409, r"body\.task\.id", "already COMPLETED")


def test_history_lists_the_moves_oldest_first(api):
    t = wait_for(api, start(api)["id"], "RUNNING")
    stop(api, t["id"])

    r = api.get(f"/tasks/{t['id']}/history")
    assert r.status_code == 200
    moves = r.json()
    assert [(m["src"], m["dst"]) for m in moves] == [
        (None, "SCHEDULED"),
        ("SCHEDULED", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    assert [m["reason"] for m in moves] == [
        "accepted",
        f"started container {t['container_id'][:12]}",
        "stopped on request",
    ]
    assert {m["task_id"] for m in moves} == {t["id"]}
    times = [datetime.fromisoformat(m["time"]) for m in moves]
    assert times == sorted(times) and len(set(times)) == 3


@pytest.mark.slow
def test_stats_tell_the_machine_the_tasks_and_each_running_container(api):
    t = wait_for(api, start(api)["id"], "RUNNING")

    def measured():
        stats = api.get("/stats").json()
        entry = [s for s in stats["tasks"] if s["id"] == t["id"]]
        ready = entry and entry[0]["cpu_percent"] is not None and stats["host"]["cpu_percent"] is not None
        return stats if ready else None

    stats = eventually(measured, seconds=8, every=0.2)
    assert stats, api.get("/stats").json()
    assert set(stats) == {"time", "host", "task_count", "states", "tasks"}
    assert abs((datetime.now(UTC) - datetime.fromisoformat(stats["time"])).total_seconds()) < 5

    host = stats["host"]
    assert 0 <= host["cpu_percent"] <= 100
    assert 0 < host["memory_used"] <= host["memory_total"]
    assert host["memory_percent"] == round(100 * host["memory_used"] / host["memory_total"], 1)
    assert 0 < host["disk_used"] <= host["disk_total"] and 0 < host["disk_percent"] <= 100
    assert len(host["load_avg"]) == 3 and all(x >= 0 for x in host["load_avg"])

    (entry,) = [s for s in stats["tasks"] if s["id"] == t["id"]]
    assert entry["name"] == t["name"]
    assert 0 <= entry["cpu_percent"] < 50, "an idle web server"
    assert entry["memory_bytes"] > 0

    def counted():  # the states counted as GET /tasks lists them at the same moment
        tasks, stats = api.get("/tasks").json(), api.get("/stats").json()
        states = {s: sum(1 for t in tasks if t["state"] == s) for s in stats["states"]}
        return (stats["states"], stats["task_count"]) == (states, len(tasks)) and (stats, tasks)

    stats, tasks = eventually(counted, seconds=5) or pytest.fail("/stats disagrees with /tasks")
    running = {t["id"] for t in tasks if t["state"] == "RUNNING"}
    assert set(stats["states"]) == {"PENDING", "SCHEDULED", "RUNNING", "COMPLETED", "FAILED"}
    assert {s["id"] for s in stats["tasks"]} == running
    stop(api, t["id"])


# --- conflicts -------------------------------------------------------------------------------------


def test_starting_a_running_task_again_is_a_conflict(api, client):
    t = wait_for(api, start(api)["id"], "RUNNING")

    r = api.post("/tasks", json={"state": "SCHEDULED", "task": {"id": t["id"]}})
    refused(r, 409, r"body\.state", t["id"], "RUNNING")
    time.sleep(0.3)
    assert [c.id for c in mine(client, task=t["id"])] == [t["container_id"]]
    assert api.get(f"/tasks/{t['id']}").json()["state"] == "RUNNING"
    stop(api, t["id"])


def test_a_failed_task_started_again_with_only_its_id_runs_again(api):
    first = wait_for(api, start(api, cmd=["sh", "-c", "exit 3"])["id"], "FAILED")
    assert first["exit_code"] == 3

    r = api.post("/tasks", json={"state": "SCHEDULED", "task": {"id": first["id"]}})
    assert r.status_code == 201, r.text
    assert r.json()["cmd"] == ["sh", "-c", "exit 3"], "what it runs comes from the worker's record"

    def ran_again():
        moves = api.get(f"/tasks/{first['id']}/history").json()
        return moves if len(moves) >= 4 and moves[-1]["dst"] == "FAILED" else None

    moves = eventually(ran_again, seconds=15) or pytest.fail("the task did not run again")
    assert [(m["src"], m["dst"]) for m in moves][2] == ("FAILED", "SCHEDULED")
    assert moves[2]["reason"] == "asked to start again"
    again = api.get(f"/tasks/{first['id']}").json()
    assert (again["state"], again["exit_code"]) == ("FAILED", 3)
    assert again["start_time"] > first["start_time"]


def test_a_request_the_queued_ones_would_make_invalid_is_a_conflict(worker):
    """With the worker's loop stopped, requests wait in the queue: each new one is judged from the
    state those before it lead to (a start to RUNNING, a stop to COMPLETED), not refused later."""
    with Server(worker) as s, httpx.Client(base_url=s.url, timeout=10) as api:
        worker.stop()  # nothing is taken off the queue from here on
        first = start(api)
        again = api.post("/tasks", json={"state": "SCHEDULED", "task": {"id": first["id"]}})
        refused(again, 409, r"body\.state", first["id"], "already queued", "RUNNING")
        assert [(str(t.id), t.state) for t in worker.queue] == [(first["id"], State.SCHEDULED)]

        assert api.delete(f"/tasks/{first['id']}").status_code == 204  # a stop after a start: fine
        after_stop = api.post("/tasks", json={"state": "SCHEDULED", "task": {"id": first["id"]}})
        refused(after_stop, 409, r"body\.state", "already queued", "COMPLETED")
        refused(api.delete(f"/tasks/{first['id']}"), 409, r"path\.task_id", "already queued", "COMPLETED")
        stop_again = api.post("/tasks", json={"state": "COMPLETED", "task": {"id": first["id"]}})
        refused(stop_again, 409, r"body\.task\.id", "already queued")
        assert [t.state for t in worker.queue] == [State.SCHEDULED, State.COMPLETED]
        assert [t["state"] for t in api.get("/tasks").json()] == ["PENDING"]


def test_a_failed_task_with_a_restart_queued_may_be_stopped(worker, demo_image):
    task = Task(image=DEMO_IMAGE, cmd=["sh", "-c", "exit 3"], state=State.SCHEDULED)
    worker.add_task(task)
    worker.run_task()
    failed = eventually(
        lambda: worker.update_tasks() is not None and worker.db[task.id].state is State.FAILED
    )
    assert failed, worker.db[task.id]
    with Server(worker) as s, httpx.Client(base_url=s.url, timeout=10) as api:
        worker.stop()
        refused(api.delete(f"/tasks/{task.id}"), 409, r"path\.task_id", "already FAILED")
        restart = api.post("/tasks", json={"state": "SCHEDULED", "task": {"id": str(task.id)}})
        assert restart.status_code == 201, restart.text
        r = api.delete(f"/tasks/{task.id}")  # the restart leads to RUNNING, which a stop may follow
        assert (r.status_code, r.content) == (204, b""), r.text
        assert [t.state for t in worker.queue] == [State.SCHEDULED, State.COMPLETED]


# --- bad input -------------------------------------------------------------------------------------

NO_TASK = str(uuid.uuid4())
BIG = json.dumps({"state": "SCHEDULED", "task": {"image": DEMO_IMAGE, "cmd": ["x" * 70_000]}}).encode()


def chunks(data: bytes, size: int = 4096) -> list[bytes]:
    """The body in pieces: httpx sends an iterable chunked, with no Content-Length."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def task_error(**fields) -> str:
    """What cube.Task itself says of these fields."""
    with pytest.raises(ValueError) as e:
        Task(**{"image": DEMO_IMAGE, **fields})
    return str(e.value)


def event(state="SCHEDULED", **task) -> dict:
    return {"state": state, "task": {"image": DEMO_IMAGE, **task}}


JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}
ARABIC_80 = "\u0668\u0660/tcp"  # "80/tcp" in Arabic-Indic digits, which str.isdigit() takes for digits

# (method, path, keyword arguments for httpx), status, where (a regex), words the error holds
BAD = [
    pytest.param("POST", "/tasks", {"content": b'{"state": "SCHEDULED", "task": {', "headers": JSON},
                 400, r"body(\.\d+)?", ["not valid JSON"], id="malformed JSON"),
    pytest.param("POST", "/tasks", {"content": b'{"a": ' * 5_000 + b"1" + b"}" * 5_000, "headers": JSON},
                 400, r"body(\.\d+)?", ["JSON"], id="JSON nested 5000 deep"),
    pytest.param("POST", "/tasks", {"content": b"", "headers": JSON}, 422, r"body", ["missing"],
                 id="empty body"),
    pytest.param("POST", "/tasks", {"json": {**event(), "priority": 1}}, 422, r"body\.priority",
                 ["priority", "not a field"], id="unknown top-level field"),
    pytest.param("POST", "/tasks", {"json": event(container_id="abc")}, 422, r"body\.task\.container_id",
                 ["container_id", "not a field"], id="unknown field in task"),
    pytest.param("POST", "/tasks", {"json": event(id="not-a-uuid")}, 422, r"body\.task\.id", ["UUID"],
                 id="malformed uuid in body"),
    pytest.param("GET", "/tasks/not-a-uuid", {}, 422, r"path\.task_id", ["UUID"], id="malformed uuid GET"),
    pytest.param("DELETE", "/tasks/1234", {}, 422, r"path\.task_id", ["UUID"], id="malformed uuid DELETE"),
    pytest.param("GET", "/tasks/not-a-uuid/history", {}, 422, r"path\.task_id", ["UUID"],
                 id="malformed uuid history"),
    pytest.param("POST", "/tasks", {"json": event(state="RUNNING")}, 422, r"body\.state",
                 ["SCHEDULED", "COMPLETED"], id="unknown state RUNNING"),
    pytest.param("POST", "/tasks", {"json": event(state="started")}, 422, r"body\.state",
                 ["SCHEDULED", "COMPLETED"], id="unknown state started"),
    pytest.param("POST", "/tasks", {"json": {"task": {"image": DEMO_IMAGE}}}, 422, r"body\.state",
                 ["missing"], id="no state"),
    pytest.param("POST", "/tasks", {"json": {"state": "SCHEDULED"}}, 422, r"body\.task", ["missing"],
                 id="no task"),
    pytest.param("POST", "/tasks", {"json": {"state": "SCHEDULED", "task": {}}}, 422, r"body\.task\.image",
                 [task_error(image="")], id="missing image"),
    pytest.param("POST", "/tasks", {"json": event(image="")}, 422, r"body\.task\.image",
                 [task_error(image="")], id="empty image"),
    pytest.param("POST", "/tasks", {"json": {"state": "COMPLETED", "task": {}}}, 422, r"body\.task\.id",
                 ["id"], id="stop without id"),
    pytest.param("POST", "/tasks", {"json": event(memory=-1)}, 422, r"body\.task\.memory",
                 [task_error(memory=-1)], id="memory -1"),
    pytest.param("POST", "/tasks", {"json": event(name="a b")}, 422, r"body\.task\.name",
                 [task_error(name="a b")], id="name with a space"),
    pytest.param("POST", "/tasks", {"json": event(exposed_ports=["80/xyz"])}, 422,
                 r"body\.task(\.exposed_ports)?", [task_error(exposed_ports={"80/xyz"})], id="port 80/xyz"),
    pytest.param("POST", "/tasks", {"json": event(port_bindings={"80/tcp": "70000"})}, 422,
                 r"body\.task\.port_bindings", [task_error(port_bindings={"80/tcp": "70000"})],
                 id="host port 70000"),
    pytest.param("POST", "/tasks", {"json": event(restart_policy="sometimes")}, 422,
                 r"body\.task\.restart_policy", [task_error(restart_policy="sometimes")],
                 id="unknown restart policy"),
    pytest.param("POST", "/tasks", {"json": event(exposed_ports=[ARABIC_80])}, 422,
                 r"body\.task(\.exposed_ports)?", [task_error(exposed_ports={ARABIC_80})],
                 id="port in Arabic digits"),
    pytest.param("POST", "/tasks", {"json": event(restart_policy="on-failure:" + "9" * 20)}, 422,
                 r"body\.task\.restart_policy", [task_error(restart_policy="on-failure:" + "9" * 20)],
                 id="on-failure with 20 digits"),
    pytest.param("POST", "/tasks", {"json": event(cpu=-0.5)}, 422, r"body\.task\.cpu",
                 [task_error(cpu=-0.5)], id="cpu -0.5"),
    pytest.param("POST", "/tasks", {"content": b'{"state":"SCHEDULED","task":{"image":"x","cpu":NaN}}',
                 "headers": JSON}, 422, r"body\.task\.cpu", ["cpu"], id="cpu NaN"),
    pytest.param("POST", "/tasks", {"json": event(memory=2**70)}, 422, r"body\.task\.memory", ["memory"],
                 id="memory beyond int64"),
    pytest.param("POST", "/tasks", {"json": []}, 422, r"body", ["must be a JSON object"], id="body []"),
    pytest.param("POST", "/tasks", {"json": "x"}, 422, r"body", ["must be a JSON object"], id='body "x"'),
    pytest.param("POST", "/tasks", {"json": 3}, 422, r"body", ["must be a JSON object"], id="body 3"),
    pytest.param("POST", "/tasks", {"json": event(name="web", cpu=0, memory=0, tags=["x"] * 20)}, 422,
                 r"body\.task\.tags", ["tags"], id="unknown field among good ones"),
    pytest.param("POST", "/tasks", {"json": {"state": "SCHEDULED", "task": None}}, 422, r"body\.task",
                 ["task"], id="task null"),
    pytest.param("POST", "/tasks", {"content": BIG, "headers": JSON}, 413, r"body", ["larger than 65536"],
                 id="huge body"),
    pytest.param("POST", "/tasks", {"content": chunks(BIG), "headers": JSON}, 413, r"body",
                 ["larger than 65536"], id="huge body chunked"),
    pytest.param("GET", f"/tasks/{NO_TASK}", {}, 404, r"path\.task_id", [NO_TASK], id="unknown id GET"),
    pytest.param("DELETE", f"/tasks/{NO_TASK}", {}, 404, r"path\.task_id", [NO_TASK], id="unknown id DELETE"),
    pytest.param("GET", f"/tasks/{NO_TASK}/history", {}, 404, r"path\.task_id", [NO_TASK],
                 id="unknown id history"),
    pytest.param("POST", "/tasks", {"json": {"state": "COMPLETED", "task": {"id": NO_TASK}}}, 404,
                 r"body\.task\.id", [NO_TASK], id="unknown id stop via POST"),
    pytest.param("PUT", "/tasks", {"json": event()}, 405, r"PUT /tasks", ["PUT", "not allowed"],
                 id="PUT /tasks"),
    pytest.param("DELETE", "/tasks", {}, 405, r"DELETE /tasks", ["DELETE", "not allowed"],
                 id="DELETE /tasks"),
    pytest.param("POST", "/stats", {"json": {}}, 405, r"POST /stats", ["POST", "not allowed"],
                 id="POST /stats"),
    pytest.param("PATCH", f"/tasks/{NO_TASK}", {"json": {}}, 405, rf"PATCH /tasks/{NO_TASK}", ["not allowed"],
                 id="PATCH /tasks/id"),
    pytest.param("GET", "/task", {}, 404, r"GET /task", ["/docs"], id="unknown path"),
    pytest.param("POST", "/tasks%0a", {"json": event()}, 404, r"POST /tasks%0A", ["/tasks%0A", "/docs"],
                 id="a newline after /tasks"),
    pytest.param("GET", "/stats%0a", {}, 404, r"GET /stats%0A", ["/stats%0A"], id="a newline after /stats"),
    pytest.param("GET", "/tasks%7f", {}, 404, r"GET /tasks%7F", ["control"], id="a DEL after /tasks"),
    pytest.param("POST", "/static-offline-docs/x.js", {}, 405, r"POST /static-offline-docs/x\.js",
                 ["not allowed", "it takes GET, HEAD"], id="POST to the docs' files"),
    pytest.param("POST", "/tasks", {"content": json.dumps(event()), "headers": TEXT}, 415,
                 r"header\.content-type", ["application/json", "text/plain"], id="text/plain"),
    pytest.param("POST", "/tasks", {"content": json.dumps(event()), "headers": {"content-type": "text/json"}},
                 415, r"header\.content-type", ["application/json", "text/json"], id="text/json"),
    pytest.param("POST", "/tasks", {"content": json.dumps(event()),
                 "headers": {"content-type": "application/jsonl"}}, 415, r"header\.content-type",
                 ["application/json", "application/jsonl"], id="application/jsonl"),
    pytest.param("POST", "/tasks", {"content": json.dumps(event())}, 415, r"header\.content-type",
                 ["application/json"], id="no content type"),
    pytest.param("POST", "/tasks", {"data": {"state": "SCHEDULED"}}, 415, r"header\.content-type",
                 ["application/x-www-form-urlencoded"], id="a form"),
    pytest.param("POST", "/tasks", {"json": event(memory="12")}, 422, r"body\.task\.memory", ["integer"],
                 id='memory "12"'),
    pytest.param("POST", "/tasks", {"json": event(cpu=True)}, 422, r"body\.task\.cpu", ["number"],
                 id="cpu true"),
    pytest.param("POST", "/tasks", {"json": event(memory=1.5)}, 422, r"body\.task\.memory", ["integer"],
                 id="memory 1.5"),
    pytest.param("POST", "/tasks", {"json": event(cmd="ls -l")}, 422, r"body\.task\.cmd", ["list"],
                 id='cmd "ls -l"'),
    pytest.param("POST", "/tasks", {"json": event(exposed_ports="80/tcp")}, 422, r"body\.task\.exposed_ports",
                 ["list"], id='exposed_ports "80/tcp"'),
    pytest.param("POST", "/tasks", {"json": event(port_bindings={"80/tcp": 8080})}, 422,
                 r"body\.task\.port_bindings.*", ["string"], id="host port as a number"),
    pytest.param("POST", "/tasks", {"json": {"state": 1, "task": {"image": DEMO_IMAGE}}}, 422, r"body\.state",
                 ["SCHEDULED"], id="state 1"),
    pytest.param("POST", "/tasks", {"json": event(exposed_ports=["1" * 5000])}, 422,
                 r"body\.task\.exposed_ports", ["not a port"], id="a port of 5,000 digits"),
    pytest.param("POST", "/tasks", {"json": event(port_bindings={"80/tcp": "1" * 4400})}, 422,
                 r"body\.task\.port_bindings", ["not in 1-65535"], id="a host port of 4,400 digits"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "request_", "status", "where", "words"), BAD)
def test_bad_input_is_a_4xx_saying_what_and_where(api, method, path, request_, status, where, words):
    before = api.get("/tasks").json()
    r = api.request(method, path, **request_)
    try:
        refused(r, status, where, *words)
    finally:
        if r.status_code == 201:  # accepted by mistake: let it settle, not to trouble the next case
            wait_for(api, r.json()["id"], "RUNNING", "COMPLETED", "FAILED")
    assert api.get("/tasks").json() == before, "a refused request changed the worker's tasks"


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("cmd", rb'{"state":"SCHEDULED","task":{"image":"alpine","cmd":["\ud800"]}}'),
        ("image", rb'{"state":"SCHEDULED","task":{"image":"\ud800"}}'),
    ],
)
def test_a_lone_surrogate_is_refused_and_the_tasks_still_list(api, field, body):
    """JSON may escape half of a UTF-16 pair; no engine, db or JSON reply can carry one."""
    before = api.get("/tasks")
    assert before.status_code == 200
    refused(api.post("/tasks", content=body, headers=JSON), 422, rf"body\.task\.{field}",
            task_error(**{field: json.loads(body)["task"][field]}))  # fmt: skip
    after = api.get("/tasks")
    assert after.status_code == 200, after.text
    assert after.json() == before.json(), "a refused request changed the worker's tasks"


@pytest.mark.parametrize(
    ("where", "body", "said"),
    [
        ("body", rb'{"\ud800":1,"state":"SCHEDULED","task":{"image":"alpine"}}', "half of a UTF-16 pair"),
        (r"body\.task", rb'{"state":"SCHEDULED","task":{"image":"a","\udc00":1}}', "half of a UTF-16 pair"),
        ("body.task.port_bindings",
         rb'{"state":"SCHEDULED","task":{"image":"a","port_bindings":{"\ud800":"80"}}}',
         "is not a port like '80/tcp'"),
    ],
    ids=["in the body's keys", "in the task's keys", "in port_bindings' keys"],
)  # fmt: skip
def test_a_lone_surrogate_in_a_key_is_a_422_at_its_object_not_a_500(api, where, body, said):
    """The error names the object the key is in: the key itself cannot go back in a JSON reply."""
    before = api.get("/tasks").json()
    refused(api.post("/tasks", content=body, headers=JSON), 422, where, said)
    assert api.get("/tasks").json() == before, "a refused request changed the worker's tasks"


# --- under load ------------------------------------------------------------------------------------

GETS, GET_THREADS, POSTS = 200, 4, 20


def percentiles(seconds: list[float]) -> str:
    q = statistics.quantiles(seconds, n=100)
    return f"p50 {q[49] * 1000:.1f} ms, p95 {q[94] * 1000:.1f} ms"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_many_gets_and_posts_at_once_give_one_container_per_task(tmp_path, client, demo_image):
    name = unique("load")
    try:
        with cube_server(tmp_path, name) as s:
            timings: dict[str, list[float]] = {"GET": [], "POST": []}
            answers: list[tuple[str, int, dict | list]] = []
            together = threading.Barrier(GET_THREADS + POSTS)

            def ask(c: httpx.Client, method: str, path: str, **kw) -> None:
                began = time.perf_counter()
                r = c.request(method, path, **kw)
                timings[method].append(time.perf_counter() - began)
                answers.append((f"{method} {path}", r.status_code, r.json()))

            def getter(i: int) -> None:
                with s.client(timeout=30) as c:
                    together.wait()
                    for n in range(GETS // GET_THREADS):
                        ask(c, "GET", "/tasks" if (i + n) % 2 else "/stats")

            def poster() -> None:
                with s.client(timeout=30) as c:
                    together.wait()
                    ask(c, "POST", "/tasks", json={"state": "SCHEDULED", "task": WEB})

            threads = [threading.Thread(target=getter, args=(i,)) for i in range(GET_THREADS)]
            threads += [threading.Thread(target=poster) for _ in range(POSTS)]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(0.1, began + 60 - time.monotonic()))
            took = time.monotonic() - began
            assert not any(t.is_alive() for t in threads), "the requests did not finish within 60 s"

            print(f"\n{GETS} GETs from {GET_THREADS} threads with {POSTS} POSTs at once, in {took:.2f} s")
            print(f"GET  {percentiles(timings['GET'])}")
            print(f"POST {percentiles(timings['POST'])}")
            assert [a for a in answers if a[1] >= 500] == []
            assert sorted({(a[0].split()[0], a[1]) for a in answers}) == [("GET", 200), ("POST", 201)]
            assert len(timings["GET"]) == GETS and len(timings["POST"]) == POSTS
            ids = {a[2]["id"] for a in answers if a[0] == "POST /tasks"}
            assert len(ids) == POSTS
            lists = [[t["id"] for t in a[2]] for a in answers if a[0] == "GET /tasks"]
            assert [ls for ls in lists if len(ls) != len(set(ls))] == [], "a task listed twice in one answer"
            stats = [a[2] for a in answers if a[0] == "GET /stats"]
            assert [st for st in stats if sum(st["states"].values()) != st["task_count"]] == [], (
                "states ≠ count"
            )

            with s.client(timeout=30) as api:

                def all_running():
                    tasks = {t["id"]: t for t in api.get("/tasks").json()}
                    return all(tasks[i]["state"] == "RUNNING" for i in ids) and tasks

                tasks = eventually(all_running, seconds=60, every=0.2)
                assert tasks, {t["id"]: t["state"] for t in api.get("/tasks").json()}
                for i in ids:
                    (container,) = mine(client, task=i)  # exactly one, none twice
                    assert container.id == tasks[i]["container_id"]
                    assert container.labels["cube.worker"] == name
                assert len(mine(client, worker=name)) == POSTS
                print(f"all {POSTS} RUNNING {time.monotonic() - began:.2f} s after the first request")

                assert {api.delete(f"/tasks/{i}").status_code for i in ids} == {204}
                done = eventually(
                    lambda: {t["state"] for t in api.get("/tasks").json()} == {"COMPLETED"}, seconds=60
                )
                assert done, {t["id"]: t["state"] for t in api.get("/tasks").json()}
                assert eventually(lambda: mine(client, worker=name) == [], seconds=5), "a container is left"
    finally:
        remove_containers(client, name)


# --- a worker killed and started again -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_worker_killed_with_sigkill_gets_its_tasks_back_on_the_same_db(tmp_path, client, demo_image):
    name = unique("kill")
    try:
        with cube_server(tmp_path, name, db="worker.db") as s:
            with s.client(timeout=10) as api:
                ids = [start(api)["id"] for _ in range(3)]
                before = {i: wait_for(api, i, "RUNNING")["container_id"] for i in ids}
            os.kill(s.process.pid, signal.SIGKILL)
            assert s.process.wait(5) == -signal.SIGKILL

        with cube_server(tmp_path, name, db="worker.db") as again:
            with again.client(timeout=10) as api:
                tasks = {t["id"]: t for t in api.get("/tasks").json()}
                assert set(tasks) == set(ids)
                assert {i: (t["state"], t["container_id"]) for i, t in tasks.items()} == {
                    i: ("RUNNING", c) for i, c in before.items()
                }
                for i, c in before.items():
                    assert client.containers.get(c).status == "running"
                    assert api.delete(f"/tasks/{i}").status_code == 204
                for i, c in before.items():
                    wait_for(api, i, "COMPLETED", within=10)
                    assert gone(client, c)
        assert mine(client, worker=name) == []
    finally:
        remove_containers(client, name)


# --- the command line ------------------------------------------------------------------------------


def test_port_0_picks_a_free_port_and_the_worker_prints_it(tmp_path):
    name = unique("cli")
    with cube_server(tmp_path, name, db=None) as s:
        assert re.fullmatch(
            rf"cube worker {name} listening on http://127\.0\.0\.1:(\d+) \(API docs: /docs\)", s.lines[0]
        )
        assert 0 < s.port < 65536
        r = httpx.get(f"http://127.0.0.1:{s.port}/openapi.json", timeout=5)
        assert (r.status_code, r.json()["info"]["title"]) == (200, f"cube worker {name}")
        assert httpx.get(f"{s.url}/tasks", headers=s.headers, timeout=5).json() == []


def test_a_second_worker_on_the_same_db_exits_with_status_2_and_says_why(tmp_path):
    name = unique("cli")
    with cube_server(tmp_path, name, db="worker.db") as first:
        second = CubeServer(tmp_path, name, db="worker.db")
        try:
            assert second.process.wait(15) == 2
            assert second.url is None and second.lines == []
            said = second.stderr().strip().splitlines()
            assert said[-1].startswith("cube worker: ") and "is in use by another worker" in said[-1], said
            assert "Traceback" not in second.stderr()
        finally:
            second.kill()
        still = httpx.get(f"{first.url}/tasks", headers=first.headers, timeout=5)
        assert still.status_code == 200, "the first one still serves"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_worker_cleanly_and_leaves_its_containers(tmp_path, client, demo_image, sig):
    name = unique("cli")
    try:
        with cube_server(tmp_path, name, db="worker.db") as s:
            with s.client(timeout=10) as api:
                t = wait_for(api, start(api)["id"], "RUNNING")
                api.get("/stats")  # the metrics follow the running container
                time.sleep(1.5)
            process = psutil.Process(s.process.pid)
            children = process.children(recursive=True)

            status = s.stop(sig, within=15)  # a bound for a hang, not a speed target (that is benchmarks')
            assert status == 0, f"exit status {status}\n{s.stderr()[-3000:]}"
            assert s.lines[-1] == f"cube worker {name} stopped"
            assert "Traceback" not in s.stderr() and "ERROR" not in s.stderr(), s.stderr()[-3000:]
            assert not process.is_running()
            assert not [c for c in children if c.is_running()]
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{s.url}/tasks", headers=s.headers, timeout=2)

        assert client.containers.get(t["container_id"]).status == "running", "containers stay as they are"
    finally:
        remove_containers(client, name)


def test_a_worker_without_a_db_says_on_sigterm_how_many_queued_requests_it_did_not_carry_out(
    tmp_path, monkeypatch
):
    """Its store is in memory: what is still queued is gone with the process, and it says so."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")  # no engine: the requests wait
    name = unique("cli")
    with cube_server(tmp_path, name, db=None) as s:
        with s.client(timeout=10) as api:
            for _ in range(3):
                start(api)
        assert s.stop(signal.SIGTERM, within=15) == 0, s.stderr()[-3000:]
        said = s.stderr()
    assert "cube worker: 3 queued requests were not carried out: gone with the worker" in said, said[-3000:]
    assert "--db PATH keeps them" in said
    assert "Traceback" not in said, said[-3000:]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(["--port", "70000"], "--port", id="port 70000"),
        pytest.param(["--port", "-1"], "--port", id="port -1"),
        pytest.param(["--port", "\u0668\u0660"], "--port", id="port in Arabic digits"),
        pytest.param(["--db", "/no/such/dir/w.db"], "/no/such/dir/w.db", id="db in no folder"),
        pytest.param(["--db", "{notes}"], "notes.md", id="db a text file"),
        pytest.param(["--db", "{tmp}"], "{tmp}", id="db a folder"),
    ],
)
def test_the_command_line_refuses_a_bad_port_or_db_with_status_2(tmp_path, monkeypatch, capsys, args, named):
    notes = tmp_path / "notes.md"
    notes.write_text("# not a database\n")
    args = [a.format(notes=notes, tmp=tmp_path) for a in args]
    status, out, err = cli_refusal(monkeypatch, capsys, *args)  # before anything starts
    assert status == 2, err
    assert out == "" and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert "cube worker: " in last and named.format(tmp=tmp_path) in last, last
    assert notes.read_text() == "# not a database\n", "the worker wrote into a file it refused"


def test_the_command_line_refuses_a_bad_parallel_with_status_2(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "cube", "worker", "--port", "0", "--name", unique("cli"), "--parallel", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.startswith("cube worker: parallel:"), run.stderr
