"""cube/docker.py: the Docker wrapper on a real engine, and the errors it turns into sentences."""

import ast
import socket
import uuid
from pathlib import Path

import docker
import pytest
from faults import FaultyEngine

from cube import LABEL_TASK, Config, Docker, EngineError, Observed, check_engine

ROOT = Path(__file__).resolve().parents[1]

NO_ENGINE = "unix:///tmp/cube-no-such.sock"


@pytest.fixture
def labels(client):
    """Labels for the containers a test makes; whatever carries them is removed afterwards."""
    value = f"test-docker-{uuid.uuid4().hex[:8]}"
    yield {LABEL_TASK: value}
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_TASK}={value}"}):
        c.remove(force=True)


@pytest.fixture
def no_engine() -> docker.DockerClient:
    return docker.DockerClient(base_url=NO_ENGINE, version="1.41")


def ours(client, labels) -> list[str]:
    """Ids of the containers, running or not, that carry `labels`."""
    wanted = [f"{key}={value}" for key, value in labels.items()]
    return [c.id for c in client.containers.list(all=True, filters={"label": wanted})]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def test_run_then_stop_a_container(client, demo_image, labels):
    d = Docker(Config(name="", image=demo_image, labels=labels))  # no client: from the env

    started = d.run()
    assert started.error is None
    assert started.action == "start"
    container = client.containers.get(started.container_id)
    assert container.status == "running"
    assert container.labels == labels
    assert "80/tcp" in started.host_ports  # the image EXPOSEs 80, so it is published

    stopped = d.stop(started.container_id)
    assert stopped.error is None
    assert stopped.result == "success"
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(started.container_id)


def test_stopping_a_container_that_is_already_gone_is_not_an_error(client, demo_image, labels):
    d = Docker(Config(name="", image=demo_image, labels=labels), client)
    started = d.run()
    client.containers.get(started.container_id).remove(force=True)

    result = d.stop(started.container_id)
    assert result.error is None
    assert result.result == "already gone"


def test_stop_with_no_container_id_is_an_error(client, demo_image):
    result = Docker(Config(name="", image=demo_image), client).stop("")
    assert "no container id" in result.error


def test_a_name_already_in_use_is_an_error_naming_it(client, demo_image, labels, task_name):
    first = Docker(Config(name=task_name, image=demo_image, labels=labels), client).run()
    assert first.error is None

    second = Docker(Config(name=task_name, image=demo_image, labels=labels), client).run()
    assert task_name in second.error
    assert ours(client, labels) == [first.container_id]


def test_a_start_that_fails_leaves_no_container_behind(client, demo_image, labels):
    # The first container holds the host port, so the second cannot start.
    port = free_port()
    config = Config(name="", image=demo_image, labels=labels, port_bindings={"80/tcp": str(port)})
    first = Docker(config, client).run()
    assert first.error is None

    second = Docker(config, client).run()
    assert str(port) in second.error
    assert second.container_id, "the result names the container that could not start"
    assert ours(client, labels) == [first.container_id], "and that container is gone"


def test_an_engine_that_does_not_answer_is_an_error_naming_its_address(no_engine, demo_image):
    d = Docker(Config(name="", image=demo_image), no_engine)
    assert NO_ENGINE in d.run().error
    assert NO_ENGINE in d.stop("abc123").error


def test_docker_host_at_a_missing_socket_is_an_error_not_an_exception(monkeypatch, demo_image):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    result = Docker(Config(name="", image=demo_image)).run()
    assert NO_ENGINE in result.error
    assert "Start Docker" in result.error


def test_check_engine_says_which_engine_answers(client):
    assert client.version()["Version"] in check_engine(client)


def test_check_engine_without_an_engine_raises_saying_what_to_do(no_engine):
    with pytest.raises(RuntimeError, match="Start Docker") as raised:
        check_engine(no_engine)
    assert NO_ENGINE in str(raised.value)


def test_check_engine_with_docker_host_at_a_missing_socket_raises(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    with pytest.raises(RuntimeError, match=NO_ENGINE):
        check_engine()


def test_observed_reads_the_ipv4_host_port_when_docker_publishes_two():
    # Docker 20.10 may publish a port on 0.0.0.0 and on :: with two different host ports; both
    # readings must pick the same one, or a worker would see the port "change" every round.
    inspected = {
        "Id": "c1",
        "State": {"Status": "running", "ExitCode": 0, "StartedAt": "2026-01-01T10:00:00.123456789Z"},
        "NetworkSettings": {
            "Ports": {
                "80/tcp": [{"HostIp": "::", "HostPort": "35021"}, {"HostIp": "0.0.0.0", "HostPort": "35022"}]
            }
        },
        "Config": {"Labels": {}},
    }
    listed = {
        "Id": "c1",
        "State": "running",
        "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 35022, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 35021, "Type": "tcp"},
            {"PrivatePort": 81, "Type": "tcp"},  # exposed, not published
        ],
    }
    assert Observed.from_inspect(inspected).host_ports == {"80/tcp": 35022}
    assert Observed.from_summary(listed).host_ports == {"80/tcp": 35022}
    assert Observed.from_inspect(inspected).started_at.microsecond == 123456


def test_run_with_adopt_takes_over_a_running_container_and_replaces_a_half_made_one(
    client, demo_image, labels
):
    config = Config(name="", image=demo_image, labels=labels)
    first = Docker(config, client).run()
    again = Docker(config, client).run(adopt=True)
    assert (again.error, again.result, again.container_id) == (None, "adopted", first.container_id)
    assert again.host_ports == first.host_ports
    assert ours(client, labels) == [first.container_id]

    client.containers.get(first.container_id).remove(force=True)
    half_made = client.containers.create(demo_image, labels=labels)  # created, never started
    fresh = Docker(config, client).run(adopt=True)
    assert fresh.error is None and fresh.result == "success"
    assert ours(client, labels) == [fresh.container_id] != [half_made.id]


def test_no_module_but_docker_py_imports_the_sdk_or_what_it_raises():
    """The one boundary, checked: only cube/docker.py imports docker, requests or urllib3."""
    for path in sorted((ROOT / "cube").glob("**/*.py")):  # the exercises' checkers too
        tree = ast.parse(path.read_text())
        names = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        sdk = {name for name in names if name.split(".")[0] in ("docker", "requests", "urllib3")}
        assert sdk == set() or path.name == "docker.py", f"{path.name} imports {sdk}"


def test_an_engine_error_names_its_step_and_whether_the_engine_answered(
    client, no_engine, demo_image, labels
):
    with pytest.raises(EngineError) as missing:
        Docker(client=client).kill("cube-no-such-container")
    assert (missing.value.step, missing.value.unreachable, missing.value.status) == ("kill", False, 404)
    with pytest.raises(EngineError) as nowhere:
        Docker(client=no_engine).inspect("abc123")
    assert (nowhere.value.step, nowhere.value.unreachable) == ("inspect", True)
    assert NO_ENGINE in str(nowhere.value) and "Start Docker" in str(nowhere.value)

    started = Docker(Config(name="", image=demo_image, labels=labels), client).run()
    client.api.stop(started.container_id, timeout=0)  # a container that is not running cannot be killed
    with pytest.raises(EngineError) as conflict:
        Docker(client=client).kill(started.container_id)
    assert (conflict.value.step, conflict.value.status) == ("kill", 409)
    assert started.container_id[:12] in str(conflict.value)


def test_a_409_on_start_after_create_is_explained_as_a_refused_start_with_a_faked_engine_answer(
    client, demo_image, task_name
):
    engine = FaultyEngine(lambda method, path: "conflict" if path.endswith("/start") else "forward")
    labels = {LABEL_TASK: f"test-409-{task_name}"}
    try:
        result = Docker(Config(name=task_name, image=demo_image, labels=labels), engine.client()).run()
    finally:
        engine.close()
    assert result.error.startswith(
        f"could not start container {result.container_id[:12]} of task {task_name!r}"
    )
    assert "refused to start it" in result.error and "already exists" not in result.error
    assert ours(client, labels) == [], "the container made before the refused start is removed"


def test_a_stop_with_no_config_or_a_hand_made_one_leaves_a_container_cube_did_not_make(client, demo_image):
    stranger = client.containers.run(demo_image, detach=True, init=True)  # no cube labels
    try:
        for docker_ in (Docker(client=client), Docker(Config("by-hand", demo_image), client)):
            result = docker_.stop(stranger.id)
            assert "is not labelled cube.task: cube stops only the containers it made" in result.error
            assert result.result == ""
        stranger.reload()
        assert stranger.status == "running"
    finally:
        stranger.remove(force=True)


def test_run_with_no_config_is_a_result_that_says_what_to_pass():
    result = Docker().run()
    assert result.error == "nothing to run: make it Docker(Config.from_task(task))"
    assert result.action == "start" and not result.container_id


def test_a_wrapper_on_a_config_made_by_hand_stops_the_container_it_ran(client, demo_image):
    d = Docker(Config("", demo_image), client)  # no labels given: cube adds its own
    result = d.run()
    assert result.error is None
    container = client.containers.get(result.container_id)
    assert container.labels.get(LABEL_TASK) == "", "every container cube makes carries cube's label"
    assert d.stop(result.container_id).error is None
    assert client.containers.list(all=True, filters={"id": result.container_id}) == []


def test_a_stop_given_a_task_id_for_a_container_id_is_an_error_result_not_an_exception(client):
    """Learners pass t.id for t.container_id: docker-py refuses the UUID, and stop() says so."""
    result = Docker(client=client).stop(uuid.uuid4())
    assert result.error and "Expected a string" in result.error, result
    assert result.action == "stop" and not result.unreachable
