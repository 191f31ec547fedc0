"""A second Docker engine on this machine, for tests that need more than one engine.

Why: an orchestrator spreads tasks over workers on several engines, and losing one engine must not
disturb the others. A second real `dockerd` (next to the main one on /var/run/docker.sock) is the
honest way to test that, including an engine crash. Linux and root only (Debian 12, docker.io 20.10).

Set-up, and why each flag (see `SecondEngine.command`)::

    dockerd --config-file ROOT/daemon.json --host unix://ROOT/docker.sock
            --data-root ROOT/data --exec-root ROOT/exec --pidfile ROOT/dockerd.pid
            --bridge cube1 --iptables=false --ip-masq=false --ip-forward=false --userland-proxy=true
            --containerd-namespace NAME --containerd-plugins-namespace NAME-plugins
            --cgroup-parent /NAME --exec-opt native.cgroupdriver=cgroupfs

- ROOT defaults to /tmp/NAME, NAME being cube-e2-<8 hex digits>: short, because unix socket paths
  must be under 108 bytes and the longest one is ROOT/exec/containerd/containerd.sock.ttrpc.
- Its own config file (``{}``): a host /etc/docker/daemon.json (hosts, bridge, data-root) must not
  apply to it.
- Its own bridge, made with `ip` before dockerd starts (`--bridge` needs an existing bridge with an
  address). Never `--bridge none`: that deletes the host's docker0 and breaks the main engine.
- `--iptables=false`: the main engine's iptables chains stay untouched. Published ports still work:
  docker-proxy (the userland proxy) listens on the host port and forwards to the container's
  address on cube1, which the host reaches directly (measured: GET http://127.0.0.1:<port>/ answers).
  `--ip-masq=false` / `--ip-forward=false`: nothing else on the host changes. The price: containers
  on engine 2 have no NAT to the outside, and with br_netfilter loaded (it is here) traffic between
  two containers on cube1 meets the main engine's FORWARD DROP policy (measured: times out). What
  tests of published ports need works: host to container, and container to a published port at
  the bridge address (172.31.250.1:<port>).
- No `--containerd`: dockerd starts its own ("managed") containerd, whose config, socket and state
  are under ROOT/exec/containerd and ROOT/data/containerd, apart from the main engine's
  /var/run/docker/containerd. Caveat: dockerd 20.10 uses the system containerd instead whenever
  /run/containerd/containerd.sock exists (not the case here; `start()` logs a warning). The own
  containerd namespace keeps the two engines' containers apart even then.
- Its own cgroup parent /NAME: its containers are not mixed into the main engine's /docker cgroups,
  so `stop()` can find every container process by its cgroup, and remove the cgroup directories
  dockerd leaves behind (it leaves the empty parent even after a clean shutdown).

What `kill()` (SIGKILL to dockerd, an engine crash) does, as observed here:

- dockerd dies, and within milliseconds so do its managed containerd (dockerd starts it with a
  parent-death signal, SIGKILL) and its docker-proxy processes.
- The containerd-shim-runc-v2 processes (one per container, children of PID 1) and the containers
  under them keep running: a container still answers on its cube1 address (172.31.250.x:80), but
  its published host port refuses connections, since no docker-proxy listens any more. Overlay and
  netns mounts stay. The API socket file stays with nobody listening: clients get "connection
  refused".

What `restart()` finds afterwards, as observed here (no `--live-restore`):

- The new containerd reconnects to the surviving shims; dockerd then stops every container it finds
  alive, since live-restore is off. With `init=True` that takes ~0.1 s and the container exits
  with 143 (128 + SIGTERM). A PID 1 that ignores SIGTERM (no init) is killed after its 10 s stop
  timeout (exit 137), and the API only answers after those 10 s.
- Then restart policies: "always" and "on-failure" (143 is a failure) run again, same id, with
  RestartCount still 0, a new address, and possibly a different published host port (ephemeral
  ports are chosen anew). "unless-stopped" is NOT restarted: stays exited (143), because dockerd
  counts its own stop as a manual one. No policy: exited (143).
- A killed dockerd that nobody reaped (a zombie) makes the next one refuse to start ("pid file
  found"), and a zombie containerd whose pid is in containerd.pid would be taken for a live one.
  PID 1 here reaps orphans late, so this module reaps its own dockerd and removes stale pid files.

`stop()` sends SIGTERM to dockerd by the pid it started and waits (dockerd stops the containers,
then containerd). Then, for whatever is left (always, after a `kill()`), it SIGKILLs every process
of engine 2 (dockerd and containerd by their command lines, shims by their containerd address or
namespace, container processes by their cgroup), removes the shims' sockets in /run/containerd/s,
unmounts what is left under ROOT (dockerd even leaves its bind mount of the data root after a clean
shutdown), removes the cgroups, deletes the bridge and ROOT. It never signals a process by name, so
the main engine is never touched. It is safe after `kill()` and safe twice, and it raises if
anything is left, naming it.

dockerd is started with a parent-death signal (SIGTERM): if the test process dies without
`stop()`, engine 2 shuts itself down cleanly (measured), leaving only the bridge (the next
`start()` replaces it), the data-root bind mount, empty cgroups /sys/fs/cgroup/*/NAME and ROOT;
`SecondEngine(root=ROOT)` cannot adopt those, clean them by hand (umount, rmdir, ip link del,
rm -r). The signal fires when the *thread* that started dockerd ends, so call `start()` and
`restart()` from a thread that outlives the engine (pytest's main thread does).
"""

import ctypes
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import docker
import requests

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "cube1"
DEFAULT_BRIDGE_CIDR = "172.31.250.1/24"
_UNIX_PATH_MAX = 108  # sun_path, including the terminating NUL
_PR_SET_PDEATHSIG = 1
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # dockerd finds its helpers here
_LOG_TAIL_LINES = 25


class EngineError(RuntimeError):
    """Engine 2 could not be started, or not cleaned up; the message says what and why."""


@dataclass(frozen=True)
class Process:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    state: str  # "Z" for a zombie: dead, waiting for its parent to reap it
    args: tuple[str, ...]

    @property
    def cmdline(self) -> str:
        return " ".join(self.args)


class SecondEngine:
    """A second dockerd with its own socket, directories, bridge, containerd and cgroups.

    Use it as a context manager, through `second_engine()` as a pytest fixture, or call
    `start()` ... `stop()` yourself (`stop()` in a `finally`).

    Args:
        root: a directory for this engine alone (made if missing); `stop()` deletes it. Default:
            a new /tmp/cube-e2-<hex>, short enough for the sockets under it.
        bridge: name of the bridge to create; never "none" or the main engine's "docker0".
        bridge_cidr: the bridge's address and subnet; must not overlap a route of the host.
        extra_args: more dockerd flags, e.g. ("--live-restore",) or ("--debug",).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        bridge: str = DEFAULT_BRIDGE,
        bridge_cidr: str = DEFAULT_BRIDGE_CIDR,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if bridge in ("", "none", "docker0") or len(bridge) > 15 or "/" in bridge:
            raise ValueError(
                f"bridge={bridge!r}: give a new interface name of at most 15 characters; never "
                '"none" (dockerd would delete docker0) or "docker0" (the main engine\'s)'
            )
        self.name = f"cube-e2-{secrets.token_hex(4)}"  # containerd namespace and cgroup parent
        self.root = Path(root or Path("/tmp") / self.name).absolute()
        self.bridge = bridge
        self.bridge_cidr = bridge_cidr
        self.network = ipaddress.ip_interface(bridge_cidr).network
        self.extra_args = tuple(extra_args)
        self.socket = self.root / "docker.sock"
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.pidfile = self.root / "dockerd.pid"
        self.log_path = self.root / "dockerd.log"
        self.config_file = self.root / "daemon.json"
        self.base_url = f"unix://{self.socket}"
        self._containerd_dir = self.exec_root / "containerd"
        longest = self._containerd_dir / "containerd.sock.ttrpc"
        if len(os.fsencode(longest)) >= _UNIX_PATH_MAX:
            raise ValueError(
                f"root={str(self.root)!r} is too long: the socket {longest} would exceed the "
                f"{_UNIX_PATH_MAX - 1}-byte limit of unix socket paths; use a short root under /tmp"
            )
        self._proc: subprocess.Popen | None = None
        self._log_offset = 0  # where the current start's output begins in the log
        self._bridge_created = False
        self._veths: set[str] = set()  # host ends of container veths seen on the bridge
        self._shim_sockets: set[Path] = set()  # shim sockets (in /run/containerd/s) seen

    def __repr__(self) -> str:
        return f"SecondEngine({self.base_url!r}, running={self.running})"

    def __enter__(self) -> "SecondEngine":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- the public API

    @property
    def command(self) -> list[str]:
        """The dockerd command line (the module docstring says why each flag)."""
        return [
            shutil.which("dockerd", path=_PATH) or "dockerd",
            "--config-file", str(self.config_file),
            "--host", self.base_url,
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
            "--bridge", self.bridge,
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--userland-proxy=true",
            "--containerd-namespace", self.name,
            "--containerd-plugins-namespace", f"{self.name}-plugins",
            "--cgroup-parent", f"/{self.name}",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            *self.extra_args,
        ]  # fmt: skip

    @property
    def running(self) -> bool:
        """True while the dockerd this object started is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The pid of the running dockerd, or None."""
        return self._proc.pid if self.running else None

    def client(self, timeout: int = 30) -> docker.DockerClient:
        """A client of engine 2 (never of the main engine). The caller closes it."""
        return docker.DockerClient(base_url=self.base_url, timeout=timeout)

    def start(self, timeout: float = 30.0) -> None:
        """Start dockerd and wait until its API answers a ping.

        Raises:
            EngineError: dockerd exited, or did not answer within `timeout` seconds (it is then
                killed); the message holds the tail of its log. Call `stop()` to clean up.
        """
        if self.running:
            raise EngineError(f"engine 2 is already running (dockerd pid {self.pid})")
        if not shutil.which("dockerd", path=_PATH) or not shutil.which("ip", path=_PATH):
            raise EngineError("engine 2 needs `dockerd` (Debian: docker.io) and `ip` (iproute2)")
        if os.geteuid() != 0:
            raise EngineError("engine 2 needs root: it creates a bridge and runs dockerd")
        if Path("/run/containerd/containerd.sock").exists():
            log.warning(
                "/run/containerd/containerd.sock exists: dockerd will use that system containerd "
                "(namespace %s) instead of starting its own, so kill() leaves containerd running",
                self.name,
            )
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.config_file.write_text("{}\n")
        self._create_bridge()
        self._remove_stale_pidfiles()
        started = time.monotonic()
        with open(self.log_path, "ab") as out:
            out.write(f"==== cube: starting {' '.join(self.command)}\n".encode())
            out.flush()
            self._log_offset = out.tell()
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal is not for dockerd
                env={**os.environ, "PATH": _PATH},
                preexec_fn=_die_with_parent,
            )
        self._wait_until_it_answers(timeout)
        log.info(
            "engine 2 (dockerd pid %d) answers on %s after %.2f s",
            self._proc.pid,
            self.base_url,
            time.monotonic() - started,
        )

    def kill(self) -> None:
        """SIGKILL dockerd, as in a crash; wait until it and its managed containerd are dead.

        Containers and their shims live on; see the module docstring.
        """
        if not self.running:
            raise EngineError("engine 2 is not running: nothing to kill")
        containerd = self._containerd_pid()
        # dockerd's port proxies die with it (their parent-death signal), a moment after it: waited for too
        proxies = [p.pid for p in self.processes() if p.cmdline.startswith("/usr/sbin/docker-proxy")]
        self._remember_shim_sockets()
        self._proc.kill()
        self._proc.wait()
        log.info("killed dockerd %d with SIGKILL", self._proc.pid)
        self._proc = None
        if not _wait_dead([containerd, *proxies] if containerd else proxies, 10.0):
            log.warning("containerd %s or a docker-proxy of %s still runs 10 s after dockerd was killed",
                        containerd, proxies)  # fmt: skip

    def restart(self, timeout: float = 30.0) -> None:
        """Start dockerd again on the same directories (after `kill()`, or SIGTERM it first)."""
        if self.running:
            self._terminate()
        self.start(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Shut engine 2 down and remove every trace of it. Safe after `kill()`, and twice.

        Raises:
            EngineError: something could not be removed; the message names it.
        """
        errors: list[str] = []

        def step(what: str, action) -> None:
            try:
                action()
            except Exception as e:  # go on with the other steps, report at the end
                log.warning("stopping engine 2: %s failed: %s", what, e)
                errors.append(f"{what}: {e}")

        if self.running:
            step("SIGTERM to dockerd", lambda: self._terminate(timeout))
        self._proc = None
        step("listing shim sockets", self._remember_shim_sockets)
        step("killing leftover processes", self._kill_leftover_processes)
        step("removing shim sockets", self._remove_shim_sockets)
        step("unmounting", self._unmount_all)
        step("removing cgroups", self._remove_cgroups)
        step("deleting the bridge", self._delete_bridge)
        step("deleting the directory", self._remove_root)
        left = self.leftovers()
        if errors or left:
            raise EngineError("engine 2 was not cleaned up completely: " + "; ".join(errors + left))
        log.info("engine 2 stopped and removed")

    def processes(self) -> list[Process]:
        """The live processes of engine 2: dockerd, containerd, shims, proxies, containers."""
        return [p for p in _processes() if self._is_ours(p)]

    def leftovers(self) -> list[str]:
        """Everything of engine 2 still on this machine, dockerd included; empty after `stop()`."""
        left = [f"process {p.pid} ({p.cmdline[:120]})" for p in self.processes()]
        left += [f"mount {m}" for m in _mounts_under(self.root)]
        left += [f"cgroup {d}" for d in self._cgroup_dirs()]
        left += [f"shim socket {s}" for s in sorted(self._shim_sockets) if s.exists()]
        left += [f"veth {v}" for v in sorted(self._veths) if Path("/sys/class/net", v).exists()]
        if self._bridge_created and _link_exists(self.bridge):
            left.append(f"bridge {self.bridge}")
        if self.root.exists():
            left.append(f"directory {self.root}")
        return left

    # ---------------------------------------------------------------- starting

    def _create_bridge(self) -> None:
        """Make the bridge (kept across restarts); replace one left by an earlier, dead engine."""
        if _link_exists(self.bridge):
            if self._bridge_created:
                return
            users = [p.pid for p in _processes() if _uses_bridge(p, self.bridge)]
            if users:
                raise EngineError(
                    f"bridge {self.bridge} is in use by dockerd (pid {users}); "
                    "give SecondEngine another bridge= and bridge_cidr="
                )
            log.warning("bridge %s is left from an earlier run; replacing it", self.bridge)
            _ip("link", "del", self.bridge)
        self._check_subnet_is_free()
        _ip("link", "add", self.bridge, "type", "bridge")
        self._bridge_created = True
        _ip("addr", "add", self.bridge_cidr, "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def _check_subnet_is_free(self) -> None:
        """Refuse a subnet the host already routes elsewhere: the containers would be unreachable."""
        for line in _ip("-4", "route", "show").splitlines():
            dst = line.split()[0] if line.split() else "default"
            if dst == "default" or f" dev {self.bridge} " in f" {line} ":
                continue
            with suppress(ValueError):  # route types such as "unreachable 10.0.0.0/8"
                if ipaddress.ip_network(dst, strict=False).overlaps(self.network):
                    raise EngineError(
                        f"bridge_cidr {self.bridge_cidr} overlaps the host route {line.strip()!r}; "
                        "give SecondEngine another bridge_cidr="
                    )

    def _remove_stale_pidfiles(self) -> None:
        """Delete pid files of dead processes: a zombie's pid would pass for a live one."""
        self.pidfile.unlink(missing_ok=True)  # our dockerd is not running: the file is stale
        containerd_pidfile = self._containerd_dir / "containerd.pid"
        pid = _read_pid(containerd_pidfile)
        if pid is None:
            return
        if self._containerd_pid() == pid:  # alive: would be adopted without a parent-death signal
            log.warning("containerd %d of an earlier dockerd still runs; killing it", pid)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_dead([pid], 10.0)
        containerd_pidfile.unlink(missing_ok=True)

    def _wait_until_it_answers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise EngineError(
                    f"dockerd exited with code {code} before answering on {self.base_url}. "
                    f"Its log ({self.log_path}) ends:\n{self._log_tail()}"
                )
            if _answers(self.base_url):
                return
            if time.monotonic() > deadline:
                self._proc.kill()
                self._proc.wait()
                self._proc = None
                raise EngineError(
                    f"dockerd did not answer on {self.base_url} within {timeout:.0f} s (killed it). "
                    f"Its log ({self.log_path}) ends:\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError as e:
            return f"(cannot read it: {e})"
        return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(empty)"

    # ---------------------------------------------------------------- stopping

    def _terminate(self, timeout: float = 60.0) -> None:
        """SIGTERM dockerd by pid and wait; SIGKILL it if it does not exit in time."""
        proc = self._proc
        started = time.monotonic()
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("dockerd %d ignored SIGTERM for %.0f s; killing it", proc.pid, timeout)
            proc.kill()
            proc.wait()
        log.info("dockerd %d exited after %.2f s", proc.pid, time.monotonic() - started)
        self._proc = None

    def _kill_leftover_processes(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of engine 2 until none is left (after a clean stop: none)."""
        self._thaw()  # a frozen (paused) process would not die before it is thawed
        deadline = time.monotonic() + timeout
        first = True
        while procs := self.processes():
            if first:
                log.info("killing what engine 2 left: %s", "; ".join(p.cmdline[:80] for p in procs))
                first = False
            if time.monotonic() > deadline:
                raise EngineError(f"{len(procs)} processes would not die: {[p.pid for p in procs]}")
            for p in procs:
                with suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
            time.sleep(0.05)

    def _remember_shim_sockets(self) -> None:
        """Note the shims' sockets (outside ROOT); a SIGKILLed shim leaves its socket behind."""
        tasks = self._containerd_dir / "daemon" / "io.containerd.runtime.v2.task"
        for address in tasks.glob("*/*/address"):
            with suppress(OSError):
                path = Path(address.read_text().strip().removeprefix("unix://"))
                if path.parent == Path("/run/containerd/s"):
                    self._shim_sockets.add(path)

    def _remove_shim_sockets(self) -> None:
        for path in self._shim_sockets:
            path.unlink(missing_ok=True)

    def _unmount_all(self) -> None:
        """Unmount everything under ROOT, the most recent mount first."""
        for _ in range(5):
            mounts = _mounts_under(self.root)
            if not mounts:
                return
            for mount in reversed(mounts):
                done = subprocess.run(["umount", mount], capture_output=True, text=True)
                if done.returncode != 0:
                    log.warning("umount %s: %s; detaching it", mount, done.stderr.strip())
                    subprocess.run(["umount", "--lazy", mount], capture_output=True)
        if mounts := _mounts_under(self.root):
            raise EngineError(f"still mounted: {mounts}")

    def _cgroup_dirs(self) -> list[Path]:
        """Our cgroup parent in every cgroup hierarchy (v1 controllers, or the v2 tree)."""
        dirs = []
        for fields in _mountinfo():
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                d = Path(_unescape(fields[4])) / self.name
                if d.is_dir():
                    dirs.append(d)
        return dirs

    def _thaw(self) -> None:
        for top in self._cgroup_dirs():
            for state in top.rglob("freezer.state"):  # cgroup v1
                with suppress(OSError):
                    state.write_text("THAWED")
            for freeze in top.rglob("cgroup.freeze"):  # cgroup v2
                with suppress(OSError):
                    freeze.write_text("0")

    def _remove_cgroups(self) -> None:
        """rmdir our cgroups, deepest first; a cgroup empties a moment after its last task dies."""
        for _ in range(50):
            dirs = self._cgroup_dirs()
            if not dirs:
                return
            for top in dirs:
                subdirs = [d for d in top.rglob("*") if d.is_dir()]
                for d in sorted(subdirs, key=lambda d: len(d.parts), reverse=True) + [top]:
                    with suppress(OSError):  # busy a moment longer, or gone
                        d.rmdir()
            time.sleep(0.05)
        raise EngineError(f"cgroups would not go: {self._cgroup_dirs()}")

    def _delete_bridge(self) -> None:
        """Delete the bridge this object made; make sure the container veths went with it."""
        if not self._bridge_created:
            return
        brif = Path("/sys/class/net", self.bridge, "brif")
        if brif.is_dir():
            self._veths.update(p.name for p in brif.iterdir())
        if _link_exists(self.bridge):
            _ip("link", "del", self.bridge)
        self._bridge_created = False
        deadline = time.monotonic() + 2.0  # a veth goes when its netns is freed, asynchronously
        while (left := [v for v in self._veths if _link_exists(v)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        for veth in left:
            log.warning("veth %s outlived its container; deleting it", veth)
            with suppress(EngineError):
                _ip("link", "del", veth)

    def _remove_root(self) -> None:
        if not self.root.exists():
            return
        if mounts := _mounts_under(self.root):  # never delete through a mount
            raise EngineError(f"not deleting {self.root}: still mounted there: {mounts}")
        shutil.rmtree(self.root)

    # ---------------------------------------------------------------- finding our processes

    def _containerd_pid(self) -> int | None:
        """The pid of engine 2's managed containerd if it is alive."""
        pid = _read_pid(self._containerd_dir / "containerd.pid")
        toml = str(self._containerd_dir / "containerd.toml")
        for p in _processes():
            if p.pid == pid and p.state != "Z" and toml in p.args:
                return pid
        return None

    def _is_ours(self, p: Process) -> bool:
        """True if `p` belongs to engine 2. Matches paths and names unique to it, never a bare name."""
        if p.state == "Z" or not p.args:  # zombies hold nothing; kernel threads have no args
            return False
        program = os.path.basename(p.args[0])
        if program == "dockerd":
            return str(self.exec_root) in p.args
        if program == "containerd":
            return str(self._containerd_dir / "containerd.toml") in p.args
        if program.startswith("containerd-shim"):
            return str(self._containerd_dir / "containerd.sock") in p.args or self.name in p.args
        if program == "docker-proxy":
            ips = [b for a, b in zip(p.args, p.args[1:], strict=False) if a == "-container-ip"]
            with suppress(ValueError):
                return any(ipaddress.ip_address(ip) in self.network for ip in ips)
            return False
        mine = f"/{self.name}"
        return any(path == mine or path.startswith(mine + "/") for path in _cgroups_of(p.pid))


def second_engine() -> Iterator[SecondEngine]:
    """A started engine 2, stopped and removed afterwards: a pytest fixture once decorated.

    In a test module or conftest: ``engine2 = pytest.fixture(scope="module")(second_engine)``.
    """
    engine = SecondEngine()
    try:
        engine.start()
        yield engine
    finally:
        engine.stop()


# -------------------------------------------------------------------- helpers


def _die_with_parent() -> None:
    """Runs in the child just before dockerd: SIGTERM it when the thread that started it ends."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


try:  # looked up here, not in the forked child; Linux only
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except AttributeError:
    _prctl = None


def _answers(base_url: str) -> bool:
    try:
        client = docker.DockerClient(base_url=base_url, timeout=2)  # asks the version: may raise
        try:
            return client.ping() is True
        finally:
            client.close()
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return False


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise EngineError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _uses_bridge(p: Process, bridge: str) -> bool:
    """True if `p` is a live dockerd started with this bridge."""
    if p.state == "Z" or not p.args or os.path.basename(p.args[0]) != "dockerd":
        return False
    pairs = zip(p.args, p.args[1:], strict=False)
    return any(a in ("-b", "--bridge") and b == bridge for a, b in pairs) or any(
        a in (f"-b={bridge}", f"--bridge={bridge}") for a in p.args
    )


def _processes() -> list[Process]:
    procs = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:  # it exited meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]  # the name in (...) may hold spaces
        args = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
        procs.append(Process(int(entry.name), int(ppid), state, args))
    return procs


def _cgroups_of(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return []
    return [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]


def _wait_dead(pids: list[int], timeout: float) -> bool:
    """Wait until none of `pids` is alive (a zombie counts as dead). True if so."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {p.pid for p in _processes() if p.state != "Z"} & set(pids)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _mountinfo() -> list[list[str]]:
    return [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (a space is \\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or under `root`, in mount order."""
    top = str(root)
    points = [_unescape(fields[4]) for fields in _mountinfo()]
    return [p for p in points if p == top or p.startswith(top + "/")]
