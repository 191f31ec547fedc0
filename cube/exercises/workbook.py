"""The learner's workbook: my_worker.py, the pieces of the chapter's worker they wrote, each saved
when its check passed, so that the next notebooks can run the learner's own worker.

Notebook 01 saves the transition map, `contains` and `valid_state_transition`; notebook 03 saves
`stop_task`, `start_task`, `add_task` and `run_task`. `your_worker()` puts together a worker class
from what is saved, on cube.book's Skeleton (listings 4.3 and 4.4), and takes what is not saved yet
from the reference: the solutions of notebook 03's exercises, which pass every chapter row of
cube.spec. It always says, in one line, which pieces are whose.

The file sits beside the notebooks (the kernel's working folder), or where CUBE_WORKBOOK says. It
is plain Python that a learner can open: a header of imports, then one block per piece, each the
source of the function as written in the notebook (with the learner's own helper functions and
imports it uses). A piece saved again replaces its block. Functions are read back with
`inspect.getsource`, which works in Jupyter because IPython keeps the source of every cell.
"""

import builtins
import importlib.util
import inspect
import os
import re
from pathlib import Path
from types import FunctionType, ModuleType

from cube.book import Skeleton
from cube.exercises import _names_used
from cube.state import State

PIECES = (
    "STATE_TRANSITION_MAP",
    "contains",
    "valid_state_transition",
    "stop_task",
    "start_task",
    "add_task",
    "run_task",
)
METHODS = ("stop_task", "start_task", "add_task", "run_task")
MODULE = "my_worker"

# What the notebooks give a learner's code to work with; the top of every workbook.
PREAMBLE = """import copy
from dataclasses import replace
from datetime import UTC, datetime

from cube import Config, Docker, DockerResult, State, Task
from cube.book import STATE_TRANSITION_MAP, Skeleton, contains, valid_state_transition
"""
_HEADER = f'''"""Your worker: the pieces of the chapter's worker you wrote in the notebooks, each
saved here by its check when it passed. Change them in the notebook and check again: a check
rewrites its block. Until yours pass, the names below come from cube.book (listings 4.10 and 4.11)."""

{PREAMBLE}'''
_BLOCK = re.compile(r"^# --- (\w+) \(exercise ([\d.]+)\) ---\n", re.M)
_PREAMBLE_NAMES = {"copy", "replace", "UTC", "datetime", "Config", "Docker", "DockerResult", "State", "Task"}
_PREAMBLE_NAMES |= {"STATE_TRANSITION_MAP", "Skeleton", "contains", "valid_state_transition"}


def path() -> Path:
    """Where the workbook is: $CUBE_WORKBOOK, else my_worker.py in the working folder."""
    return Path(os.environ.get("CUBE_WORKBOOK") or "my_worker.py")


def save(pieces: dict, exercise: str) -> str:
    """Save each passing piece (name -> the function, or the map) in the workbook; say so."""
    try:
        blocks = _blocks()
        for name, obj in pieces.items():
            blocks[name] = (exercise, _source(name, obj))
        text = _HEADER + "".join(
            f"\n\n# --- {name} (exercise {blocks[name][0]}) ---\n{blocks[name][1].strip()}\n"
            for name in PIECES
            if name in blocks
        )
        compile(text, str(path()), "exec")  # what the next notebooks could not read is not written
        path().write_text(text)
    except (OSError, SyntaxError, TypeError, ValueError) as e:
        return f"(It could not be saved for the next notebooks: {e}.)"
    return f"Saved in {path().name} for the next notebooks."


def load() -> dict:
    """The pieces saved so far: name -> the function (or the map); {} if there is no workbook.

    Raises:
        Exception: whatever the file raises when run (a learner may have edited it by hand).
    """
    if not path().exists():
        return {}
    spec = importlib.util.spec_from_file_location(MODULE, path())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: getattr(module, name) for name in _blocks() if hasattr(module, name)}


def yours(name: str, reference, whose: str = "the reference's"):
    """The learner's piece `name` if the workbook has it, else `reference`; and one line saying which
    (`whose` names the reference in that line)."""
    try:
        mine = load().get(name)
    except Exception as e:  # noqa: BLE001 - a broken workbook: say so, and go on with the reference
        why = f"{type(e).__name__}: {e}"
        return reference, f"{name}: {whose}; {path().name} could not be read ({why})"
    if mine is None:
        return reference, f"{name}: {whose} (yours has not passed its check yet)"
    return mine, f"{name}: yours, from {path().name}"


def your_worker(reference: dict[str, FunctionType]) -> tuple[type, str]:
    """A worker class on cube.book's Skeleton with the learner's methods where they passed their
    checks and `reference`'s elsewhere; and one line saying whose each method is."""
    try:
        pieces, trouble = load(), ""
    except Exception as e:  # noqa: BLE001 - a broken workbook: say so, and go on with the reference
        pieces, trouble = {}, f" ({path().name} could not be read: {type(e).__name__}: {e})"
    methods = {name: pieces.get(name) or reference[name] for name in METHODS}
    cls = type("YourWorker", (Skeleton,), methods)
    mine = [name for name in METHODS if name in pieces]
    if len(mine) == len(METHODS):
        return cls, f"Your worker: every method is yours, from {path().name}."
    if not mine:
        return cls, f"The reference worker: none of your methods has passed its check yet.{trouble}"
    theirs = [name for name in METHODS if name not in pieces]
    return cls, f"Your worker: {', '.join(mine)} yours; {', '.join(theirs)} the reference's (not passed yet)."


def _blocks() -> dict[str, tuple[str, str]]:
    """The workbook's blocks: piece name -> (exercise, source)."""
    if not path().exists():
        return {}
    parts = _BLOCK.split(path().read_text())
    return {parts[i]: (parts[i + 1], parts[i + 2]) for i in range(1, len(parts) - 2, 3)}


def _source(name: str, obj) -> str:
    if isinstance(obj, dict):
        return f"{name} = {_map_source(obj)}"
    if not isinstance(obj, FunctionType):
        raise TypeError(f"{name} is a {type(obj).__name__}, not a function")
    return _function_source(obj, name)


def _map_source(transitions: dict) -> str:
    lines = [
        f"    State.{src.name}: [{', '.join(f'State.{d.name}' for d in dsts)}],"
        for src, dsts in transitions.items()
    ]
    return "{\n" + "\n".join(lines) + "\n}"


def _function_source(fn: FunctionType, name: str, seen: set | None = None) -> str:
    """The function's source, named `name`, after what it uses from the notebook: the learner's own
    helper functions (their source too) and the modules and names they imported."""
    seen = seen if seen is not None else set()
    seen.add(fn.__name__)
    try:
        source = inspect.getsource(fn)
    except OSError as e:
        raise ValueError(f"the source of {fn.__name__} is not available ({e})") from None
    source = inspect.cleandoc(source) if source.startswith((" ", "\t")) else source
    if fn.__name__ == "<lambda>" and not re.match(rf"{name}\s*=\s*lambda\b", source):
        raise ValueError(f"a lambda has no name to save it by: write it as `def {name}(...):`")
    if fn.__name__ not in (name, "<lambda>"):
        source += f"\n\n{name} = {fn.__name__}\n"
    needs = []
    for used in sorted(_names_used(fn.__code__) - _PREAMBLE_NAMES - seen - set(dir(builtins))):
        if used not in fn.__globals__:
            continue
        value = fn.__globals__[used]
        seen.add(used)
        if isinstance(value, ModuleType):
            needs.append(f"import {value.__name__}" + ("" if value.__name__ == used else f" as {used}"))
        elif isinstance(value, FunctionType) and value.__module__ in ("__main__", MODULE):
            if value.__module__ == "__main__":
                needs.append(_function_source(value, used, seen))
        elif isinstance(value, State):
            needs.append(f"{used} = State.{value.name}")
        elif isinstance(value, int | float | str | bool) or value is None:
            needs.append(f"{used} = {value!r}")
        elif getattr(value, "__module__", "__main__") != "__main__" and hasattr(value, "__qualname__"):
            needs.append(f"from {value.__module__} import {value.__qualname__} as {used}")
    return "\n".join([*needs, source]) if needs else source
