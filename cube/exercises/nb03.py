"""Exercises of notebook 03: the learner writes the chapter's worker.

Starting from cube.book's Skeleton (listings 4.3 and 4.4), the learner writes stop_task (listing
4.5), start_task (4.7), add_task (4.8) and run_task (4.12) as functions taking `self`. Each checker
puts the learner's function on a Skeleton, runs it on the real engine, and judges it by what the
engine and the worker's db then say; a function that passes is saved in the workbook. Where the
book has a flaw (cube/book.py lists them), the exercise asks for the fix, and says so.

`reference()` holds the solutions: the worker a learner builds, used wherever theirs has not
passed yet (`your_worker()`).
"""

import copy
from dataclasses import fields, replace
from datetime import UTC, datetime
from dis import get_instructions

from cube.book import Skeleton
from cube.docker import GONE, Docker
from cube.exercises import Exercise, Wrong, in_place_of, uses, workbook
from cube.judge import MISSING_IMAGE, Bench, Fault, call, error_of
from cube.observe import DockerResult
from cube.state import State
from cube.task import LABEL_WORKER, Config, Task

STOP_SOLUTION = """def stop_task(self, t):
    config = Config.from_task(t, self.name)
    d = Docker(config, self.client)
    result = d.stop(t.container_id)
    if result.error:
        return result  # the book records COMPLETED anyway: the container may still run
    t.finish_time = datetime.now(UTC)
    t.state = State.COMPLETED
    self.db[t.id] = t
    return result"""

START_SOLUTION = """def start_task(self, t):
    t.start_time = datetime.now(UTC)
    config = Config.from_task(t, self.name)
    d = Docker(config, self.client)
    result = d.run()
    if result.error:
        t.state = State.FAILED
        self.db[t.id] = t
        return result
    t.container_id = result.container_id
    t.state = State.RUNNING
    self.db[t.id] = t
    return result"""

ADD_SOLUTION = """def add_task(self, t):
    if t.id not in self.db and all(q.id != t.id for q in self.queue):
        self.task_count += 1  # a task this worker is given for the first time
    self.queue.append(copy.copy(t))  # Go's AddTask gets a copy of the struct"""

RUN_SOLUTION = """def run_task(self):
    if not self.queue:
        return DockerResult(result="no tasks in the queue")
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)  # the book stores a new task here; we wait
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error=f"invalid transition from {persisted.state} to {queued.state}")
    if queued.state is State.SCHEDULED:
        return self.start_task(queued)
    if queued.state is State.COMPLETED:
        return self.stop_task(queued)
    return DockerResult(error="we should not get here")"""


def namespace() -> dict:
    """What a learner's code in notebook 03 can use: the workbook's preamble."""
    names: dict = {"__name__": "__main__"}
    exec(workbook.PREAMBLE, names)  # noqa: S102 - our own imports
    return names


def reference() -> dict:
    """The solutions of 3.1, 3.2, 3.4 and 3.5: method name -> function."""
    names = namespace()
    for code in (STOP_SOLUTION, START_SOLUTION, ADD_SOLUTION, RUN_SOLUTION):
        exec(code, names)  # noqa: S102 - our own solutions
    return {name: names[name] for name in workbook.METHODS}


def your_worker() -> tuple[type, str]:
    """The learner's worker class (the reference's methods where theirs has not passed), and a line
    saying whose each method is."""
    return workbook.your_worker(reference())


def _worker(bench: Bench, **methods):
    """A worker on the Skeleton with these methods, named after the check (its containers too)."""
    cls = type("YourWorker", (Skeleton,), {**reference(), **methods})
    bench.workers.add(bench.prefix)
    return cls(bench.prefix)


def _running(w, bench: Bench, suffix: str) -> Task:
    """A task the checker started itself (a RUNNING record in w.db, with its container id)."""
    t = bench.task(suffix)
    result = Docker(Config.from_task(t, w.name)).run()
    if result.error:
        raise Fault(f"the checker could not start a container to stop: {result.error}")
    w.db[t.id] = replace(
        t, state=State.RUNNING, container_id=result.container_id, start_time=datetime.now(UTC)
    )
    return w.db[t.id]


def _yours(what: str, method, *args):
    """call(), for the learner's method: an error it raises on purpose should be a DockerResult."""
    raised = "return DockerResult(error=...) instead: the worker's caller reads result.error"
    return call(what, method, *args, on_purpose=raised)


def _judge_stop(stop_task, bench: Bench) -> str | None:
    w = _worker(bench, stop_task=stop_task)
    # three of the worker's containers run, the request's in the middle: not the newest, nor the oldest
    before, t, other = _running(w, bench, "before"), _running(w, bench, "web"), _running(w, bench, "other")
    short = t.container_id[:12]
    result = _yours(
        f"your stop_task(t) for a RUNNING task in container {short}",
        w.stop_task,
        replace(t, state=State.COMPLETED),
    )
    if stopped := [o for o in (before, other) if bench.engine.inspect(o.container_id).status != "running"]:
        return (
            f"your stop_task(t) stopped container {stopped[0].container_id[:12]}, another task's of the same "
            f"worker (t's is {short}): stop the one the request names, Docker(config).stop(t.container_id)"
        )
    seen = bench.engine.inspect(t.container_id)
    if seen.status != GONE:
        return (
            f"your stop_task returned, but container {short} still exists ({seen.status}): "
            "Docker(config).stop(container_id) stops and removes it. Did you pass it t.container_id?"
        )
    if not isinstance(result, DockerResult):
        return f"the container is gone, but your stop_task returned {result!r}: return what Docker.stop gave"
    rec = w.db.get(t.id)
    if rec is not None and isinstance(rec.state, str):
        return f"self.db[t.id] holds the string {rec.state!r}: set t.state = State.COMPLETED, a State"
    if rec is None or rec.state is not State.COMPLETED:
        return f"container {short} is gone, but self.db[t.id] says {rec and rec.state}: record COMPLETED"
    if rec.finish_time is None:
        return "the db says COMPLETED but has no finish_time: set t.finish_time = datetime.now(UTC)"
    if not isinstance(rec.finish_time, datetime) or rec.finish_time.tzinfo is None:
        return (
            f"the db's finish_time is {rec.finish_time!r}: set t.finish_time = datetime.now(UTC), a time "
            "that says its zone (datetime.now() alone does not)"
        )
    forgot = replace(other, state=State.COMPLETED, container_id="")  # a caller that did not copy the id
    result = _yours("your stop_task(t) for a request with no container id", w.stop_task, forgot)
    still = bench.engine.inspect(other.container_id).status
    state = w.db.get(other.id) and w.db[other.id].state
    if still == "running" and state is not State.RUNNING:
        return (
            f"for a request with no container id, Docker.stop fails ({error_of(result)!r}) and container "
            f"{other.container_id[:12]} still runs, but your stop_task "
            + (f"recorded {state}" if state else "removed the task's record from self.db")
            + (", as listing 4.5 does" if state is State.COMPLETED else "")
            + ". When result.error is set, return the result and leave the task as it was"
        )
    if still == "running" and not error_of(result):
        return "a stop that failed returned no error: return the DockerResult that Docker.stop gave you"
    return None


q1 = Exercise(
    name="3.1",
    question="Write stop_task(self, t), listing 4.5: stop and remove t's container with Docker.stop, and "
    "record t as COMPLETED with its finish time; if the stop fails, return its result and change nothing.",
    judge=_judge_stop,
    hint_text="config = Config.from_task(t, self.name); result = Docker(config, self.client)"
    ".stop(t.container_id). If result.error: return result. Else set t.finish_time and t.state, store "
    "self.db[t.id] = t, return result",
    solution_code=STOP_SOLUTION,
    praise="the container is stopped and removed, the db says COMPLETED with a finish time, and a stop "
    "that failed left the task RUNNING, as its container is.",
    names=("stop_task",),
    engine=True,
    keep=("stop_task",),
    wrong=[
        Wrong(
            """def stop_task(self, t):
    import docker
    docker.from_env().containers.get(t.container_id).stop()
    t.finish_time = datetime.now(UTC)
    t.state = State.COMPLETED
    self.db[t.id] = t
    return DockerResult(action="stop", container_id=t.container_id)""",
            "still exists (exited)",
        ),
        Wrong(
            """def stop_task(self, t):
    import docker
    newest = docker.from_env().containers.list(filters={"label": f"cube.worker={self.name}"})[0]
    newest.remove(force=True)
    t.finish_time = datetime.now(UTC)
    t.state = State.COMPLETED
    self.db[t.id] = t
    return DockerResult(action="stop", container_id=newest.id)""",
            "another task's of the same worker",
        ),
        Wrong(
            """def stop_task(self, t):
    return Docker(Config.from_task(t, self.name)).stop(t.container_id)""",
            "but self.db[t.id] says RUNNING",
        ),
        Wrong(
            """def stop_task(self, t):
    result = Docker(Config.from_task(t, self.name)).stop(t.container_id)
    t.finish_time = datetime.now(UTC)
    t.state = State.COMPLETED
    self.db[t.id] = t
    return result""",
            "recorded COMPLETED, as listing 4.5 does",
        ),
        Wrong(
            """def stop_task(self, t):
    result = Docker(Config.from_task(t, self.name)).stop(t.container_id)
    if not result.error:
        t.state = State.COMPLETED
        self.db[t.id] = t
    return result""",
            "has no finish_time",
        ),
        Wrong(
            """def stop_task(self, t):
    Docker(Config.from_task(t, self.name)).stop(t.container_id)
    t.finish_time = datetime.now(UTC)
    t.state = State.COMPLETED
    self.db[t.id] = t""",
            "returned None",
        ),
        Wrong(
            """def stop_task(self, t):
    result = Docker(Config.from_task(t, self.name), self.client).stop(t.container_id)
    if result.error:
        raise RuntimeError(result.error)
    t.finish_time = datetime.now(UTC)
    t.state = State.COMPLETED
    self.db[t.id] = t
    return result""",
            "return DockerResult(error=...) instead",
        ),
    ],
    setup=namespace,
)


def _judge_start(start_task, bench: Bench) -> str | None:
    w = _worker(bench, start_task=start_task)
    t = bench.task(exposed_ports={"80/tcp"})
    result = _yours("your start_task(t) for a SCHEDULED task of the demo image", w.start_task, t)
    if not bench.containers(t):
        why = f" (it returned the error {error_of(result)!r})" if error_of(result) else ""
        return (
            f"your start_task returned{why}, but the engine has no container for the task: make a Docker "
            "from Config.from_task(t, self.name) and call its run()"
        )
    seen = bench.the_container(t, "your start_task returned")
    short = seen.container_id[:12]
    if seen.status != "running":
        return f"the task's container {short} is {seen.status}, not running"
    if seen.labels.get(LABEL_WORKER) != w.name:
        return (
            f"container {short} runs, but it is not labelled {LABEL_WORKER}={w.name}: your stop_task could "
            "not stop it, as Docker.stop touches only the containers of its task and worker. Make the "
            "config with the worker's name: Config.from_task(t, self.name)"
        )
    bench.serves(seen)
    if not isinstance(result, DockerResult):
        return f"container {short} serves its page, but your start_task returned {result!r}: return run()'s"
    rec = w.db.get(t.id)
    if rec is None:
        return f"container {short} serves its page, but self.db has no record of the task: self.db[t.id] = t"
    if isinstance(rec.state, str):
        return f"self.db[t.id] holds the string {rec.state!r}: set t.state = State.RUNNING, a State"
    if rec.state is not State.RUNNING and error_of(result):  # e.g. a second run(), refused: one is there
        return (
            f"container {short} serves its page, but the db says {rec.state}, and your start_task returned "
            f"the error {error_of(result)!r}: call run() once, and record what that one call said"
        )
    if rec.state is not State.RUNNING:
        return f"container {short} serves its page, but the db says {rec.state}: set t.state = State.RUNNING"
    if rec.container_id != seen.container_id:
        return (
            f"the task runs in container {short}, but the db records container_id {rec.container_id!r}: "
            "copy result.container_id into t.container_id, or no one can stop it later"
        )
    if rec.start_time is None:
        return "the db says RUNNING but has no start_time: set t.start_time = datetime.now(UTC) (step 1)"
    bad = bench.task("missing", image=MISSING_IMAGE)
    result = _yours(
        f"your start_task(t) for the image {MISSING_IMAGE!r}, which exists nowhere", w.start_task, bad
    )
    rec = w.db.get(bad.id)
    if rec is not None and rec.state is State.RUNNING:
        return (
            f"Docker.run() failed for the image {MISSING_IMAGE!r} ({error_of(result)!r}), but your "
            "start_task "
            "recorded RUNNING: check result.error first, and record FAILED"
        )
    if rec is None or rec.state is not State.FAILED:
        return f"Docker.run() failed for a missing image, but the db says {rec and rec.state}: record FAILED"
    if not error_of(result):
        return "a start that failed returned no error: return the DockerResult that Docker.run gave you"
    return None


q2 = Exercise(
    name="3.2",
    question="Write start_task(self, t), listing 4.7: set the start time, run t's container with "
    "Docker.run, and record t as RUNNING with its container id, or as FAILED if the run failed.",
    judge=_judge_start,
    hint_text="the seven steps of listing 4.7: t.start_time = datetime.now(UTC); "
    "result = Docker(Config.from_task(t, self.name), self.client).run(); on result.error record "
    "State.FAILED and return; else t.container_id = result.container_id, State.RUNNING, self.db[t.id] = t",
    solution_code=START_SOLUTION,
    praise="the container runs and serves its page, the db says RUNNING with its container id and start "
    "time, and a missing image is recorded FAILED.",
    names=("start_task",),
    engine=True,
    keep=("start_task",),
    wrong=[
        Wrong(
            """def start_task(self, t):
    t.start_time = datetime.now(UTC)
    result = Docker(Config.from_task(t, self.name)).run()
    t.state = State.FAILED if result.error else State.RUNNING
    self.db[t.id] = t
    return result""",
            "records container_id ''",
        ),
        Wrong(
            """def start_task(self, t):
    t.start_time = datetime.now(UTC)
    result = Docker(Config.from_task(t, self.name)).run()
    t.container_id = result.container_id
    t.state = State.RUNNING
    self.db[t.id] = t
    return result""",
            "recorded RUNNING: check result.error first",
        ),
        Wrong(
            """def start_task(self, t):
    result = Docker(Config.from_task(t, self.name)).run()
    if result.error:
        t.state = State.FAILED
    else:
        t.container_id, t.state = result.container_id, State.RUNNING
    self.db[t.id] = t
    return result""",
            "has no start_time",
        ),
        Wrong(
            """def start_task(self, t):
    t.start_time = datetime.now(UTC)
    result = Docker(Config.from_task(t, self.name)).run()
    t.container_id = result.container_id
    t.state = State.RUNNING
    return result""",
            "self.db has no record of the task",
        ),
        Wrong(
            """def start_task(self, t):
    return Docker().run()""",
            "nothing to run: make it Docker(Config.from_task(task))",
        ),
        Wrong(
            """def start_task(self, t):
    t.start_time = datetime.now(UTC)
    result = Docker(Config.from_task(t)).run()
    t.container_id = result.container_id
    t.state = State.FAILED if result.error else State.RUNNING
    self.db[t.id] = t
    return result""",
            "Config.from_task(t, self.name)",
        ),
        Wrong(
            """def start_task(self, t):
    t.start_time = datetime.now(UTC)
    d = Docker(Config.from_task(t, self.name), self.client)
    result = d.run()
    t.container_id = result.container_id
    result = d.run()  # once more, to be sure
    t.state = State.FAILED if result.error else State.RUNNING
    self.db[t.id] = t
    return result""",
            "call run() once",
        ),
    ],
    setup=namespace,
)


def _judge_go_copy(answer) -> str | None:
    if not isinstance(answer, bool):
        return "answer True (the queued task sees port 8080) or False (it does not)"
    if answer:
        return None
    return (
        "Go copies the struct field by field, but ExposedPorts holds a map, and the copy of a map value "
        "still points at the same map: the caller and the queue share it"
    )


q3 = Exercise(
    name="3.3",
    question='In Go, t was made with ExposedPorts: nat.PortSet{"80/tcp": {}}. After w.AddTask(t), the '
    'caller runs t.ExposedPorts["8080/tcp"] = struct{}{}. Does the queued task now expose 8080/tcp?',
    judge=_judge_go_copy,
    hint_text="a Go struct is copied field by field; what does copying a field that holds a map copy?",
    solution_code="answer = True  # the copy shares the map: Go's copy is shallow",
    praise="Go's copy is shallow: the strings and numbers are the queue's own, the maps are shared. With "
    "listing 4.13's task, which sets no ExposedPorts, the map is nil and that line panics instead "
    "('assignment to entry in nil map').",
    wrong=[False, "yes", 1],
)


def _judge_add(add_task) -> str | None:
    w = type("YourWorker", (Skeleton,), {"add_task": add_task})("nb03-add")
    one = Task(name="nb03-one", image="cube/helloworld-http:latest", state=State.SCHEDULED)
    two = Task(name="nb03-two", image="cube/helloworld-http:latest", state=State.SCHEDULED)
    queue, given = w.queue, [copy.deepcopy(one), copy.deepcopy(two)]
    call("your add_task(one)", w.add_task, one)
    call("your add_task(two)", w.add_task, two)
    if w.queue is not queue:
        return (
            f"your add_task put a new {type(w.queue).__name__} in self.queue: add to the worker's own queue, "
            "self.queue.append(...), the deque that run_task takes from with popleft()"
        )
    changed = {f.name for t, was in zip((one, two), given, strict=True) for f in fields(Task)
               if getattr(t, f.name) != getattr(was, f.name)}  # fmt: skip
    if changed:
        said = ", ".join(sorted(changed))
        return f"your add_task changed the caller's task (its {said}): queue a copy of it as it is"
    queued = list(w.queue)
    if len(queued) != 2:
        return f"after add_task(one) and add_task(two), self.queue holds {len(queued)} task(s), not 2"
    if [q.id for q in queued] == [two.id, one.id]:
        return "self.queue holds two before one: add_task puts a task at the back, self.queue.append(...)"
    if queued[0] is one:
        return (
            "your queue holds the caller's own Task: when the caller changes it afterwards, as listing 4.13 "
            "does (t.state = State.COMPLETED), the request waiting in the queue changes too. Go's AddTask "
            "gets a copy of the struct; make one: copy.copy(t)"
        )
    if w.task_count != 2:
        return f"task_count is {w.task_count!r} after two tasks were given: count each task add_task is given"
    if type(w.task_count) is not int:
        return f"task_count is {w.task_count!r}, not a whole number: count with self.task_count += 1"
    if len(w.db):
        return (
            "your add_task wrote to self.db: it only queues the request. start_task and stop_task record a "
            "task when they act; a record made now makes run_task judge the move from the wrong state"
        )
    stop = replace(one, state=State.COMPLETED)
    call("your add_task(one) as COMPLETED", w.add_task, stop)
    states = [(q.id, q.state) for q in w.queue]
    if states != [(one.id, State.SCHEDULED), (two.id, State.SCHEDULED), (one.id, State.COMPLETED)]:
        return (
            "after one, two, then one again as COMPLETED, self.queue should hold three requests, in that "
            f"order and with those states; yours holds {[str(s) for _, s in states]}: queue every request "
            "as it comes, unchanged, even for a task already queued"
        )
    if stop.state is not State.COMPLETED or len(w.db):
        return "your add_task changed the caller's task or self.db: it only appends a copy to self.queue"
    if w.task_count != 2:
        return (
            f"task_count is {w.task_count} after two tasks, one of them given twice: it counts tasks, not "
            "calls; count a task only if its id is in neither self.db nor self.queue"
        )
    for request in [q for q in w.queue if q.id == one.id]:  # as run_task takes them and records one
        w.queue.remove(request)
    w.db[one.id] = replace(one, state=State.RUNNING)
    again = replace(one, state=State.COMPLETED)
    call("your add_task(one) as COMPLETED, once one is in self.db", w.add_task, again)
    if w.task_count != 2:
        return (
            f"task_count is {w.task_count} after a task that self.db already holds was given again: "
            "it counts tasks, not calls; a task whose id is in self.db was given before"
        )
    twin = Task(name=one.name, image=one.image, state=State.SCHEDULED)  # a new task, with the same name
    call("your add_task(a new task named like one)", w.add_task, twin)
    if w.task_count != 3:
        return (
            f"task_count is {w.task_count!r} after a new task with one's name was given: tasks are told "
            "apart by their id (names need not be unique), so count by t.id"
        )
    return None


q4 = Exercise(
    name="3.4",
    question="Write add_task(self, t), listing 4.8: put a copy of t at the back of the queue, and count "
    "it in task_count if this worker was never given it before.",
    judge=_judge_add,
    hint_text="self.queue.append(copy.copy(t)); before that, if t.id is in neither self.db nor "
    "(q.id for q in self.queue), self.task_count += 1",
    solution_code=ADD_SOLUTION,
    praise="first in at the back, a copy the caller cannot change, and every task counted once.",
    names=("add_task",),
    keep=("add_task",),
    wrong=[
        Wrong(
            "def add_task(self, t):\n    self.task_count += 1\n    self.queue.appendleft(copy.copy(t))",
            "before one",
        ),
        Wrong(
            "def add_task(self, t):\n    self.task_count += 1\n    self.queue.append(t)",
            "the caller's own Task",
        ),
        Wrong("def add_task(self, t):\n    self.queue.append(copy.copy(t))", "task_count is 0"),
        Wrong(
            "def add_task(self, t):\n    self.task_count += 1\n    self.queue.append(copy.copy(t))",
            "task_count is 3",
        ),
        Wrong("def add_task(self, t):\n    self.queue = [t]", "a new list in self.queue"),
        Wrong(
            "def add_task(self, t):\n    self.task_count += 1\n    t.name += '-queued'\n"
            "    self.queue.append(copy.copy(t))",
            "changed the caller's task (its name)",
        ),
        Wrong(
            "def add_task(self, t):\n    if all(q.id != t.id for q in self.queue):\n"
            "        self.task_count += 1\n    self.queue.append(copy.copy(t))",
            "a task that self.db already holds",
        ),
        Wrong(
            "def add_task(self, t):\n"
            "    names = {q.name for q in self.queue} | {d.name for d in self.db.values()}\n"
            "    if t.name not in names:\n        self.task_count += 1\n    self.queue.append(copy.copy(t))",
            "told apart by their id",
        ),
        Wrong(
            "def add_task(self, t):\n    if t.id not in self.db:\n        self.task_count += 1\n"
            "    self.queue.append(copy.copy(t))\n    self.db[t.id] = t",
            "wrote to self.db",
        ),
        Wrong(
            "def add_task(self, t):\n    if all(q.id != t.id for q in self.queue):\n"
            "        self.task_count += 1\n    for q in [q for q in self.queue if q.id == t.id]:\n"
            "        self.queue.remove(q)\n"
            "    self.queue.append(copy.copy(t))",
            "queue every request as it comes",
        ),
    ],
    setup=namespace,
)


_TAKE_IT = "{}: take each request off the queue as you read it, self.queue.popleft(), whether it runs or not"


def _judge_run(run_task, bench: Bench) -> str | None:
    w = _worker(bench, run_task=run_task)
    result = _yours("your run_task() on an empty queue", w.run_task)
    if error_of(result):
        why = error_of(result)
        return f"on an empty queue your run_task returned the error {why!r}: an empty queue is no error"
    if not isinstance(result, DockerResult):
        return f"on an empty queue your run_task returned {result!r}: return a DockerResult, as listing 4.12"
    first, second = bench.task(""), bench.task("")  # no names: a second start makes a second container
    w.add_task(first), w.add_task(second)
    result = _yours("your run_task() with two tasks queued", w.run_task)
    if bench.containers(second):
        return "with two tasks queued, your run_task started the one queued second: take the front, popleft()"
    if not bench.containers(first):
        return f"with a SCHEDULED task queued, your run_task started nothing (it returned {result!r})"
    if [q.id for q in w.queue] != [second.id]:
        return _TAKE_IT.format(f"{len(w.queue)} request(s) are queued after one of two was run, not 1")
    if not isinstance(result, DockerResult) or error_of(result) or not result.container_id:
        return (
            f"the task was started, but your run_task returned {result!r}: return what "
            "self.start_task(queued) returns, the DockerResult that names its container"
        )
    running = w.db[first.id]
    w.queue.clear()
    w.add_task(replace(first, state=State.SCHEDULED))
    result = _yours("your run_task() for a RUNNING task asked SCHEDULED again", w.run_task)
    if len(w.queue):
        return _TAKE_IT.format("a refused request is still queued (or was queued again)")
    if len(bench.containers(first)) > 1:
        return (
            "your run_task started a RUNNING task a second time: check "
            "valid_state_transition(persisted.state, queued.state) before starting or stopping anything"
        )
    if not error_of(result):
        return "RUNNING -> SCHEDULED is not in the map, yet your run_task returned no error: return one"
    if w.db[first.id] != running:
        return "refusing RUNNING -> SCHEDULED changed the task's record in self.db: a refusal changes nothing"
    draft = bench.task("draft", state=State.PENDING)
    w.add_task(draft)
    result = _yours("your run_task() for a new PENDING task", w.run_task)
    if not error_of(result):
        return "PENDING -> PENDING is not in the map, yet your run_task returned no error: return one"
    if draft.id in w.db:
        return (
            "the refused PENDING task has a record in self.db: listing 4.12 stores a task it sees for the "
            "first time before checking the move. A refused request should change nothing: compare with "
            "self.db.get(queued.id, queued), and let start_task or stop_task store it"
        )
    w.add_task(replace(running, state=State.RUNNING))
    result = _yours("your run_task() for a RUNNING task asked RUNNING", w.run_task)
    if bench.engine.inspect(running.container_id).status != "running":
        return (
            "RUNNING -> RUNNING is in the map but asks for neither a start nor a stop, yet your run_task "
            "stopped the container: only State.COMPLETED asks for stop_task; else return an error (step 7)"
        )
    if not error_of(result) or w.db[first.id] != running:
        return (
            "a request queued as RUNNING asks for neither a start nor a stop: return an error and change "
            "nothing (step 7 of listing 4.12)"
        )
    w.add_task(replace(running, state=State.COMPLETED))  # with its container id, as listing 4.13 does
    result = _yours("your run_task() for a RUNNING task asked COMPLETED", w.run_task)
    if bench.engine.inspect(running.container_id).status != GONE:
        return (
            "a RUNNING task asked COMPLETED is still running: for State.COMPLETED call self.stop_task(queued)"
        )
    stopped = w.db[first.id].state is State.COMPLETED
    if not stopped or not isinstance(result, DockerResult) or error_of(result):
        return (
            f"the container is stopped, but the db says {w.db[first.id].state} and your run_task returned "
            f"{result!r}: return self.stop_task(queued), which records COMPLETED"
        )
    if not uses(run_task, "valid_state_transition"):
        return (
            "it behaves, but by rules of your own: ask the map, valid_state_transition(persisted.state, "
            "queued.state) (step 4), so that a move the map gains or loses needs no change here"
        )
    return _obeys_the_map(run_task, w, bench)


def _obeys_the_map(run_task, w, bench: Bench) -> str | None:
    """With a valid_state_transition that allows only RUNNING -> COMPLETED in its place: a new task
    asked SCHEDULED is refused, and a RUNNING one asked COMPLETED is stopped, asked about as such."""
    asked = []
    if not any(
        i.opname == "LOAD_GLOBAL" and i.argval == "valid_state_transition" for i in get_instructions(run_task)
    ):
        return None  # it reaches the map another way (cube.book.valid_state_transition, say): judged above

    def only_stops(src, dst) -> bool:
        asked.append((src, dst))
        return (src, dst) == (State.RUNNING, State.COMPLETED)

    fresh, running = bench.task("refused"), _running(w, bench, "allowed")
    w.queue.clear()
    w.add_task(fresh), w.add_task(replace(running, state=State.COMPLETED))
    with in_place_of(run_task, "valid_state_transition", only_stops):
        _yours("your run_task() while valid_state_transition allows no start", w.run_task)
        asked.clear()
        _yours("your run_task() for a RUNNING task asked COMPLETED", w.run_task)
    if bench.containers(fresh):
        return (
            "with valid_state_transition saying False to the move, your run_task started the task anyway: "
            "what it says decides (step 4), or a move the map forbids would still be made"
        )
    if (State.RUNNING, State.COMPLETED) not in asked:
        last = f"valid_state_transition({', '.join(map(str, asked[-1]))})" if asked else "nothing"
        return (
            f"for a RUNNING task asked COMPLETED, your run_task asked {last}: "
            "ask about the move from the db's state, valid_state_transition(persisted.state, queued.state)"
        )
    if bench.engine.inspect(running.container_id).status != GONE:
        return "valid_state_transition allowed RUNNING -> COMPLETED, yet your run_task did not stop the task"
    return None


q5 = Exercise(
    name="3.5",
    question="Write run_task(self), listing 4.12: take the request at the front of the queue, check the "
    "move from the db's state (or its own, for a new task), and start or stop it.",
    judge=_judge_run,
    hint_text="empty queue: return DockerResult(). queued = self.queue.popleft(); persisted = "
    "self.db.get(queued.id, queued); refuse if not valid_state_transition(persisted.state, queued.state); "
    "SCHEDULED: return self.start_task(queued); COMPLETED: return self.stop_task(queued)",
    solution_code=RUN_SOLUTION,
    praise="first in, first out; the map is asked before anything is done; a refused request leaves no "
    "trace; an empty queue is no error.",
    names=("run_task",),
    engine=True,
    keep=("run_task",),
    wrong=[
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    known = self.db.get(queued.id)
    was = known.state if known else None
    if queued.state is State.SCHEDULED and was in (None, State.FAILED):
        return self.start_task(queued)
    if queued.state is State.COMPLETED and was is State.RUNNING:
        return self.stop_task(queued)
    return DockerResult(error=f"no move from {was} to {queued.state}")""",
            "ask the map",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)
    allowed = valid_state_transition(persisted.state, queued.state)
    if queued.state is State.SCHEDULED and persisted.state in (State.SCHEDULED, State.FAILED):
        return self.start_task(queued)
    if queued.state is State.COMPLETED and persisted.state is State.RUNNING:
        return self.stop_task(queued)
    return DockerResult(error=f"no move from {persisted.state} to {queued.state}")""",
            "started the task anyway",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)
    if queued.state is State.COMPLETED and persisted.state is State.RUNNING:
        return self.stop_task(queued)  # a stop needs no asking
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error=f"invalid transition from {persisted.state} to {queued.state}")
    if queued.state is State.SCHEDULED:
        return self.start_task(queued)
    return DockerResult(error="we should not get here")""",
            "your run_task asked nothing",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    if queued.state is State.SCHEDULED:
        return self.start_task(queued)
    return self.stop_task(queued)""",
            "started a RUNNING task a second time",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.pop()
    persisted = self.db.get(queued.id, queued)
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error="invalid transition")
    return self.start_task(queued) if queued.state is State.SCHEDULED else self.stop_task(queued)""",
            "started the one queued second",
        ),
        Wrong(
            """def run_task(self):
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error="invalid transition")
    return self.start_task(queued) if queued.state is State.SCHEDULED else self.stop_task(queued)""",
            "your run_task() on an empty queue raised IndexError",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    persisted = self.db.setdefault(queued.id, queued)
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error="invalid transition")
    return self.start_task(queued) if queued.state is State.SCHEDULED else self.stop_task(queued)""",
            "has a record in self.db",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error="invalid transition")
    if queued.state is State.SCHEDULED:
        return self.start_task(queued)""",
            "return an error and change nothing (step 7",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error="invalid transition")
    if queued.state is State.SCHEDULED:
        return self.start_task(queued)
    return DockerResult(error="not a start")""",
            "for State.COMPLETED call self.stop_task(queued)",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return DockerResult()
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error="invalid transition")
    return self.start_task(queued) if queued.state is State.SCHEDULED else self.stop_task(queued)""",
            "only State.COMPLETED asks for stop_task",
        ),
        Wrong(
            """def run_task(self):
    if not self.queue:
        return None
    queued = self.queue.popleft()
    persisted = self.db.get(queued.id, queued)
    if not valid_state_transition(persisted.state, queued.state):
        return DockerResult(error="invalid transition")
    if queued.state is State.SCHEDULED:
        return self.start_task(queued)
    if queued.state is State.COMPLETED:
        return self.stop_task(queued)
    return DockerResult(error="neither")""",
            "return a DockerResult, as listing 4.12",
        ),
    ],
    setup=namespace,
)
