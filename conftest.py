"""Suite-wide rule: nothing cube made may outlive the tests (unit, integration, notebooks, browser)."""

import docker
import pytest

from cube import LABEL_TASK


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        client = docker.from_env()
        left = client.containers.list(all=True, filters={"label": LABEL_TASK})
    except docker.errors.DockerException:
        return  # no engine: the tests that needed one have failed already
    if not left:
        return
    names = ", ".join(f"{c.name} ({c.short_id})" for c in left)
    for c in left:
        c.remove(force=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    print(f"\nFAILED: cube containers were left behind and have now been removed: {names}")
