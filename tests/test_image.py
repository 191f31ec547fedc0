"""cube/image.py: the demo web server image, built from the host's static busybox."""

import tarfile
import uuid
from contextlib import suppress

import docker
import pytest

from cube import DEMO_IMAGE, ensure_demo_image
from cube.image import HOST_BUSYBOX, _build_context, _is_static_executable


def test_ensure_demo_image_returns_its_name_and_is_idempotent(client, demo_image):
    before = client.images.get(DEMO_IMAGE).id
    assert ensure_demo_image(client) == DEMO_IMAGE
    assert ensure_demo_image() == DEMO_IMAGE  # no client: from the env
    assert client.images.get(DEMO_IMAGE).id == before  # not rebuilt


def test_busybox_static_is_a_static_executable():
    assert _is_static_executable(HOST_BUSYBOX) is True


def test_a_dynamically_linked_program_is_not_static():
    assert _is_static_executable("/bin/ls") is False


def test_a_file_that_is_not_elf_is_not_static(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    assert _is_static_executable(str(script)) is False
    assert _is_static_executable(str(tmp_path / "missing")) is False


def test_the_build_context_holds_a_scratch_dockerfile_and_busybox():
    with open(HOST_BUSYBOX, "rb") as f:
        busybox = f.read()
    with tarfile.open(fileobj=_build_context()) as tar:
        assert sorted(tar.getnames()) == ["Dockerfile", "busybox"]
        dockerfile = tar.extractfile("Dockerfile").read().decode()
        assert tar.extractfile("busybox").read() == busybox
    assert dockerfile.startswith("FROM scratch\n")
    assert "EXPOSE 80" in dockerfile


@pytest.fixture
def test_tag(client):
    tag = f"cube/helloworld-http:test-{uuid.uuid4().hex[:8]}"
    yield tag
    with suppress(docker.errors.ImageNotFound):  # the build may have failed
        client.images.remove(tag)  # only the tag: the image stays for DEMO_IMAGE


def test_the_build_context_builds_without_a_registry(client, test_tag):
    image, _ = client.images.build(fileobj=_build_context(), custom_context=True, tag=test_tag)
    assert image.attrs["Config"]["ExposedPorts"] == {"80/tcp": {}}
