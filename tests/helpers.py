"""Small helpers the tests share."""

import time

import docker
import httpx

from cube import LABEL_TASK, LABEL_WORKER


def eventually(check, seconds: float = 10, every: float = 0.05):
    """Call check() until it returns something true, for up to `seconds`; return its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def mine(client: docker.DockerClient, **labels: str) -> list:
    """The containers, running or not, carrying every given cube label (task=..., worker=...)."""
    names = {"task": LABEL_TASK, "worker": LABEL_WORKER}
    wanted = [f"{names[k]}={v}" for k, v in labels.items()]
    return client.containers.list(all=True, filters={"label": wanted})


def page(port: int, within: float = 5.0) -> str:
    """The page at 127.0.0.1:port, asking again on any transport error (refused, or reset by
    Docker's proxy while the server starts) for up to `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
