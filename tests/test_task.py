"""cube/task.py: the Task record, its checks, and the container Config made from it."""

import uuid
from dataclasses import fields
from datetime import UTC, datetime

import pytest

from cube import LABEL_TASK, LABEL_WORKER, Config, State, Task, TaskError
from cube.task import RULES


def test_a_new_task_has_a_fresh_uuid4_is_pending_and_has_no_times():
    t = Task(image="cube/helloworld-http")
    assert isinstance(t.id, uuid.UUID)
    assert t.id.version == 4
    assert t.id != Task(image="cube/helloworld-http").id
    assert t.state is State.PENDING
    assert t.container_id == ""
    assert t.start_time is None
    assert t.finish_time is None


@pytest.mark.parametrize("field", ["cpu", "memory", "disk"])
def test_a_negative_resource_is_refused_naming_the_field(field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        Task(image="img", **{field: -1})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image": ""}, "image"),
        ({"image": "img", "restart_policy": "sometimes"}, "restart_policy"),
        ({"image": "img", "name": "has space"}, "name"),
        ({"image": "img", "name": "-starts-with-dash"}, "name"),
        ({"image": "img", "exposed_ports": {"eighty"}}, "exposed_ports"),
        ({"image": "img", "port_bindings": {"80/http": "8080"}}, "port_bindings"),
        ({"image": "img", "start_time": datetime.now()}, "start_time"),  # naive: no tzinfo
        ({"image": "img", "finish_time": datetime.now()}, "finish_time"),
        ({"image": "img", "state": 1}, "state"),
        ({"image": "img", "cpu": float("nan")}, "cpu"),
        ({"image": "img", "cpu": float("inf")}, "cpu"),
        ({"image": "img", "memory": 1.5}, "memory"),
        ({"image": "img", "exposed_ports": {"99999/tcp"}}, "exposed_ports"),
        ({"image": "img", "port_bindings": {"80/tcp": "http"}}, "port_bindings"),
        ({"image": "img", "port_bindings": {"80/tcp": "70000"}}, "port_bindings"),
    ],
)
def test_an_impossible_field_is_refused_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Task(**kwargs)


def test_good_values_are_accepted():
    t = Task(
        name="web-1",
        image="img",
        cpu=0.5,
        memory=64 * 2**20,
        restart_policy="on-failure",
        exposed_ports={"80/tcp"},
        port_bindings={"80/tcp": "8080"},
        start_time=datetime.now(UTC),
    )
    assert t.name == "web-1"


def test_config_from_task_copies_the_fields_and_labels_task_and_worker():
    t = Task(
        name="web",
        image="img",
        cpu=0.5,
        memory=64 * 2**20,
        disk=2**30,
        exposed_ports={"80/tcp"},
        port_bindings={"80/tcp": "8080"},
        restart_policy="always",
    )
    c = Config.from_task(t, worker="w1")
    assert (c.name, c.image, c.cpu, c.memory, c.disk, c.restart_policy) == (
        "web",
        "img",
        0.5,
        64 * 2**20,
        2**30,
        "always",
    )
    assert c.exposed_ports == {"80/tcp"}
    assert c.port_bindings == {"80/tcp": "8080"}
    assert c.labels == {LABEL_TASK: str(t.id), LABEL_WORKER: "w1"}


def test_config_from_task_without_a_worker_has_only_the_task_label():
    t = Task(image="img")
    assert Config.from_task(t).labels == {LABEL_TASK: str(t.id)}


def test_config_from_task_does_not_share_the_tasks_collections():
    t = Task(image="img", exposed_ports={"80/tcp"}, port_bindings={"80/tcp": "8080"})
    c = Config.from_task(t)
    t.exposed_ports.add("443/tcp")
    t.port_bindings["443/tcp"] = "8443"
    assert c.exposed_ports == {"80/tcp"}
    assert c.port_bindings == {"80/tcp": "8080"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "a"}, "name"),  # Docker needs two characters
        ({"name": 123}, "name"),
        ({"memory": 2**20}, "memory"),  # below Docker's 6 MiB
        ({"cpu": 0.001}, "cpu"),  # would become NanoCpus 0: no limit at all
        ({"exposed_ports": None}, "exposed_ports"),
        ({"exposed_ports": [80]}, "exposed_ports"),
        ({"port_bindings": ["80/tcp"]}, "port_bindings"),
        ({"restart_policy": "on-failure:x"}, "restart_policy"),
        ({"memory": 2**63}, "memory"),
        ({"restart_policy": "on-failure:99999999999999999999"}, "restart_policy"),  # beyond the engine's int
        ({"exposed_ports": {"٨٠/tcp"}}, "exposed_ports"),  # Arabic-Indic digits: int() would read 80
        ({"port_bindings": {"80/tcp": "٨٠٨٠"}}, "port_bindings"),
        ({"cmd": ["echo", "\ud800"]}, "cmd"),  # a lone surrogate: no JSON reply, no engine could carry it
        ({"host_ports": {"80/tcp": float("nan")}}, "host_ports"),  # SQLite's JSON would not read NaN back
        ({"host_ports": {"80/tcp": "8080"}}, "host_ports"),  # the engine's host ports are numbers
        ({"host_ports": {"eighty": 8080}}, "host_ports"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else v,
)
def test_what_the_engine_would_refuse_or_ignore_is_a_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        Task(image="img", **kwargs)


@pytest.mark.parametrize("policy", ["", "no", "always", "unless-stopped", "on-failure", "on-failure:3"])
def test_dockers_own_spellings_of_restart_policies_are_accepted(policy):
    assert Task(image="img", restart_policy=policy).restart_policy == policy


def test_the_smallest_limits_docker_takes_are_accepted():
    t = Task(name="ab", image="img", memory=6 * 2**20, cpu=0.01)
    assert (t.name, t.memory, t.cpu) == ("ab", 6 * 2**20, 0.01)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Task(image="img", memory=-1), "memory"),
        (lambda: Task(image="img", port_bindings={"80/tcp": "70000"}), "port_bindings"),
        (lambda: Task.from_dict({"image": "img", "state": "RUNNIG"}), "state"),
        (lambda: Task.from_dict({"image": "img", "priority": 1}), "priority"),
        (lambda: Task(image="alpine\udc00"), "image"),  # a lone surrogate
        (lambda: Task.from_dict({"image": "img", "exposed_ports": ["1" * 5000]}), "exposed_ports"),
        (lambda: Task.from_dict({"image": "img", "port_bindings": {"80/tcp": "1" * 4400}}), "port_bindings"),
        (lambda: Task.from_dict({"image": "img", "exposed_ports": 5}), "exposed_ports"),
        (lambda: Task.from_dict({"image": "img", "exposed_ports": "80/tcp"}), "exposed_ports"),  # not 6 ports
        (lambda: Task.from_dict("img"), "task"),
        (lambda: Task.from_dict({"image": "img", "exposed_ports": [["80"]]}), "exposed_ports"),  # unhashable
        (lambda: Task.from_dict({"image": "img", 1: "x"}), "1"),  # a key that is no string, not a TypeError
    ],
)
def test_a_refused_value_raises_a_task_error_whose_field_names_it(build, field):
    with pytest.raises(TaskError) as refused:
        build()
    assert refused.value.field == field and isinstance(refused.value, ValueError)
    assert str(refused.value).startswith(f"{field}: ")


def test_every_rule_checks_a_field_of_task_and_each_field_has_a_rule():
    names = {f.name for f in fields(Task)}
    assert {field for field, _, _ in RULES} <= names
    assert names - {field for field, _, _ in RULES} == {"container_id", "reason"}  # free text


def test_a_field_set_after_the_task_was_made_is_named_when_its_config_is_made():
    t = Task(image="cube/helloworld-http:latest")
    t.start_time = datetime.now  # not called: a learner's slip in start_task
    with pytest.raises(TaskError, match="start_time: must be a timezone-aware datetime"):
        Config.from_task(t, "w")
