"""Random requests to the worker's API, over real HTTP, with no engine behind it: whatever a request
holds, the answer is never a 5xx, a refusal is {"error": a sentence, "where": ...}, nothing is logged
as an error, and every task accepted (201) is listed after. The worker's client is a real
docker.DockerClient on a socket no engine listens on, so that no request starts a container: those
accepted wait in the queue, as they would for an engine that is down. Then the same at the level of the
wire: bytes httpx would not send (two Content-Types, bad chunks, a client that leaves mid-body,
pipelining, Authorization variants), read back with h11.

The requests come from a seeded random.Random; a failure prints the seed and the request, to replay.
"""

import asyncio
import json
import logging
import random
import socket
import time
import uuid
from contextlib import contextmanager
from typing import NamedTuple

import docker
import h11
import httpx
import pytest

from cube import DEMO_IMAGE, Worker
from cube.api import Server
from cube.refusals import MAX_BODY, LimitBody

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


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@contextmanager
def _serving(tmp, token: str | None = None):
    """A Server over a worker whose client is real but finds no engine (version given: none is asked)."""
    client = docker.DockerClient(base_url=f"unix://{tmp}/no-engine.sock", version="1.41", timeout=1)
    with Worker(f"fuzz-{uuid.uuid4().hex[:8]}", client=client) as w, Server(w, token=token) as s:
        yield s


@pytest.fixture
def no_errors_logged():
    """Nothing logged as an error, uvicorn's own included (its loggers do not pass records to the root)."""
    errors, loggers = Errors(), [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(errors)
    yield
    for logger in loggers:
        logger.removeHandler(errors)
    assert not errors.records, "logged as errors:\n" + "\n".join(errors.records[:3])


@pytest.mark.parametrize("seed", [1, 2])
def test_random_requests_get_a_4xx_with_error_and_where_never_a_5xx_and_every_task_accepted_is_listed(
    tmp_path, no_errors_logged, seed
):
    requests, accepted, statuses = Requests(seed), [], set()
    with _serving(tmp_path) as s, httpx.Client(base_url=s.url, timeout=10) as c:
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
    assert accepted and not set(accepted) - listed, f"seed {seed}: accepted but not listed"
    assert {400, 404, 405, 415, 422} <= statuses, f"seed {seed}: the requests reached too few refusals"


# Transport level: what httpx will not send (two Content-Types, a bad chunk, a raw byte in the path,
# pipelined requests, HTTP/1.0), written as bytes on a socket and read back with h11, as a client reads.
# One server each, with a token and without, for every case (a case takes milliseconds, a server 0.3 s).

TASK = json.dumps({"state": "SCHEDULED", "task": {"image": DEMO_IMAGE, "cmd": ["true"]}}).encode()
JSON = b"Content-Type: application/json\r\n"
TOKEN = "t0ken-xyz"


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    informational: list[int]  # the 1xx answers before it (100 Continue)


class Wire:
    """One connection to 127.0.0.1:port: bytes go out as they are; the answers are read with h11."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.conn = h11.Connection(h11.CLIENT)

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *_) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self, method: str = "GET", after_100: bytes = b"", may_close: bool = False) -> Reply | None:
        """The next answer on this connection (to a request of `method`); `after_100` is sent on a 1xx.
        None if the server closed the connection instead, and `may_close`."""
        conn = self.conn
        if h11.MUST_CLOSE in (conn.our_state, conn.their_state):  # the last answer said Connection: close
            assert may_close, f"the server closed the connection; a {method} was to be answered"
            try:
                assert self.sock.recv(65536) == b"", "the server answered after it said it would close"
            except ConnectionResetError:
                pass
            return None
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))  # h11 must know what
        conn.send(h11.EndOfMessage())  # was asked (a HEAD has no body); the bytes sent are the case's own
        status, headers, body, early, deadline = 0, {}, b"", [], time.monotonic() + 5
        while time.monotonic() < deadline:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(self.sock.recv(65536))  # socket timeout: the server hangs
                except ConnectionResetError:
                    conn.receive_data(b"")
            elif isinstance(event, h11.InformationalResponse):
                early.append(event.status_code)
                self.send(after_100)
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return Reply(status, headers, body, early)
            elif may_close and not status:
                return None
            else:
                raise AssertionError(f"the server closed the connection before it answered ({event})")
        raise AssertionError("no whole answer within 5 s")


def post(headers: bytes = JSON, body: bytes = TASK, length: int | None = None, version: bytes = b"1.1"):
    declared = b"Content-Length: %d\r\n" % (len(body) if length is None else length)
    return b"POST /tasks HTTP/" + version + b"\r\nHost: t\r\n" + headers + declared + b"\r\n" + body


def chunked(*chunks: bytes, head: bytes = b"", tail: bytes = b"0\r\n\r\n") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(c), head, c) for c in chunks) + tail
    return b"POST /tasks HTTP/1.1\r\nHost: t\r\n" + JSON + b"Transfer-Encoding: chunked\r\n\r\n" + body


def ask(target: bytes, method: bytes = b"GET", headers: bytes = b"", host: bytes = b"t") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + headers + b"\r\n"


def _refusal(reply: Reply, said: str) -> None:
    """A refusal's body is {"error": a sentence, "where": ...}, as JSON."""
    assert reply.headers.get("content-type") == "application/json", f"{said}: {reply}"
    refusal = json.loads(reply.body)
    assert isinstance(refusal.get("error"), str) and refusal["error"], f"{said}: {reply}"
    assert "where" in refusal, f"{said}: {reply}"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    with _serving(tmp_path_factory.mktemp("open")) as s:
        yield s


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    with _serving(tmp_path_factory.mktemp("token"), token=TOKEN) as s:
        yield s


def _still_answers(server: Server) -> None:
    authorization = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in server.headers.items())
    with Wire(server.port) as wire:
        wire.send(ask(b"/tasks", headers=authorization))
        reply = wire.reply()
    assert reply.status == 200, f"after the case, GET /tasks -> {reply}"


# (what is odd, the request's bytes, the status it must get): a 4xx has error and where
ODD = [
    ("Content-Type twice, JSON first", post(JSON + b"Content-Type: text/plain\r\n"), 201),
    ("Content-Type twice, JSON second", post(b"Content-Type: text/plain\r\n" + JSON), 415),
    ("Content-Length twice, equal", post(JSON + b"Content-Length: %d\r\n" % len(TASK)), 201),
    ("Content-Length short of the body", post(length=10), 400),
    ("a body of exactly 64 KiB", post(body=TASK + b" " * (MAX_BODY - len(TASK))), 201),
    ("a body of 64 KiB and 1 byte", post(body=TASK + b" " * (MAX_BODY + 1 - len(TASK))), 413),
    ("Content-Length of 10 MB, none sent", post(body=b"", length=10**7), 413),
    ("chunked", chunked(TASK[:20], TASK[20:]), 201),
    ("chunked, an extension, a trailer", chunked(TASK, head=b";x=y", tail=b"0\r\nX-T: 1\r\n\r\n"), 201),
    ("chunked, 80 KiB", chunked(*[b" " * 0x4000] * 5), 413),
    ("HTTP/1.0", post(version=b"1.0"), 201),
    ("HTTP/1.0 without a body", b"POST /tasks HTTP/1.0\r\n" + JSON + b"\r\n", 422),
    ("HTTP/1.0 GET, no Host", b"GET /tasks HTTP/1.0\r\n\r\n", 200),
    ("lines ended by LF alone", b"GET /tasks HTTP/1.1\nHost: t\n\n", 200),
    ("?x=%ff, repeated", ask(b"/tasks?x=%ff&x=%ff&x&=&%%"), 200),
    ("?x=%ff on no path", ask(b"/nope?x=%ff&x=%00"), 404),
    ("a path of %ff%fe", ask(b"/%ff%fe"), 404),
    ("a path of UTF-8", ask(b"/t%C3%A4sks/%F0%9F%92%A5"), 404),
    ("a task id of %ff", ask(b"/tasks/%ff"), 422),
    ("a task id of 100 000 digits", ask(b"/tasks/" + b"1" * 100_000), 422),
    ("CR LF, encoded, in the path", ask(b"/nope%0d%0aX-Injected:%201", b"PUT"), 404),
    ("an absolute URL as target", ask(b"http://elsewhere/tasks"), 404),
    ("a target of //tasks", ask(b"//tasks"), 404),
    ("OPTIONS *", ask(b"*", b"OPTIONS"), 404),
    ("OPTIONS /tasks", ask(b"/tasks", b"OPTIONS"), 405),
    ("an unknown method", ask(b"/tasks", b"FOO"), 405),
    ("Host: [", ask(b"/nope", host=b"["), 404),
    ("Host: bytes beyond ASCII", ask(b"/tasks", b"PUT", host=b"\xff\xfe"), 405),
    ("5000 headers", ask(b"/nope", headers=b"".join(b"X-%d: v\r\n" % i for i in range(5000))), 404),
    ("a header of 200 KB", ask(b"/nope", headers=b"X-Big: " + b"a " * 100_000 + b"\r\n"), 404),
    ("X-Forwarded-Prefix", ask(b"/tasks", b"PUT", b"X-Forwarded-Prefix: /p/\r\n"), 405),
    ("a NUL in a docs file's name", ask(b"/static-offline-docs/%00"), 404),
    ("a docs file's name of 5000 bytes", ask(b"/static-offline-docs/" + b"a" * 5000), 404),
    ("../ out of the docs' files", ask(b"/static-offline-docs/%2e%2e/%2e%2e/api.py"), 404),
]  # fmt: skip


@pytest.mark.parametrize("case, data, status", ODD, ids=[c[0] for c in ODD])
def test_odd_requests_on_the_wire_get_their_status_a_json_refusal_and_the_server_goes_on(
    open_server, no_errors_logged, case, data, status
):
    with Wire(open_server.port) as wire:
        wire.send(data)
        reply = wire.reply()
    assert reply.status == status, f"{case}: {reply}"
    assert not reply.informational, f"{case}: asked for the body, {reply}"
    assert "x-injected" not in reply.headers, f"{case}: {reply}"
    if status >= 400:
        _refusal(reply, case)
    else:
        json.loads(reply.body)
    if case == "OPTIONS /tasks":
        assert reply.headers.get("allow") == "GET, POST", reply
    _still_answers(open_server)


# What h11 refuses before the app sees it: uvicorn's own 400, in plain text, and the connection closed
MALFORMED = [
    ("two different Content-Lengths", post(JSON + b"Content-Length: 5\r\n")),
    ("a negative Content-Length", post(length=-1)),
    ("a Content-Length of 30 digits", post(body=b"", length=10**29)),
    ("a chunk size that is not hex", chunked(TASK).replace(b"%x\r\n" % len(TASK), b"zz\r\n")),
    ("a chunk longer than it says", chunked(TASK).replace(b"%x\r\n" % len(TASK), b"3\r\n")),
    ("Transfer-Encoding: gzip, chunked", chunked(TASK).replace(b"chunked", b"gzip, chunked")),
    ("a raw byte 0xff in the path", ask(b"/\xff")),
    ("a raw byte 0xff in the query", ask(b"/tasks?x=\xff")),
    ("HTTP/1.1 without a Host", b"GET /tasks HTTP/1.1\r\n\r\n"),
    ("two Hosts", ask(b"/tasks", headers=b"Host: u\r\n")),
    ("a NUL in a header", ask(b"/tasks", headers=b"X-A: a\x00b\r\n")),
    ("a space in a header's name", ask(b"/tasks", headers=b"X A: b\r\n")),
    ("HTTP/0.9", b"GET /tasks\r\n\r\n"),
]  # fmt: skip


@pytest.mark.parametrize("case, data", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_requests_h11_cannot_parse_get_a_400_and_the_server_goes_on(
    open_server, no_errors_logged, case, data
):
    with Wire(open_server.port) as wire:
        wire.send(data)
        reply = wire.reply()
    assert reply.status == 400, f"{case}: {reply}"
    assert reply.headers.get("connection") == "close", f"{case}: {reply}"
    _still_answers(open_server)


def test_head_has_no_body_and_expect_100_continue_is_answered_once_the_body_is_wanted(
    open_server, no_errors_logged
):
    with Wire(open_server.port) as wire:
        wire.send(ask(b"/tasks", b"HEAD"))
        head = wire.reply("HEAD")
        wire.send(ask(b"/openapi.json", b"HEAD"))
        docs = wire.reply("HEAD")
        wire.send(post(JSON + b"Expect: 100-continue\r\n", body=b"", length=len(TASK)))
        task = wire.reply(after_100=TASK)
    assert head.status == 405 and head.body == b"" and head.headers.get("allow") == "GET, POST", head
    assert docs.status == 200 and docs.body == b"", docs
    assert task.status == 201 and task.informational == [100], task
    assert json.loads(task.body)["id"]


def test_pipelined_requests_are_answered_in_order(open_server, no_errors_logged):
    requests = [
        (ask(b"/stats"), "GET", 200),
        (ask(b"/tasks", b"PUT", b"Content-Length: 2\r\n") + b"{}", "PUT", 405),
        (post(), "POST", 201),
        (post(body=b"[1"), "POST", 400),
        (ask(b"/nope"), "GET", 404),
        (ask(b"/openapi.json", b"HEAD"), "HEAD", 200),
        (ask(b"/tasks"), "GET", 200),
    ]
    with Wire(open_server.port) as wire:
        wire.send(b"".join(data for data, _, _ in requests))  # all at once, before any answer
        replies = [wire.reply(method) for _, method, _ in requests]
    assert [r.status for r in replies] == [status for _, _, status in requests], replies
    accepted = json.loads(replies[2].body)["id"]
    assert accepted in {t["id"] for t in json.loads(replies[-1].body)}


@pytest.mark.parametrize(
    "large",
    [post(body=b" " * (MAX_BODY + 1)), chunked(*[b" " * 0x8000] * 3)],
    ids=["Content-Length", "chunked"],
)
def test_a_request_pipelined_after_a_413_is_answered_or_its_connection_closed(
    open_server, no_errors_logged, large
):
    """Whether a server reads the rest of a body it refused or closes the connection is its choice;
    leaving the next request unanswered on an open connection is not."""
    with Wire(open_server.port) as wire:
        wire.send(large + ask(b"/nope"))
        refused, after = wire.reply(), wire.reply(may_close=True)
    assert refused.status == 413, refused
    _refusal(refused, "too large")
    assert after is None or after.status == 404, after


def test_many_stalled_connections_do_not_keep_the_server_from_answering(open_server, no_errors_logged):
    stalled = [socket.create_connection(("127.0.0.1", open_server.port), timeout=3) for _ in range(50)]
    try:
        for n, sock in enumerate(stalled):  # half stop in their headers, half in their body
            sock.sendall(ask(b"/tasks", headers=b"X-Slow: ")[:-4] if n % 2 else post(length=1000)[:-10])
        started = time.monotonic()
        _still_answers(open_server)
        assert time.monotonic() - started < 2
    finally:
        for sock in stalled:
            sock.close()


# (the Authorization lines, the status, whether the challenge says invalid_token): a 401 has error, where
RIGHT = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
AUTH = [
    ("none", b"", 401, False),
    ("empty", b"Authorization:\r\n", 401, False),
    ("blank", b"Authorization:   \r\n", 401, False),
    ("Bearer alone", b"Authorization: Bearer\r\n", 401, False),
    ("Bearer and a space", b"Authorization: Bearer \r\n", 401, False),
    ("a wrong token", b"Authorization: Bearer nope\r\n", 401, True),
    ("the token, cut short", RIGHT.replace(b"xyz", b"xy"), 401, True),
    ("the token and one more character", RIGHT.replace(b"xyz", b"xyzz"), 401, True),
    ("the token, quoted", RIGHT.replace(b"t0ken-xyz", b'"t0ken-xyz"'), 401, True),
    ("a tab after Bearer", RIGHT.replace(b"Bearer ", b"Bearer\t"), 401, False),
    ("the token alone", RIGHT.replace(b"Bearer ", b""), 401, False),
    ("Basic", b"Authorization: Basic dXNlcjpwYXNz\r\n", 401, False),
    ("bytes beyond ASCII", b"Authorization: Bearer \xff\xfe\x80\r\n", 401, True),
    ("a scheme beyond ASCII", RIGHT.replace(b"Bearer", b"\xff\xfe"), 401, False),
    ("a token of 100 KB", b"Authorization: Bearer " + b"x" * 100_000 + b"\r\n", 401, True),
    ("twice, right both times", RIGHT * 2, 401, False),
    ("1000 times", b"Authorization: Bearer x\r\n" * 1000, 401, False),
    ("in another header", b"X-" + RIGHT, 401, False),
    ("right", RIGHT, 200, False),
    ("right, bearer in lower case", RIGHT.replace(b"Bearer", b"bearer"), 200, False),
    ("right, with spaces around the token", RIGHT.replace(b"t0ken-xyz", b" t0ken-xyz  "), 200, False),
]  # fmt: skip


@pytest.mark.parametrize("case, authorization, status, wrong_token", AUTH, ids=[c[0] for c in AUTH])
def test_a_token_server_answers_each_authorization_header_with_200_or_a_401_with_error_and_where(
    token_server, no_errors_logged, case, authorization, status, wrong_token
):
    in_url = b"/tasks?token=" + TOKEN.encode()  # a token in the URL is not read
    requests = [  # (the request, what h11 must know of it)
        (ask(in_url, headers=authorization), "GET"),
        (b"GET /stats HTTP/1.0\r\n" + authorization + b"\r\n", "GET"),
        (ask(b"/tasks", b"OPTIONS", authorization), "OPTIONS"),
        (ask(b"/tasks", b"HEAD", authorization), "HEAD"),
    ]
    for data, method in requests:
        with Wire(token_server.port) as wire:
            wire.send(data)
            reply = wire.reply(method)
        said = f"{case}: {data[:60]!r}"
        if status == 401:
            assert reply.status == 401, f"{said}: {reply}"
            challenge = reply.headers.get("www-authenticate", "")
            assert challenge.startswith('Bearer realm="cube"'), f"{said}: {reply}"
            assert ('error="invalid_token"' in challenge) == wrong_token, f"{said}: {reply}"
            if method != "HEAD":
                _refusal(reply, said)
                assert json.loads(reply.body)["where"] == "header.authorization", f"{said}: {reply}"
        else:
            assert reply.status == {"OPTIONS": 405, "HEAD": 405}.get(method, 200), f"{said}: {reply}"
    _still_answers(token_server)


def test_a_token_server_refuses_a_large_body_without_a_token_before_reading_it(
    token_server, no_errors_logged
):
    with Wire(token_server.port) as wire:
        wire.send(post(JSON + b"Expect: 100-continue\r\n", body=b"", length=10**6))
        without = wire.reply()
    with Wire(token_server.port) as wire:
        wire.send(post(JSON + RIGHT, body=b" " * (MAX_BODY + 1)))
        too_large = wire.reply()
    assert without.status == 401 and not without.informational, without
    _refusal(without, "no token")
    assert too_large.status == 413, too_large
    _refusal(too_large, "a token and too large a body")
    _still_answers(token_server)


def test_a_client_that_leaves_halfway_through_its_body_queues_nothing(open_server, no_errors_logged):
    image = f"never-finished-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"state": "SCHEDULED", "task": {"image": image, "cmd": ["true"]}}).encode()
    with Wire(open_server.port) as wire:
        wire.send(post(body=body, length=len(body) + 10))  # ten bytes promised, never sent
        wire.sock.shutdown(socket.SHUT_WR)
        assert wire.sock.recv(65536) == b"", "the server answered a request it did not have whole"
    time.sleep(0.2)  # the request, were it taken, would be queued by now
    with httpx.Client(base_url=open_server.url) as c:
        assert image not in {t["image"] for t in c.get("/tasks").json()}


def test_a_413_that_leaves_the_body_unread_closes_its_connection(open_server, no_errors_logged):
    """A client that sent Expect: 100-continue sends no body after the 413; a request it sends next on
    that connection must not be read as the body promised."""
    with Wire(open_server.port) as wire:
        wire.send(post(JSON + b"Expect: 100-continue\r\n", body=b"", length=MAX_BODY + 1))
        refused = wire.reply()
        assert refused.status == 413 and refused.headers.get("connection") == "close", refused
        wire.send(ask(b"/stats"))
        assert wire.reply(may_close=True) is None
    _still_answers(open_server)


@pytest.mark.parametrize(
    "prefix, written",
    [(b"/user/ana/proxy/8000/", True), (b'/x"><script>alert(1)</script>', False), (b"/p q", False)],
    ids=["a proxy's path", "markup", "a space"],
)
def test_x_forwarded_prefix_reaches_the_docs_page_only_if_it_is_a_path(open_server, prefix, written):
    with Wire(open_server.port) as wire:
        wire.send(ask(b"/docs", headers=b"X-Forwarded-Prefix: " + prefix + b"\r\n"))
        page = wire.reply()
    assert page.status == 200, page
    assert (prefix.rstrip(b"/") + b"/openapi.json" in page.body) == written, page.body[:2000]
    assert b"<script>alert" not in page.body


def test_limit_body_hands_the_body_over_once_then_the_clients_disconnect_with_a_fake_asgi_app():
    """A streaming answer reads receive() until the client leaves: a replay that gave the body again
    and again would spin the server's event loop forever. No route streams today; an ASGI app does."""
    said = [{"type": "http.request", "body": TASK, "more_body": False}, {"type": "http.disconnect"}]
    heard = []

    async def receive():
        return said.pop(0)

    async def app(scope, receive, send):
        heard.extend([await receive(), await receive()])

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"%d" % len(TASK))]}
    asyncio.run(LimitBody(app)(scope, receive, None))
    assert [m["type"] for m in heard] == ["http.request", "http.disconnect"] and heard[0]["body"] == TASK
