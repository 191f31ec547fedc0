"""The suite's own rule, checked: a test run that leaves a cube container behind fails."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.alone  # its inner runs judge every cube container on the engine

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


@pytest.mark.slow
def test_a_run_that_leaves_a_cube_container_fails_and_removes_it(pytester, client, demo_image, monkeypatch):
    monkeypatch.delenv("CUBE_LEFTOVER_CHECK", raising=False)  # the rule is on, whatever this run says
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(
        test_leaky=f"""
        import docker

        def test_forgets_to_clean_up():
            docker.from_env().containers.run(
                "{demo_image}", detach=True, init=True,
                labels={{"cube.task": "leak", "cube.worker": "leak-check"}},
            )
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:nbval", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*FAILED: the tests left cube containers behind*"])
    assert not client.containers.list(all=True, filters={"label": "cube.worker=leak-check"})


@pytest.mark.slow
def test_a_container_that_was_there_before_the_run_is_left_alone(pytester, client, demo_image):
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(test_clean="def test_nothing():\n    pass\n")
    learners = client.containers.run(
        demo_image, detach=True, init=True, labels={"cube.task": "mine", "cube.worker": "learner"}
    )
    try:
        result = pytester.runpytest_subprocess("-p", "no:nbval", "-p", "no:cacheprovider")
        assert result.ret == 0
        learners.reload()
        assert learners.status == "running"
    finally:
        learners.remove(force=True)
