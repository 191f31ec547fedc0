"""tests/engines.py, checked: a second engine serves published ports, crashes without touching the
main engine, comes back in the state its docstring promises, and leaves nothing behind."""

import os
import sys
from contextlib import closing, suppress
from pathlib import Path

import docker
import httpx
import pytest
import requests
from engines import EngineError, SecondEngine, second_engine
from helpers import page

from cube import ensure_demo_image

# Where a second engine cannot exist at all. Root on Linux without dockerd or ip is not skipped:
# it fails, saying what to install.
pytestmark = [
    pytest.mark.second_engine,
    pytest.mark.skipif(
        sys.platform != "linux" or os.geteuid() != 0, reason="a second dockerd needs Linux and root"
    ),
]

LABELS = {"cube.task": "e2-smoke", "cube.worker": "e2-smoke"}

engine2 = pytest.fixture(second_engine)


def host_port(container) -> int:
    container.reload()
    return int(container.ports["80/tcp"][0]["HostPort"])


def state(client: docker.DockerClient, name: str) -> tuple[str, int]:
    s = client.containers.get(name).attrs["State"]
    return s["Status"], s["ExitCode"]


def assert_nothing_left(engine: SecondEngine) -> None:
    """Checked from outside the helper too: processes, mounts, bridge, directory; docker0 intact."""
    assert engine.leftovers() == []
    assert not engine.root.exists()
    assert not Path("/sys/class/net", engine.bridge).exists()
    assert Path("/sys/class/net/docker0").exists()
    assert str(engine.root) not in Path("/proc/self/mountinfo").read_text()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with suppress(OSError):
            assert str(engine.root).encode() not in cmdline.read_bytes(), cmdline


def test_serves_crashes_comes_back_and_leaves_nothing(client):
    engine = SecondEngine()
    e2 = None
    try:
        engine.start()
        e2 = engine.client()
        image = ensure_demo_image(e2)
        run = {"detach": True, "init": True, "labels": LABELS}
        smoke = e2.containers.run(image, name="e2-smoke", ports={"80/tcp": None}, **run)
        e2.containers.run(image, name="e2-always", restart_policy={"Name": "always"}, **run)
        e2.containers.run(image, name="e2-unless", restart_policy={"Name": "unless-stopped"}, **run)
        port = host_port(smoke)
        assert page(port).startswith("Hello from")

        engine.kill()
        assert client.ping(), "the main engine must not notice engine 2's crash"
        assert Path("/sys/class/net/docker0").exists()
        with pytest.raises((docker.errors.DockerException, requests.RequestException)):
            e2.ping()
        survivors = [p.cmdline for p in engine.processes()]
        assert sum("containerd-shim" in c for c in survivors) == 3, survivors  # containers live on
        assert not any(c.startswith(("containerd ", "/usr/sbin/docker-proxy")) for c in survivors), survivors
        with pytest.raises(httpx.TransportError):  # ... but nobody forwards the published port
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)

        engine.restart()
        e2.close()
        e2 = engine.client()
        assert state(e2, "e2-smoke") == ("exited", 143)  # dockerd stopped it: SIGTERM via init
        assert state(e2, "e2-unless") == ("exited", 143)  # counted as a manual stop
        assert state(e2, "e2-always") == ("running", 0)
        assert e2.containers.get("e2-always").attrs["RestartCount"] == 0
        for c in e2.containers.list(all=True, filters={"label": "cube.worker=e2-smoke"}):
            c.remove(force=True)
    finally:
        if e2 is not None:
            e2.close()
        engine.stop()
    assert_nothing_left(engine)
    # Others may use the main engine meanwhile, so only ask it about what is ours: nothing.
    assert client.ping()
    assert not client.containers.list(all=True, sparse=True, filters={"label": "cube.worker=e2-smoke"})


def test_stop_after_a_crash_kills_what_survived_and_can_be_repeated(engine2):
    with closing(engine2.client()) as e2:
        image = ensure_demo_image(e2)
        e2.containers.run(image, detach=True, init=True, labels=LABELS, ports={"80/tcp": None})
    engine2.kill()
    assert engine2.processes(), "the container and its shim outlive dockerd"
    engine2.stop()
    assert_nothing_left(engine2)
    engine2.stop()  # and the fixture stops it a third time


def test_a_dockerd_that_cannot_start_says_why():
    engine = SecondEngine(extra_args=("--no-such-flag",))
    try:
        with pytest.raises(EngineError, match=r"(?s)exited with code.*unknown flag: --no-such-flag"):
            engine.start()
    finally:
        engine.stop()
    assert_nothing_left(engine)
