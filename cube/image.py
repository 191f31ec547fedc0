"""The demo web server: cube's stand-in for the book's `strm/helloworld-http`.

It answers every request on port 80 with "Hello from <container hostname>", and Docker sets the
hostname to the container's short id, so each page names the container that served it.

The image must build where no registry can be reached (CI here), so it is made from the host's
own static busybox in an empty (`FROM scratch`) image. Where there is no static busybox (macOS,
Windows, a Linux without Debian's busybox-static), it is built `FROM busybox:stable`, which Docker
pulls from Docker Hub: the one case where building it needs the internet.
"""

import io
import json
import logging
import re
import struct
import tarfile
from collections.abc import Callable

from cube.docker import Docker, DockerClient, EngineError

log = logging.getLogger(__name__)

DEMO_IMAGE = "cube/helloworld-http:latest"
HOST_BUSYBOX = "/bin/busybox"

_SERVE = 'echo "Hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'
_START_FROM_HOST = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"""
_START_FROM_HUB = "FROM busybox:stable\n"
_REST = f"""RUN mkdir -p /www /tmp
EXPOSE 80
CMD {json.dumps(["sh", "-c", _SERVE])}
"""


def ensure_demo_image(
    client: DockerClient | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> str:
    """Build the demo image unless it is already here. Returns its name.

    Args:
        client: a docker.DockerClient; None connects with docker.from_env().
        on_step: called with (step, steps) as the build goes, for a progress bar.

    Raises:
        RuntimeError: no engine answers, or the build failed; the message says what to do.
    """
    engine = Docker(client=client)
    try:
        if engine.image(DEMO_IMAGE) is not None:
            return DEMO_IMAGE
        log.info("building %s", DEMO_IMAGE)
        for line in engine.build(_build_context(), DEMO_IMAGE):
            if "error" in line:
                raise RuntimeError(f"building the demo image {DEMO_IMAGE} failed: {line['error']}")
            step = re.match(r"Step (\d+)/(\d+)", line.get("stream", ""))
            if step and on_step:
                on_step(int(step[1]), int(step[2]))
    except EngineError as e:
        raise RuntimeError(
            f"could not build the demo image {DEMO_IMAGE}: {e}. Is a Docker engine running? "
            "(`make engine` starts one on Debian; elsewhere start Docker Desktop.)"
        ) from None
    return DEMO_IMAGE


def builds_offline() -> bool:
    """True if the demo image is built from this machine's static busybox: no download at all."""
    return _is_static_executable(HOST_BUSYBOX)


def _build_context() -> io.BytesIO:
    """A tar archive holding the Dockerfile and, when the host has one, its static busybox."""
    static = _is_static_executable(HOST_BUSYBOX)
    files = {"Dockerfile": ((_START_FROM_HOST if static else _START_FROM_HUB) + _REST).encode()}
    if static:
        with open(HOST_BUSYBOX, "rb") as f:
            files["busybox"] = f.read()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _is_static_executable(path: str) -> bool:
    """True if `path` is an ELF executable with no program interpreter (PT_INTERP), i.e. static.

    A dynamically linked busybox (Debian's plain `busybox` package) would not run in an empty
    image, so this reads the ELF program headers rather than trusting the file name.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if head[:4] != b"\x7fELF":
        return False
    order = "<" if head[5] == 1 else ">"
    if head[4] == 2:  # 64-bit
        (phoff,) = struct.unpack_from(order + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", head, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", head, 0x2A)
    PT_INTERP = 3
    types = [struct.unpack_from(order + "I", head, phoff + i * phentsize)[0] for i in range(phnum)]
    return PT_INTERP not in types
