"""Suite-wide rule: nothing cube made during the tests may outlive them.

Containers that carried cube's label before the run began (a learner's own, say) are not ours to
judge or remove; every other one left at the end fails the run and is removed.

Two test runs at once on one engine would judge each other's containers: a developer who does
that sets CUBE_LEFTOVER_CHECK=0 for all but one of them. CI never sets it. A run split over
processes (pytest-xdist, `make quick`) is judged once, by the process that began it, at its end.
"""

import os
import tempfile
import uuid
from contextlib import suppress

import docker
import nbformat
import nbval.kernel
import pytest
from jupyter_client.manager import AsyncKernelManager, KernelManager
from nbclient import NotebookClient
from traitlets import HasTraits, default

from cube import LABEL_TASK

_BEFORE = pytest.StashKey[set]()  # ids of cube containers that existed before the run

# The learner's workbook (cube.exercises.workbook): never the developer's own my_worker.py, so that
# the stored notebooks, made with none, compare equal. Notebook kernels inherit this.
os.environ["CUBE_WORKBOOK"] = os.path.join(tempfile.mkdtemp(prefix="cube-tests-"), "my_worker.py")


# Notebook kernels talk to the tests over unix sockets, not TCP. On TCP, jupyter_client picks five
# free ports and the kernel binds them a second later; in between, a container's published port or an
# outgoing connection of a test beside it may take one, and the kernel dies ("Address already in use",
# jupyter_client#487: once in CI, on notebook 05's filled-in run). A socket file of a name no other
# kernel has cannot be taken; it sits beside the kernel's connection file, and goes when the kernel ends.


class _UnixSockets(HasTraits):
    @default("transport")
    def _unix_sockets(self) -> str:
        return "ipc"

    @default("ip")
    def _socket_path(self) -> str:  # the kernel's five sockets are this path with -1 to -5
        return os.path.join(tempfile.gettempdir(), f"cube-kernel-{uuid.uuid4().hex[:12]}")


class UnixSocketKernelManager(_UnixSockets, KernelManager):
    """nbval's kernels (pytest_configure makes nbval use it)."""


class AsyncUnixSocketKernelManager(_UnixSockets, AsyncKernelManager):
    """The kernels of run_notebook (nbclient)."""


def pytest_configure() -> None:
    nbval.kernel.KernelManager = UnixSocketKernelManager  # nbval takes no kernel manager of ours


@pytest.fixture
def run_notebook():
    """run_notebook(notebook, cwd, timeout): run every cell, in place, in a kernel started in cwd."""

    def run(notebook: nbformat.NotebookNode, cwd, timeout: int) -> None:
        NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            kernel_manager_class=AsyncUnixSocketKernelManager,
            resources={"metadata": {"path": str(cwd)}},
        ).execute()

    return run


def _cube_containers() -> list:
    try:
        # ignore_removed: a container removed while being listed is not an error, and not a leftover
        return docker.from_env().containers.list(all=True, filters={"label": LABEL_TASK}, ignore_removed=True)
    except docker.errors.DockerException:
        return []  # no engine: the tests that needed one fail on their own


def _a_helper_process(session: pytest.Session) -> bool:
    return hasattr(session.config, "workerinput")  # pytest-xdist's, running part of the run


def _group(item: pytest.Item) -> str | None:
    """The xdist group of a test that must not run beside some others (`make test` runs on several
    processes, --dist loadgroup): a notebook's cells, in order, with its filled-in run (03 and 04
    together: 04 runs the worker 03 saved) and exercise 4.4's tests (its check lists the containers of
    nb04-worker-3, a worker of notebook 04, whose first cell removes every nb04- container); the tests
    that start the second engine."""
    path, filled_in = item.path.name, "test_every_notebook_runs_with_every_solution_filled_in"
    if path.endswith(".ipynb") or getattr(item, "originalname", "") == filled_in:
        number = path[:2] if path.endswith(".ipynb") else item.callspec.id[:2]
        return "notebook-03-04" if number in ("03", "04") else f"notebook-{number}"
    if path == "test_exercises.py" and getattr(item, "callspec", None) and item.callspec.id == "4.4":
        return "notebook-03-04"
    return "second-engine" if item.get_closest_marker("second_engine") else None


def pytest_itemcollected(item: pytest.Item) -> None:  # before pytest-xdist reads the groups
    if group := _group(item):
        item.add_marker(pytest.mark.xdist_group(group))
    if item.path.name == "07-metrics.ipynb":  # it measures the CPUs (a load on the web server): alone
        item.add_marker(pytest.mark.alone)


# What takes longest on four processes (measured: a minute or more each), handed out first so that
# no process is left with one of them at the end while the others wait (make test passes xdist
# --no-loadscope-reorder, which keeps this order: by default it hands out the biggest groups first).
_LONGEST_FIRST = ("sigkill", "notebook-05", "notebook-03-04", "notebook-07", "slow")


def _rank(item: pytest.Item) -> int:
    group = _group(item) or ""
    found = [i for i, what in enumerate(_LONGEST_FIRST) if what == group or item.get_closest_marker(what)]
    return min(found, default=len(_LONGEST_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: a group's tests (a notebook's cells) stay in their order


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
