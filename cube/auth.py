"""Who may call a worker's API: its token; and where it listens, and may listen without one.

Whoever can call the API can run any image, with any host port, on this machine's Docker engine:
as much as root. dockerd warns the same of its own TCP socket without TLS; the kubelet checks who
calls its API. So a worker's API may demand a token (RequireToken): every request but the docs
(/docs, /redoc, /openapi.json and their files) must carry `Authorization: Bearer TOKEN`, and any
other gets 401 before anything else is read, so it changes nothing; a websocket is refused outright.
A worker that listens beyond loopback must have one (listen_check).
"""

import hmac
import ipaddress
import logging
import socket
from urllib.parse import quote

from fastapi.responses import JSONResponse

log = logging.getLogger("cube.api")  # a refusal is the API's to log, beside its requests

MAX_HEADERS = 256 * 1024  # bytes of request line and headers uvicorn reads (its default is 16 KiB)
OPEN_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")  # the docs need no token
OPEN_PREFIX = "/static-offline-docs/"  # the docs' scripts and styles (fastapi-offline)
# Auth schemes a client may send instead of Bearer (IANA's registry, and a few in common use): a
# refusal names one of these, in this spelling, and never echoes a word it does not know.
SCHEMES = {s.lower(): s for s in (
    "Basic", "Bearer", "Concealed", "Digest", "DPoP", "GNAP", "HOBA", "Mutual", "Negotiate", "NTLM",
    "OAuth", "PrivateToken", "SCRAM-SHA-1", "SCRAM-SHA-256", "vapid", "Token", "ApiKey", "AWS4-HMAC-SHA256",
)}  # fmt: skip


class RequireToken:
    """Let in only requests that carry `Authorization: Bearer <token>`, but for the docs.

    The comparison takes the same time wherever the two first differ (hmac.compare_digest), so the
    answer's timing tells nothing of the token. A refusal is logged without what was sent.
    """

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()
        logging.getLogger("uvicorn.access").addFilter(_WITHOUT_QUERY)  # a client may put it there

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # the server starting and stopping, not a request
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":  # no route takes one: closed before it opens (HTTP 403)
            return await send({"type": "websocket.close", "code": 1008})  # "policy violation"
        if scope["type"] != "http":  # anything ASGI may add later: refused until it is checked here
            return None
        if scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIX):
            return await self.app(scope, receive, send)
        why, wrong_token = self._refusal([v for k, v in scope["headers"] if k == b"authorization"])
        if why is None:
            return await self.app(scope, receive, send)
        client = scope.get("client") or ("?", 0)
        path = quote(scope["path"], safe="/:@!$&'()*+,;=-._~")  # %0a stays %0a: no forged log line
        log.warning("refused %s %s from %s: %s", scope["method"], path, client[0], why)
        body = JSONResponse({"error": why, "where": "header.authorization"}).body
        challenge = b'Bearer realm="cube"' + (b', error="invalid_token"' if wrong_token else b"")
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", challenge)]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _refusal(self, values: list[bytes]) -> tuple[str | None, bool]:
        """Why the request may not in (None if it carries the token), and whether it sent a wrong token.
        The sentence names no more of what was sent than a known scheme: a client may put the token
        where the scheme should be."""
        if not values:
            return (
                "this worker's API needs its token: send the header Authorization: Bearer <token> "
                "(the one the worker was started with, --token or CUBE_TOKEN; a token in the URL is not read)"
            ), False
        if len(values) > 1:
            return "send one Authorization header, not several", False
        scheme, _, given = values[0].partition(b" ")
        if scheme.lower() == b"bearer" and given.strip():
            if hmac.compare_digest(given.strip(), self.token):
                return None, False
            return "that token is not this worker's: send the one it was started with", True
        must = "the Authorization header must be 'Bearer <token>'"
        if not values[0].strip():
            return f"{must}, not an empty header", False
        if scheme.lower() == b"bearer":
            return f"{must}: it has no token after Bearer", False
        known = SCHEMES.get(scheme.decode("latin-1").lower())
        return (f"{must}, not {known}" if known else f"{must}: it names no scheme before the token"), False


class WithoutQuery(logging.Filter):
    """Leave the query string out of uvicorn's request log: a client may put a token there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:  # client, method, path, http, status
            client, method, path, version, status = record.args
            record.args = (client, method, str(path).split("?", 1)[0], version, status)
        return True


_WITHOUT_QUERY = WithoutQuery()


def is_loopback(host: str) -> bool:
    """True if `host` is reachable from this machine only: localhost, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, which may mean any address: treat it as one others can reach


def token_check(token: str | None, given: str = "token") -> None:
    """Refuse a token that no request could carry.

    Raises:
        ValueError: it is empty, or only whitespace, or has whitespace at either end, which HTTP takes
            off a header's value, or a character that is not printable ASCII, which a header cannot carry
            as it is; the message names `given` and where, never the token, and says what to do.
    """
    if token is not None and not token.strip():
        raise ValueError(f"{given}: an empty token would let anyone in; give one, or None for no token")
    if token is not None and token != token.strip():
        raise ValueError(
            f"{given}: the token has whitespace at its start or end, which HTTP takes off a header, so no "
            "request could carry it; give it without"
        )
    bad = next((i for i, c in enumerate(token or "") if not (c.isascii() and c.isprintable())), None)
    if bad is not None:
        raise ValueError(
            f"{given}: character {bad + 1} of the token is not printable ASCII (a control character or "
            "beyond ASCII), which an HTTP header cannot carry as it is; use letters, digits and punctuation, "
            "or --token auto to make one"
        )


def listen_check(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token.

    Raises:
        ValueError: host is not loopback and there is no token; the message says why and what to do.
    """
    if token is None and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without a token: anyone who reaches it could run any container "
            "on this machine's Docker engine, as root. Set CUBE_TOKEN to a token (or pass --token auto to "
            "make one; a token on the command line shows in ps), or listen on 127.0.0.1 only "
            "(--host 127.0.0.1)"
        )


def url_of(sock: socket.socket) -> str:
    """The http:// address a listening socket answers on; an IPv6 address in brackets, as URLs need."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listen(host: str, port: int) -> socket.socket:
    """A listening socket for the API; port 0 picks a free one. ValueError: port is not 0-65535.

    TCP_NODELAY: without it, a small response on a kept-alive connection waits ~40 ms for the
    client's delayed ACK (Nagle's algorithm), and every request seems slow.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port: must be a whole number from 0 (any free port) to 65535, got {port!r}")
    ipv6 = ":" in host  # an IPv6 literal (::1, ::); a name or an IPv4 address binds IPv4, as before
    sock = socket.create_server((host, port), family=socket.AF_INET6 if ipv6 else socket.AF_INET)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
