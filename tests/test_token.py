"""The worker's API lets in only those who hold its token: real `python -m cube worker` processes,
real HTTP on 127.0.0.1, the real engine."""

import asyncio
import re
import subprocess
import sys
import uuid

import httpx
import pytest
from helpers import cli_refusal, cube_server, eventually, mine, remove_containers, token_env

from cube import DEMO_IMAGE, Worker
from cube.api import Server
from cube.auth import RequireToken, is_loopback

WEB = {"image": DEMO_IMAGE, "exposed_ports": ["80/tcp"]}
SOME_ID = str(uuid.uuid4())
ENDPOINTS = [
    ("GET", "/tasks", None),
    ("POST", "/tasks", {"state": "SCHEDULED", "task": WEB}),
    ("GET", f"/tasks/{SOME_ID}", None),
    ("DELETE", f"/tasks/{SOME_ID}", None),
    ("GET", f"/tasks/{SOME_ID}/history", None),
    ("GET", "/stats", None),
    ("GET", "/no-such-path", None),
    ("PUT", "/tasks", None),
]


def command(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """python -m cube worker with these arguments, and no CUBE_TOKEN but what `env` gives."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cube",
            "worker",
            "--port",
            "0",
            "--name",
            f"test-tok-{uuid.uuid4().hex[:6]}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=token_env(env),
    )


def test_listening_beyond_loopback_without_a_token_exits_2_and_says_why_and_what_to_pass(monkeypatch, capsys):
    run = command("--host", "0.0.0.0")  # once as its own process, as a user runs it
    assert (run.returncode, run.stdout) == (2, ""), run.stderr
    assert run.stderr.startswith("cube worker: refusing to listen on 0.0.0.0 without a token")
    for host in ("0.0.0.0", "::", "worker.example"):
        status, out, err = cli_refusal(monkeypatch, capsys, "--host", host)
        assert (status, out) == (2, ""), host
        (line,) = err.strip().splitlines()
        assert line.startswith(f"cube worker: refusing to listen on {host} without a token")
        assert "Set CUBE_TOKEN" in line and "--token auto" in line and "shows in ps" in line
        assert "--host 127.0.0.1" in line and "root" in line


@pytest.mark.parametrize("how", ["--token", "CUBE_TOKEN"])
def test_an_empty_token_is_refused(how, monkeypatch, capsys):
    given = ["--token="] if how.startswith("--") else []
    status, out, err = cli_refusal(monkeypatch, capsys, *given, env=None if given else {"CUBE_TOKEN": ""})
    assert (status, out) == (2, "")
    assert err.strip() == f"cube worker: {how} is empty: give a token, or --token auto to make one"


@pytest.mark.parametrize("how", ["--token", "CUBE_TOKEN"])
def test_a_token_of_only_spaces_is_refused_as_empty(how, monkeypatch, capsys):
    given = ["--token=   "] if how.startswith("--") else []
    status, out, err = cli_refusal(monkeypatch, capsys, *given, env=None if given else {"CUBE_TOKEN": "   "})
    assert (status, out) == (2, "")
    assert err.strip() == f"cube worker: {how} is empty: give a token, or --token auto to make one"


@pytest.mark.parametrize(
    "token", [" abc", "abc ", "\tabc\n"], ids=["space before", "space after", "tab, newline"]
)
@pytest.mark.parametrize("how", ["--token", "CUBE_TOKEN"])
def test_a_token_with_whitespace_at_an_end_is_refused_as_no_request_could_carry_it(
    how, token, monkeypatch, capsys
):
    given = [f"--token={token}"] if how.startswith("--") else []
    status, out, err = cli_refusal(monkeypatch, capsys, *given, env=None if given else {"CUBE_TOKEN": token})
    assert (status, out) == (2, "")
    (line,) = err.strip().splitlines()
    assert line.startswith(f"cube worker: {how}: the token has whitespace at its start or end"), line
    assert "abc" not in line, "the token is not echoed"


@pytest.mark.parametrize(
    "token", ["s3cr\x1bet", "s3\ncret", "s3cr\x7fet", "s3cré"], ids=["ESC", "newline", "DEL", "beyond ASCII"]
)
@pytest.mark.parametrize("how", ["--token", "CUBE_TOKEN"])
def test_a_token_no_header_can_carry_is_refused_naming_where_and_not_echoed(how, token, monkeypatch, capsys):
    given = [f"--token={token}"] if how.startswith("--") else []
    status, out, err = cli_refusal(monkeypatch, capsys, *given, env=None if given else {"CUBE_TOKEN": token})
    assert (status, out) == (2, "")
    (line,) = err.strip().splitlines()
    where = next(i for i, c in enumerate(token) if not (c.isascii() and c.isprintable())) + 1
    assert line.startswith(f"cube worker: {how}: character {where} of the token is not printable ASCII"), line
    assert "--token auto" in line and "s3cr" not in line


def test_a_token_with_a_space_inside_is_sent_and_let_in():
    w = Worker(f"test-tok-{uuid.uuid4().hex[:8]}")
    with w, Server(w, token="two words") as s:
        assert httpx.get(f"{s.url}/tasks", headers=s.headers, timeout=5).json() == []
        assert (
            httpx.get(f"{s.url}/tasks", headers={"Authorization": "Bearer two"}, timeout=5).status_code == 401
        )


def test_the_worker_listens_on_ipv6_loopback_and_gives_its_url_in_brackets():
    w = Worker(f"test-tok-{uuid.uuid4().hex[:8]}")
    with w, Server(w, host="::1") as s:  # the command line prints the same url_of
        assert re.fullmatch(r"http://\[::1\]:\d+", s.url), s.url
        assert httpx.get(f"{s.url}/tasks", timeout=5).json() == []
        with pytest.raises(httpx.ConnectError):  # on ::1 only, not on 127.0.0.1 too
            httpx.get(f"http://127.0.0.1:{s.port}/tasks", timeout=5)


def test_a_token_is_not_on_the_command_line_of_the_tests_workers(guarded):
    with open(f"/proc/{guarded.process.pid}/cmdline", "rb") as f:
        assert guarded.token.encode() not in f.read()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.8.9.10"])
def test_loopback_is_loopback(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "worker.example", ""])
def test_anything_else_is_not(host):
    assert not is_loopback(host)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, client, demo_image):
    """A worker process with a token, on 127.0.0.1."""
    name = f"test-tok-{uuid.uuid4().hex[:8]}"
    with cube_server(tmp_path_factory.mktemp("tok"), name, db=None) as s:
        yield s
    remove_containers(client, name)


WRONG = {  # the Authorization header sent, {token} filled in with the right one; None: no header
    "no header": None,
    "a wrong token": "Bearer not-the-token",
    "Basic instead of Bearer": "Basic {token}",
    "the token alone, with no scheme": "{token}",
    "the token in the query string": None,
    "a header of 100 KiB": "Bearer " + "x" * 100 * 1024,
    "Bearer and nothing": "Bearer",
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_every_endpoint_refuses_a_request_without_the_token_with_401_and_does_nothing(guarded, client, wrong):
    headers = {"Authorization": WRONG[wrong].format(token=guarded.token)} if WRONG[wrong] else {}
    params = {"token": guarded.token} if "query" in wrong else None
    for method, path, body in ENDPOINTS:
        r = httpx.request(
            method, f"{guarded.url}{path}", headers=headers, params=params, json=body, timeout=10
        )
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"].startswith('Bearer realm="cube"')
        answer = r.json()
        assert set(answer) == {"error", "where"} and answer["where"] == "header.authorization"
        assert len(answer["error"]) > 20 and guarded.token[:12] not in r.text
    with guarded.client(timeout=10) as api:
        assert api.get("/tasks").json() == [], "a refused request made a task"
    assert mine(client, worker=guarded.name) == []


def test_what_is_refused_is_logged_without_the_token(guarded):
    httpx.get(f"{guarded.url}/tasks", params={"token": guarded.token}, timeout=5)
    basic = httpx.get(f"{guarded.url}/stats", headers={"Authorization": f"Basic {guarded.token}"}, timeout=5)
    # the token where the scheme should be: its first characters once came back as "the scheme"
    bare = httpx.get(f"{guarded.url}/tasks/x", headers={"Authorization": guarded.token}, timeout=5)
    assert basic.json()["error"] == "the Authorization header must be 'Bearer <token>', not Basic"
    assert (
        bare.json()["error"]
        == "the Authorization header must be 'Bearer <token>': it names no scheme before the token"
    )
    log = guarded.stderr()
    assert "refused GET /tasks from 127.0.0.1" in log and "refused GET /stats" in log
    assert "refused GET /tasks/x" in log
    for said in (basic.text, bare.text, log):
        assert guarded.token[:8] not in said


def test_a_refused_path_is_logged_quoted_so_that_a_newline_in_it_forges_no_log_line(guarded):
    forged = "/tasks%0a2026-01-01 00:00:00,000 INFO cube.api: all is well"
    assert httpx.get(f"{guarded.url}{forged}", timeout=5).status_code == 401
    log = guarded.stderr()
    assert "refused GET /tasks%0A2026-01-01%2000:00:00,000%20INFO%20cube.api:%20all%20is%20well from" in log
    assert not [line for line in log.splitlines() if line.startswith("2026-01-01")], "a forged line"


def test_a_websocket_is_closed_before_it_opens_and_the_app_never_sees_it_asgi_by_hand():
    """A fake ASGI scope: uvicorn here has no websocket library, so no real one can arrive."""
    seen, sent = [], []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    async def send(message):
        sent.append(message)

    guard = RequireToken(app, "t0ken")
    for kind in ("websocket", "something-new"):
        scope = {"type": kind, "path": "/tasks", "headers": [(b"authorization", b"Bearer t0ken")]}
        asyncio.run(guard(scope, None, send))
    asyncio.run(guard({"type": "lifespan"}, None, send))
    assert seen == ["lifespan"] and sent == [{"type": "websocket.close", "code": 1008}]


def test_with_the_token_a_task_starts_serves_and_stops(guarded, client):
    with guarded.client(timeout=10) as api:
        r = api.post("/tasks", json={"state": "SCHEDULED", "task": WEB})
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        running = eventually(lambda: api.get(f"/tasks/{task_id}").json()["state"] == "RUNNING")
        assert running, api.get(f"/tasks/{task_id}").json()
        assert api.get("/stats").status_code == 200
        assert api.delete(f"/tasks/{task_id}").status_code == 204


def test_the_docs_load_without_it_and_declare_the_scheme(guarded):
    for page in ("/docs", "/redoc"):
        r = httpx.get(f"{guarded.url}{page}", timeout=5)
        assert r.status_code == 200 and "/openapi.json" in r.text, page
    script = re.search(r'src="(/static-offline-docs/redoc[^"]+)"', httpx.get(f"{guarded.url}/redoc").text)
    assert httpx.get(f"{guarded.url}{script.group(1)}", timeout=5).status_code == 200, "redoc's own script"
    spec = httpx.get(f"{guarded.url}/openapi.json", timeout=5).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the worker's token (--token)",
    }
    assert spec["paths"]["/tasks"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "click Authorize" in spec["info"]["description"]


def test_token_auto_makes_one_and_prints_it_once(tmp_path, client):
    name = f"test-tok-{uuid.uuid4().hex[:8]}"
    with cube_server(tmp_path, name, db=None, token="auto") as s:
        # printed right after the URL: the reader thread may not have it yet
        (line,) = eventually(lambda: [x for x in s.lines if x.startswith("token: ")], seconds=5)
        token = line.split()[1]
        assert line.endswith(f"(send it as the header Authorization: Bearer {token})")
        assert re.fullmatch(r"[0-9a-f]{48}", token), "hex: never a leading '-', taken for an option"
        assert httpx.get(f"{s.url}/tasks", timeout=5).status_code == 401
        assert (
            httpx.get(f"{s.url}/tasks", headers={"Authorization": f"Bearer {token}"}, timeout=5).json() == []
        )
        assert token not in s.stderr()


def test_on_loopback_a_token_is_optional_as_before(tmp_path):
    with cube_server(tmp_path, f"test-tok-{uuid.uuid4().hex[:8]}", db=None, token=None) as s:
        assert httpx.get(f"{s.url}/tasks", timeout=5).json() == []


def test_with_a_token_it_may_listen_beyond_loopback(tmp_path):
    name = f"test-tok-{uuid.uuid4().hex[:8]}"
    with cube_server(tmp_path, name, db=None, host="0.0.0.0") as s:
        port = s.port
        assert httpx.get(f"http://127.0.0.1:{port}/tasks", headers=s.headers, timeout=5).json() == []
        assert httpx.get(f"http://127.0.0.1:{port}/tasks", timeout=5).status_code == 401


def test_a_server_in_python_keeps_the_same_rules():
    w = Worker(f"test-tok-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ValueError, match="refusing to listen on 0.0.0.0 without a token"):
        Server(w, host="0.0.0.0")
    with pytest.raises(ValueError, match="token: an empty token"):
        Server(w, token="")
    with pytest.raises(ValueError, match="token: an empty token"):
        Server(w, token="  ")
    with pytest.raises(ValueError, match="token: the token has whitespace at its start or end"):
        Server(w, token="t0ken ")
    with pytest.raises(ValueError, match="token: character 3 of the token is not printable ASCII"):
        Server(w, token="t0\rken")
    with Server(w, token="t0ken") as server:
        assert server.headers == {"Authorization": "Bearer t0ken"}
        assert httpx.get(f"{server.url}/stats", timeout=5).status_code == 401
        assert httpx.get(f"{server.url}/stats", headers=server.headers, timeout=5).status_code == 200
    w.close()
