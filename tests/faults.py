"""A faulty path to the real engine, for error paths an engine cannot produce on demand.

FaultyEngine listens on 127.0.0.1 and passes each HTTP request on to the real engine's unix
socket, one request per connection (it asks the engine to close after answering). Its `rule`
decides, for each request, what happens instead:

- "forward": the real engine answers;
- "drop": the connection is closed without an answer, as when the engine dies mid-request;
- "hang": the connection is held open and never answered, as with an engine that is stuck;
- "conflict": a made-up 409 answer, as the engine gives to a start of a container that someone is
  removing at that moment (a race the real engine cannot be made to lose on demand);
- "refuse": a made-up 500 answer, as an engine gives when it fails to do what it was asked;
- "unanswered": the real engine carries the request out, but its answer is lost (the connection is
  reset), as when the engine is too slow to answer in time, or the network fails on the way back.

Everything that is forwarded reaches the real engine, so containers made through it are real.
"""

import socket
import struct
import threading
from collections.abc import Callable

import docker

ENGINE_SOCKET = "/var/run/docker.sock"
API_VERSION = "1.41"  # fixed, so that making a client asks the engine nothing

Rule = Callable[[str, str], str]  # (method, path) -> "forward", "drop", "hang", "conflict", ...


class FaultyEngine:
    def __init__(self, rule: Rule | None = None, engine_socket: str = ENGINE_SOCKET) -> None:
        self.rule: Rule = rule or (lambda method, path: "forward")
        self.engine_socket = engine_socket
        self.seen: list[tuple[str, str, str]] = []  # (method, path, what was done)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def client(self, timeout: float = 3) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=timeout)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            path = path.split("?")[0]
            action = self.rule(method, path)
            self.seen.append((method, path, action))
            if action == "hang":
                self._closed.wait()
                return
            if action == "drop":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
                return
            if action in _MADE_UP:
                status, body = _MADE_UP[action]
                head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                conn.sendall(head.encode() + b"\r\nConnection: close\r\n\r\n" + body)
                return
            headers = [h for h in lines[1:] if not h.lower().startswith("connection:")]
            request = "\r\n".join([lines[0], *headers, "Connection: close"]).encode("latin-1")
            with socket.socket(socket.AF_UNIX) as engine:
                engine.connect(self.engine_socket)
                engine.sendall(request + b"\r\n\r\n" + rest)
                if action == "unanswered":
                    while engine.recv(65536):  # the engine's whole answer, and then nothing of it
                        pass
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
                    return
                upstream = threading.Thread(target=_pipe, args=(conn, engine), daemon=True)
                upstream.start()
                _pipe(engine, conn)


_MADE_UP = {  # rule -> the engine's answer, made up
    "conflict": ("409 Conflict", b'{"message": "container is marked for removal and cannot be started"}'),
    "refuse": ("500 Internal Server Error", b'{"message": "a made-up failure of the engine"}'),
}


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass


def engine_dies_at(method: str, path_end: str) -> Rule:
    """A rule: forward everything until the first request like (method, ...path_end); drop it and
    everything after, until the rule's `revive()` is called. It dies only once."""
    state = {"dead": False, "died": False}

    def rule(m: str, path: str) -> str:
        if not state["died"] and m == method and path.endswith(path_end):
            state.update(dead=True, died=True)
        return "drop" if state["dead"] else "forward"

    rule.revive = lambda: state.update(dead=False)  # type: ignore[attr-defined]
    return rule
