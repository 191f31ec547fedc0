"""Exercises of notebook 02: the Docker wrapper. Exercise 2.2 starts a container on the engine."""

import re
import uuid

import cube
from cube.docker import GONE, Docker, DockerResult
from cube.exercises import Exercise, practice_name, remove_containers
from cube.image import DEMO_IMAGE
from cube.state import State
from cube.task import LABEL_TASK, LABEL_WORKER, Config, Task


def _judge_config(answer, task) -> str | None:
    if not isinstance(answer, Config):
        return "make a Config from a task: Config.from_task(task, worker=...)"
    labels = answer.labels
    if LABEL_TASK not in labels:
        return (
            f"this Config has no {LABEL_TASK} label, so nobody could tell its container is cube's: "
            "let Config.from_task make it"
        )
    try:
        uuid.UUID(labels[LABEL_TASK])
    except ValueError:
        return f"the {LABEL_TASK} label should hold the task's id, not {labels[LABEL_TASK]!r}"
    if labels[LABEL_TASK] != str(task.id) or (answer.name, answer.image) != (task.name, task.image):
        return "this Config was made for another task: its label holds another id. Make it from `task`"
    if LABEL_WORKER not in labels:
        return f"without worker=..., Config.from_task leaves out the {LABEL_WORKER} label"
    if labels[LABEL_WORKER] != "nb02-other":
        return (
            f"the {LABEL_WORKER} label names the worker: it says {labels[LABEL_WORKER]!r}, not 'nb02-other'"
        )
    return None


q1 = Exercise(
    name="2.1",
    question="Make the Config that a worker named 'nb02-other' would use for `task`.",
    judge=_judge_config,
    hint_text="Config.from_task takes the task and, as a keyword, the worker's name",
    solution_code='answer = Config.from_task(task, worker="nb02-other")',
    praise="its labels say which task the container is for and which worker made it.",
    names=("answer", "task"),
    wrong=[
        Config(name="nb02-web", image=DEMO_IMAGE),
        Config.from_task(Task(name="nb02-web", image=DEMO_IMAGE)),
        Config.from_task(Task(name="nb02-web", image=DEMO_IMAGE), worker="notebook-02"),
        Config.from_task(Task(name="nb02-web", image=DEMO_IMAGE), worker="nb02-other"),  # another task
        Config(name="nb02-web", image=DEMO_IMAGE, labels={LABEL_TASK: "web", LABEL_WORKER: "nb02-other"}),
        Task(name="nb02-web", image=DEMO_IMAGE),
    ],
    setup=lambda: {"Config": Config, "task": Task(name="nb02-web", image=DEMO_IMAGE, state=State.SCHEDULED)},
)

LIMIT = 64 * 2**20


def _judge_limited(answer) -> str | None:
    if not isinstance(answer, DockerResult):
        return "pass what Docker(config).run() returns: a DockerResult"
    if answer.error:
        return f"that run failed: {answer.error}"
    if answer.action != "start" or not answer.container_id:
        return "pass the result of run(), with the id of the container it started"
    seen = Docker().inspect(answer.container_id)
    if seen.status == GONE:
        return (
            f"the engine has no container {answer.container_id[:12]}: did you stop it already? Run it again"
        )
    if LABEL_WORKER not in seen.labels:
        return (
            f"the container has no {LABEL_WORKER} label, so the clean-up cell would not find it: make the "
            "Config with Config.from_task(task, worker=WORKER)"
        )
    memory = seen.memory
    if memory != LIMIT:
        if memory == 0:
            return "the container has no memory limit: give the Task memory=64 * 2**20"
        return f"the container's memory limit is {memory} bytes; 64 MiB is 64 * 2**20 = {LIMIT}"
    return None


def _setup_limited() -> dict:
    return {
        "Task": Task,
        "Config": Config,
        "Docker": Docker,
        "State": State,
        "cube": cube,
        "WORKER": practice_name(),
    }


def _remove_containers(names: dict) -> None:
    remove_containers(names["WORKER"])


q2 = Exercise(
    name="2.2",
    question="Run the demo web server with a memory limit of 64 MiB through Docker(config).run(), and "
    "pass the DockerResult.",
    judge=_judge_limited,
    hint_text="make a new Task (no name: nb02-web is taken) with memory=64 * 2**20, turn it into a Config "
    "with Config.from_task(limited, worker=WORKER), then call run() on a Docker of that Config",
    solution_code="""limited = Task(image=cube.DEMO_IMAGE, state=State.SCHEDULED, memory=64 * 2**20)
answer = Docker(Config.from_task(limited, worker=WORKER)).run()""",
    praise="the engine holds the container to 64 MiB (HostConfig.Memory). Stop it with a Docker of its own "
    "Config, Docker(Config.from_task(limited, worker=WORKER)).stop(answer.container_id), or let the "
    "clean-up cell remove it.",
    wrong=[
        DockerResult(error="could not start task 'x': the Docker engine said: no", action="start"),
        DockerResult(action="start", container_id="0" * 64, result="success"),
        DockerResult(action="stop", result="success"),
        Task(image=DEMO_IMAGE, memory=LIMIT),
    ],
    setup=_setup_limited,
    teardown=_remove_containers,
)


def _judge_book_stop(answer) -> str | None:
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return "answer a number of seconds"
    if answer == 10:
        return None
    if answer == 30:
        return "30 s is main's sleep (listing 4.13), before the stop begins: compare the two log lines' times"
    if answer < 1:
        return "that is how long cube's stop takes; the book's took much longer"
    return "subtract the time of 'Attempting to stop container' from that of 'Stopped and removed container'"


q3 = Exercise(
    name="2.3",
    question="Listing 4.15 logs the time before and after the book's stop. How many seconds did that "
    "stop take?",
    judge=_judge_book_stop,
    hint_text="the two log lines are at 21:13:09 and 21:13:19",
    solution_code="answer = 10  # 21:13:19 - 21:13:09: Docker's whole wait before SIGKILL",
    praise="Docker's full 10 s wait after SIGTERM: the book's web server was PID 1 and ignored it.",
    wrong=[30, 0.14, 9, "10"],
)


def _judge_missing(answer) -> str | None:
    if not isinstance(answer, DockerResult):
        return "pass what run() returned: a DockerResult (run() does not raise for engine trouble)"
    if answer.error is None:
        return "this result has no error: use an image that exists nowhere, such as 'cube/no-such-image:2.0'"
    if answer.unreachable:
        return "this result says no engine answered at all; here the engine should answer, and say no image"
    if answer.container_id:
        return "a run that could not find its image made no container: container_id should be ''"
    named = re.search(r"image '([^']+)' is not on this machine", answer.error)
    if not named:
        return f"this error is not the wrapper's about a missing image: {answer.error}"
    again = Docker(Config.from_task(Task(image=named[1], state=State.SCHEDULED))).run()  # the engine, asked
    if again.container_id:
        Docker().remove(again.container_id)  # the image exists after all: leave nothing behind
    if _without_task(again.error or "") != _without_task(answer.error):
        return f"asked again, the engine answers something else for {named[1]!r}: {again.error}"
    return None


def _without_task(error: str) -> str:
    """The error without the name of its task ("task 'web-1'"), which differs from run to run."""
    return re.sub(r"(task|container) '?[^' ]*'?", "", error, count=1)


q4 = Exercise(
    name="2.4",
    question="Run a task whose image exists nowhere, e.g. 'cube/no-such-image:2.0', and pass the "
    "DockerResult: no exception, an error sentence.",
    judge=_judge_missing,
    hint_text="make the Task and Config as for the web server, with another image, and call run()",
    solution_code="""nowhere_task = Task(name="nb02-nowhere", image="cube/no-such-image:2.0",
                    state=State.SCHEDULED)
answer = Docker(Config.from_task(nowhere_task, worker=WORKER)).run()""",
    praise="the SDK's exception stayed inside the wrapper; the caller reads one field, `error`.",
    wrong=[
        DockerResult(action="start", container_id="0" * 64, result="success"),
        DockerResult(error="could not start task 'x': no Docker engine answers", unreachable=True),
        DockerResult(
            error="could not start task 'x': its container exited with code 3", container_id="0" * 64
        ),
        "could not start",
        DockerResult(error="image", action="start"),
        DockerResult(
            error="could not start task 'x': image 'cube/helloworld-http:latest' is not on this "
            "machine and the registry could not be reached.",
            action="start",
        ),
    ],
    setup=_setup_limited,
    teardown=_remove_containers,
)
