"""Reaching a task's web server: fetch its page, and link to it from a notebook.

fetch() asks again on *any* transport error until a deadline. httpx's `HTTPTransport(retries=)`
is not enough: it retries only a connection that could not be made, while Docker's port proxy
accepts the connection at once and then resets it until the server in the container listens, so
such a client fails straight away with ReadError or RemoteProtocolError.

port_url() is the address a browser should use for a published port. JupyterLab may run on
another machine than the browser (JupyterHub, Codespaces, a remote server): there
`http://localhost:PORT` points at the learner's own computer. With jupyter-server-proxy installed,
the Jupyter server forwards /proxy/PORT/ to that port on its own machine, so the link works
wherever the browser is. BehindProxy lets a worker's API (cube.api) serve its /docs that way too.
"""

import importlib.util
import os
import re
import time

import httpx


def fetch(url: str, within: float = 10.0) -> httpx.Response:
    """GET url, asking again every 0.1 s on any transport error (refused, reset, timed out) for up
    to `within` seconds.

    Raises:
        httpx.TransportError: still no answer after `within` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return httpx.get(url, timeout=min(5.0, within))
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def page(port: int, within: float = 10.0) -> str:
    """The text the web server on localhost:`port` answers with, stripped (see fetch)."""
    return fetch(f"http://localhost:{port}/", within).text.strip()


def port_url(port: int) -> str:
    """Where a browser reaches a published port: through the Jupyter server's proxy when there is
    one (a path such as /proxy/32768/, under JupyterHub's prefix), else http://localhost:PORT/."""
    if importlib.util.find_spec("jupyter_server_proxy") is None:
        return f"http://localhost:{port}/"
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return f"{prefix.rstrip('/')}/proxy/{port}/"


_PATH = re.compile(rb"(/[A-Za-z0-9._~%-]+)+/?")  # /proxy/8000, /user/ana/proxy/8000/


class BehindProxy:
    """Serve /docs through the Jupyter server's proxy too (port_url).

    jupyter-server-proxy passes /proxy/PORT/docs on as /docs, and says what it cut in the
    X-Forwarded-Prefix header. Swagger's page asks for /openapi.json and its scripts by absolute
    paths, so they must carry that prefix back, or the browser asks the Jupyter server for them.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        prefix = (
            dict(scope.get("headers", ())).get(b"x-forwarded-prefix") if scope["type"] == "http" else None
        )
        if prefix and _PATH.fullmatch(prefix):  # a path, nothing else: it is written into /docs' page
            root = prefix.decode("latin-1").rstrip("/")
            scope = {**scope, "root_path": root, "path": root + scope["path"]}
        await self.app(scope, receive, send)
