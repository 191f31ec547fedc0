"""Suite-wide rule: nothing cube made during the tests may outlive them.

Containers that carried cube's label before the run began (a learner's own, say) are not ours to
judge or remove; every other one left at the end fails the run and is removed.

Two test runs at once on one engine would judge each other's containers: a developer who does
that sets CUBE_LEFTOVER_CHECK=0 for all but one of them. CI never sets it. A run split over
processes (pytest-xdist, `make quick`) is judged once, by the process that began it, at its end.
"""

import os
import tempfile
from contextlib import suppress

import docker
import pytest

from cube import LABEL_TASK

_BEFORE = pytest.StashKey[set]()  # ids of cube containers that existed before the run

# The learner's workbook (cube.exercises.workbook): never the developer's own my_worker.py, so that
# the stored notebooks, made with none, compare equal. Notebook kernels inherit this.
os.environ["CUBE_WORKBOOK"] = os.path.join(tempfile.mkdtemp(prefix="cube-tests-"), "my_worker.py")


def _cube_containers() -> list:
    try:
        # ignore_removed: a container removed while being listed is not an error, and not a leftover
        return docker.from_env().containers.list(all=True, filters={"label": LABEL_TASK}, ignore_removed=True)
    except docker.errors.DockerException:
        return []  # no engine: the tests that needed one fail on their own


def _a_helper_process(session: pytest.Session) -> bool:
    return hasattr(session.config, "workerinput")  # pytest-xdist's, running part of the run


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _a_helper_process(session):
        session.config.stash[_BEFORE] = {c.id for c in _cube_containers()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CUBE_LEFTOVER_CHECK") == "0" or _a_helper_process(session):
        return
    before = session.config.stash.get(_BEFORE, set())
    left = [c for c in _cube_containers() if c.id not in before]
    if not left:
        return
    for c in left:
        with suppress(docker.errors.APIError):  # already being removed by its owner
            c.remove(force=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    names = ", ".join(f"{c.name} ({c.short_id})" for c in left)
    print(f"\nFAILED: the tests left cube containers behind (now removed): {names}")
