import uuid

import docker
import pytest

import cube.exercises
import cube.judge
from cube import DEMO_IMAGE, LABEL_WORKER, Worker, ensure_demo_image


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="session")
def demo_image(client) -> str:
    assert ensure_demo_image(client) == DEMO_IMAGE
    return DEMO_IMAGE


@pytest.fixture
def worker(client):
    """A worker with a unique name; whatever it leaves on the engine is removed afterwards."""
    w = Worker(f"test-{uuid.uuid4().hex[:8]}", client)
    yield w
    w.close()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_WORKER}={w.name}"}):
        c.remove(force=True)


@pytest.fixture
def task_name() -> str:
    """A container name no other test uses."""
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def benches(monkeypatch) -> list[cube.judge.Bench]:
    """Every Bench the spec's rows and the exercises' checks make during the test: what they leave is
    theirs (helpers.left_by), not that of a notebook checking beside this test."""
    made = []

    class Recorded(cube.judge.Bench):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    for module in (cube.judge, cube.exercises):
        monkeypatch.setattr(module, "Bench", Recorded)
    return made
