"""cube: the worker of a small container orchestrator, after chapter 4 of
*Build an Orchestrator in Go (From Scratch)*, in Python, on a real Docker engine."""

import logging

from cube.docker import Docker, DockerResult, EngineError, Observed
from cube.doctor import check_engine, doctor
from cube.image import DEMO_IMAGE, ensure_demo_image
from cube.state import STATE_TRANSITION_MAP, State, Transition, contains, valid_state_transition
from cube.store import StoreInUse
from cube.task import LABEL_TASK, LABEL_WORKER, Config, Task, TaskError
from cube.worker import Worker

# A library logs but never prints: without this, warnings from a background thread would land
# in whichever notebook cell happens to be running.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DEMO_IMAGE",
    "LABEL_TASK",
    "LABEL_WORKER",
    "STATE_TRANSITION_MAP",
    "Config",
    "Docker",
    "DockerResult",
    "EngineError",
    "Observed",
    "State",
    "StoreInUse",
    "Task",
    "TaskError",
    "Transition",
    "Worker",
    "check_engine",
    "contains",
    "doctor",
    "ensure_demo_image",
    "valid_state_transition",
]
