"""Random requests to the worker's API, over real HTTP, with no engine behind it: whatever a request
holds, the answer is never a 5xx, a refusal is {"error": a sentence, "where": ...}, nothing is logged
as an error, and every task accepted (201) is listed after. The worker's client is a real
docker.DockerClient on a socket no engine listens on, so that no request starts a container: those
accepted wait in the queue, as they would for an engine that is down.

The requests come from a seeded random.Random; a failure prints the seed and the request, to replay.
"""

import json
import logging
import random
import uuid

import docker
import httpx
import pytest

from cube import DEMO_IMAGE, Worker
from cube.api import Server

FIELDS = ["id", "name", "image", "cpu", "memory", "disk", "exposed_ports", "port_bindings",
          "restart_policy", "cmd", "state", "container_id", "host_ports", "unknown"]  # fmt: skip
VALUES = [None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**400, 0.5, -0.0, 1e308, 1e-320,
          "", "x", "x" * 3000, "80/tcp", "80", "99999/tcp", "\ud800", "\x00", "on-failure:99999999999",
          "always", "ümlaut", "💥", "SCHEDULED", "COMPLETED", "RUNNING", DEMO_IMAGE, "../../etc", "a b", "-x",
          "1e3", "NaN"]  # fmt: skip
CONTENT_TYPES = ["application/json"] * 8 + ["text/plain", "application/json; charset=latin-1", ""]


class Requests:
    """Bad (and now and then good) requests, drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def value(self, depth: int = 0):
        rng = self.rng
        if depth < 3 and rng.random() < 0.15:
            if rng.random() < 0.5:
                return [self.value(depth + 1) for _ in range(rng.randint(0, 3))]
            return {str(self.value(depth + 1)): self.value(depth + 1) for _ in range(rng.randint(0, 3))}
        return rng.choice(VALUES)

    def event(self):
        rng = self.rng
        task = {"image": DEMO_IMAGE, "cmd": ["true"]}
        for _ in range(rng.randint(0, 4)):
            task[rng.choice(FIELDS) if rng.random() < 0.9 else str(self.value())] = self.value()
        states = ["SCHEDULED", "COMPLETED", "RUNNING", None, 1, "scheduled"]
        event = {"state": rng.choice(states), "task": task}
        if rng.random() < 0.15:
            return self.value()
        if rng.random() < 0.1:
            event[str(self.value())] = self.value()
        return event

    def body(self) -> bytes:
        text, r = json.dumps(self.event(), allow_nan=True), self.rng.random()
        if r < 0.05:
            text = text[: self.rng.randint(0, len(text))]  # cut short
        elif r < 0.07:
            text = "[" * 5000 + "]" * 5000  # nested too deep for any parser
        elif r < 0.09:
            text = '{"state": "SCHEDULED", "task": ' * 300 + "{}" + "}" * 300
        elif r < 0.11:
            return text.encode()[:-1] + b"\xff\xfe}"  # not UTF-8
        elif r < 0.13:
            text = text.replace("true", "Infinity", 1)  # not JSON, though Python writes it
        return text.encode("utf-8", "surrogatepass")  # a lone surrogate stays one

    def other(self, accepted: list[str]) -> tuple[str, str]:
        rng = self.rng
        task_id = rng.choice([str(uuid.uuid4()), "x", "%00", "%ud800", "..%2f", "1" * 500, *accepted[-3:]])
        paths = [f"/tasks/{task_id}", f"/tasks/{task_id}/history", "/tasks", "/stats", f"/{task_id}"]
        return rng.choice(["GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "POST"]), rng.choice(paths)


@pytest.fixture
def no_engine_worker(tmp_path):
    """A worker whose client is real but finds no engine (version given: from_env would ask at once)."""
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41", timeout=1)
    with Worker(f"fuzz-{uuid.uuid4().hex[:8]}", client=client) as w:
        yield w


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_requests_get_a_4xx_with_error_and_where_never_a_5xx_and_every_task_accepted_is_listed(
    no_engine_worker, seed
):
    requests, accepted, statuses, errors = Requests(seed), [], set(), Errors()
    logging.getLogger().addHandler(errors)
    try:
        with Server(no_engine_worker) as s, httpx.Client(base_url=s.url, timeout=10) as c:
            for n in range(300):
                if requests.rng.random() < 0.7:
                    kind = requests.rng.choice(CONTENT_TYPES)
                    r = c.post("/tasks", content=requests.body(), headers={"content-type": kind})
                else:
                    r = c.request(*requests.other(accepted))
                sent = f"{r.request.method} {r.request.url} {r.request.content[:300]!r}"
                said = f"seed {seed}, request {n}: {sent}"
                assert r.status_code < 500, f"{said} -> {r.status_code} {r.text[:500]}"
                statuses.add(r.status_code)
                if r.status_code == 201:
                    accepted.append(r.json()["id"])
                elif r.status_code >= 400 and r.request.method != "HEAD":
                    refusal = r.json()
                    assert isinstance(refusal.get("error"), str) and refusal["error"], f"{said} -> {r.text}"
                    assert "where" in refusal, f"{said} -> {r.text}"
            listed = {t["id"] for t in c.get("/tasks").json()}
    finally:
        logging.getLogger().removeHandler(errors)
    assert not errors.records, f"seed {seed}: logged as errors:\n" + "\n".join(errors.records[:3])
    assert accepted and not set(accepted) - listed, f"seed {seed}: accepted but not listed"
    assert {400, 404, 405, 415, 422} <= statuses, f"seed {seed}: the requests reached too few refusals"
