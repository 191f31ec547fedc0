"""`python -m cube doctor` on this machine: with the engine, with none, with a socket this user may
not use, and with a docker context that points elsewhere."""

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import uuid
from contextlib import suppress

import docker
import pytest

from cube import DEMO_IMAGE, Docker, State, Task, Worker, doctor
from cube.doctor import _demo_image

# Root may use any file, by the capabilities DAC_OVERRIDE and DAC_READ_SEARCH: without them it is
# refused a socket it does not own, as any user outside the docker group is.
AS_AN_ORDINARY_USER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def run_doctor(env: dict | None = None, ordinary: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "cube", "doctor"]
    if ordinary:
        command = [*AS_AN_ORDINARY_USER, *command]
    full_env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    return subprocess.run(
        command, env={**full_env, **(env or {})}, capture_output=True, text=True, timeout=60
    )


def test_the_doctor_loads_no_web_stack(demo_image):
    """The first command a learner runs: it needs the SDK, not FastAPI and uvicorn (0.8 s more here)."""
    code = "import sys; from cube.__main__ import main; main(['doctor']); "
    code += "print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("[]"), done.stdout + done.stderr


def test_with_the_engine_every_check_passes_and_the_status_is_0(demo_image):
    done = run_doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✗" not in done.stdout
    assert (
        "Docker engine" in done.stdout and "the demo image cube/helloworld-http:latest is here" in done.stdout
    )
    assert done.stdout.strip().endswith("cube doctor: all is well")
    assert doctor().ok  # the same from Python


def test_with_no_engine_it_says_so_with_a_fix_and_the_status_is_1(tmp_path):
    done = run_doctor({"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"})
    assert done.returncode == 1
    assert f"cube talks to the engine at unix://{tmp_path}/docker.sock (set by DOCKER_HOST)" in done.stdout
    assert "✗ there is no socket at" in done.stdout and "fix: start Docker Desktop" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_an_address_where_nothing_answers_is_a_problem_with_a_fix():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free: nothing listens once closed
    done = run_doctor({"DOCKER_HOST": f"tcp://127.0.0.1:{port}"})
    assert done.returncode == 1
    assert f"✗ no Docker engine answers at tcp://127.0.0.1:{port}" in done.stdout


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="needs root to drop root's rights")
def test_a_socket_this_user_may_not_use_is_permission_denied_with_the_docker_group_fix(tmp_path):
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        os.chown(path, 65534, 65534)  # nobody's only, as /var/run/docker.sock is root:docker 660
        os.chmod(path, 0o600)
        done = run_doctor({"DOCKER_HOST": f"unix://{path}"}, ordinary=True)
    assert done.returncode == 1, done.stderr
    assert "permission denied" in done.stdout and "sudo usermod -aG docker $USER" in done.stdout


def test_the_active_docker_context_is_followed_and_named(tmp_path):
    # A docker CLI configuration with a context "colima" whose socket is not /var/run/docker.sock,
    # laid out as `docker context create` writes it.
    name, host = "colima", f"unix://{tmp_path}/colima/docker.sock"
    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host}}})
    )
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": name}))
    done = run_doctor({"DOCKER_CONFIG": str(tmp_path)})
    assert (
        f"cube talks to the engine at {host} (docker context 'colima', chosen by `docker context use`)"
        in done.stdout
    )
    assert done.returncode == 1 and "✗ there is no socket at" in done.stdout


@pytest.fixture
def foreign_image(client):
    """An image the engine built for another CPU architecture than its own (FROM scratch, no RUN)."""
    arch = "arm64" if client.version()["Arch"] != "arm64" else "amd64"
    tag = f"cube/test-arch:{arch}-{uuid.uuid4().hex[:8]}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = b"FROM scratch\nCOPY Dockerfile /\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    list(
        client.api.build(fileobj=context, custom_context=True, tag=tag, platform=f"linux/{arch}", decode=True)
    )
    yield tag, arch
    with suppress(docker.errors.ImageNotFound):
        client.images.remove(tag)


def test_the_demo_image_check_fails_for_an_image_built_for_another_architecture(
    client, demo_image, foreign_image
):
    engine = Docker(client=client)
    tag, arch = foreign_image
    here = engine.version()["Arch"]
    wrong = _demo_image(engine.image(tag), here)
    assert not wrong.ok and wrong.what == f"the demo image is built for {arch}, the engine runs {here}"
    assert wrong.fix == f"docker rmi {DEMO_IMAGE} && make image"
    assert _demo_image(engine.image(DEMO_IMAGE), here).ok
    assert not _demo_image(None, here).ok, "no image at all"


@pytest.mark.parametrize(
    "address, why",
    [("tcp://127.0.0.1:notaport", "cube cannot read the address"), ("foo://bar", "Invalid bind address")],
)
def test_an_address_the_sdk_cannot_read_is_a_problem_not_a_traceback(address, why, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", address)
    said = repr(doctor())  # in this process: it raised ValueError for the first address
    assert f"✗ cube cannot use the address {address}: " in said and why in said
    assert "fix: set DOCKER_HOST to an engine's address" in said
    w = Worker("doctor-bad-address")  # the worker says the same, and records the start FAILED
    w.add_task(Task(image="cube/helloworld-http", state=State.SCHEDULED))
    result, state = w.run_task(), w.db[w.history()[0].task_id].state
    w.close()
    assert why in result.error and "a bug in cube" not in result.error
    assert not result.unreachable and state is State.FAILED  # no engine at that address will ever answer


def test_a_docker_context_that_does_not_exist_is_a_problem_with_a_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONTEXT", "no-such-context")
    said = repr(doctor())
    assert "the context 'no-such-context' does not exist" in said and said.endswith("1 problem(s) to fix")
    assert "✗ DOCKER_CONTEXT names the context 'no-such-context', which does not exist" in said
