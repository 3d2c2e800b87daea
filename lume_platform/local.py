"""The embedded local Prefect platform: a Prefect server on SQLite and a process worker, run detached."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_WORK_POOL = "lume-local"
DEFAULT_STATE_DIR = Path.home() / ".lume" / "local"
WORK_POOL_TYPE = "process"
# Marks a process as started by this module; a leftover found on our port is recognised by it
# (in /proc/PID/environ) even when its pid file is gone, e.g. after the state dir was deleted.
MANAGED_MARKER = "LUME_MANAGED_PROCESS"
FOREIGN_PREFECT = ("PREFECT_API_", "PREFECT_SERVER_", "PREFECT_UI_", "PREFECT_CLOUD_", "PREFECT_PROFILE")
SERVER_READY_TIMEOUT = 180.0
WORKER_READY_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
LOG_TAIL_LINES = 40


class LocalPlatformError(RuntimeError):
    """A process of the local platform cannot be started, reached or configured."""


@dataclass(frozen=True)
class ProcessStatus:
    """What `status()` reports about one managed process."""

    name: str
    running: bool
    pid: int | None
    log_file: Path

    def describe(self) -> str:
        """One human-readable line."""
        state = f"running (pid {self.pid})" if self.running else "stopped"
        return f"{self.name}: {state}, log {self.log_file}"


@dataclass
class ManagedProcess:
    """One detached process with a pid file and a log in the state dir.

    ``prepare`` runs (idempotently) before the process is ensured, e.g. to create what it needs;
    ``ready`` tells whether a process started at wall time ``started_at`` serves. ``identity`` tells
    apart same-named processes of different platforms (e.g. the API URL a worker serves).
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    ready: Callable[[float], bool]
    ready_timeout: float
    port: int | None = None
    prepare: Callable[[], None] | None = None
    identity: str = ""

    @property
    def marker(self) -> str:
        """The value of MANAGED_MARKER in the environment of this process."""
        return f"{self.name}@{self.identity}" if self.identity else self.name


@dataclass(frozen=True)
class _PidRecord:
    pid: int
    start_ticks: int


def _process_start_ticks(pid: int) -> int | None:
    """Start time of PID in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _process_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def _process_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def port_owner(port: int) -> int | None:
    """PID of the process listening on TCP ``port`` (any address), or None if nobody visible does."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            cols = line.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] == "0A":  # 0A is TCP_LISTEN
                inodes.add(cols[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(proc.name)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return None


def marked_processes(marker: str, argv: Sequence[str]) -> list[int]:
    """PIDs of live processes started with the arguments of ``argv`` whose MANAGED_MARKER is ``marker``.

    Matching the arguments too leaves alone the children (e.g. flow runs) that merely inherited
    the marker; the program itself may differ (another checkout's virtualenv).
    """
    wanted = [arg.encode() for arg in argv[1:]]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        pid = int(proc.name)
        if _process_environ(pid).get(MANAGED_MARKER) != marker:
            continue
        try:
            arguments = (proc / "cmdline").read_bytes().split(b"\0")[1:-1]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if arguments != wanted:
            continue
        if _process_start_ticks(pid) is not None:
            found.append(pid)
    return found


def port_in_use(port: int) -> bool:
    """Whether something listens on loopback ``port``, whether or not we can see who."""
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((HOST, port)) == 0


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Processes are started in their own session, so their children (uvicorn, flow runs) share
    # the process group and go down with them.
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    # A process we started ourselves stays a zombie until waited for.
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """Stop PID (and its process group) with SIGTERM, then SIGKILL after ``timeout`` seconds."""
    start_ticks = _process_start_ticks(pid)
    if start_ticks is None:
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if _process_start_ticks(pid) != start_ticks:
            return
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    for _ in range(25):
        _reap(pid)
        if _process_start_ticks(pid) != start_ticks:
            return
        time.sleep(0.2)
    raise LocalPlatformError(f"pid {pid} ({_process_cmdline(pid)}) did not stop even after SIGKILL")


class ProcessSupervisor:
    """Starts, checks and stops ManagedProcess objects through pid files and logs under ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "logs"

    def pid_file(self, name: str) -> Path:
        """Where the pid of process ``name`` is kept."""
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """Where the output of process ``name`` goes."""
        return self.log_dir / f"{name}.log"

    def running_pid(self, name: str) -> int | None:
        """The pid of ``name`` if its pid file names a live process (the same one, not a reused pid)."""
        try:
            data = json.loads(self.pid_file(name).read_text())
            record = _PidRecord(pid=int(data["pid"]), start_ticks=int(data["start_ticks"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if _process_start_ticks(record.pid) != record.start_ticks:
            return None
        return record.pid

    def status(self, process: ManagedProcess) -> ProcessStatus:
        """Whether ``process`` runs, by its pid file."""
        pid = self.running_pid(process.name)
        return ProcessStatus(process.name, pid is not None, pid, self.log_file(process.name))

    def ensure(self, process: ManagedProcess) -> int:
        """Start ``process`` unless it already runs and is ready; return its pid once it is ready."""
        pid = self.running_pid(process.name)
        if pid is not None:
            # It may still be starting: give it its usual time before calling it hung.
            deadline = time.monotonic() + process.ready_timeout
            while self.running_pid(process.name) == pid:
                if process.ready(0.0):
                    return pid
                if time.monotonic() > deadline:
                    stop_pid(pid)
                    break
                time.sleep(0.5)
        self._stop_leftovers(process)
        self._free_port(process)
        return self._start(process)

    def stop(self, process: ManagedProcess) -> bool:
        """Stop ``process`` (and leftovers of it whose pid file is lost); return whether one ran."""
        pid = self.running_pid(process.name)
        if pid is not None:
            stop_pid(pid)
        self.pid_file(process.name).unlink(missing_ok=True)
        return self._stop_leftovers(process) or pid is not None

    def _stop_leftovers(self, process: ManagedProcess) -> bool:
        # Started by an earlier run whose pid file is lost (state dir removed, another checkout):
        # a leftover worker would otherwise keep taking this platform's flow runs.
        leftovers = marked_processes(process.marker, process.argv)
        for pid in leftovers:
            print(f"stopping leftover {process.name} (pid {pid})", file=sys.stderr)
            stop_pid(pid)
        return bool(leftovers)

    def _free_port(self, process: ManagedProcess) -> None:
        if process.port is None or not port_in_use(process.port):
            return
        owner = port_owner(process.port)
        if owner is not None and _process_environ(owner).get(MANAGED_MARKER) == process.marker:
            # Ours from an earlier run whose pid file is lost (state dir removed, another checkout).
            print(
                f"stopping leftover {process.name} (pid {owner}) on port {process.port}",
                file=sys.stderr,
            )
            stop_pid(owner)
            return
        who = f"pid {owner} ({_process_cmdline(owner)})" if owner is not None else "an unknown process"
        raise LocalPlatformError(
            f"cannot start {process.name}: port {HOST}:{process.port} is already used by {who}; "
            "stop it or choose another port"
        )

    def _start(self, process: ManagedProcess) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file(process.name)
        env = {**process.env, MANAGED_MARKER: process.marker}
        started_at = time.time()
        print(f"starting {process.name} (log {log_path})", file=sys.stderr)
        with log_path.open("ab") as log:
            log.write(f"\n--- {datetime.now().isoformat()} starting: {' '.join(process.argv)}\n".encode())
            log.flush()
            child = subprocess.Popen(
                list(process.argv),
                cwd=process.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        start_ticks = _process_start_ticks(child.pid)
        if start_ticks is None:
            raise LocalPlatformError(
                f"{process.name} exited at once; log {log_path}:\n{_log_tail(log_path)}"
            )
        tmp = self.pid_file(process.name).with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": child.pid, "start_ticks": start_ticks}))
        tmp.replace(self.pid_file(process.name))
        deadline = time.monotonic() + process.ready_timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise LocalPlatformError(
                    f"{process.name} exited with code {child.returncode} while starting; "
                    f"log {log_path}:\n{_log_tail(log_path)}"
                )
            if process.ready(started_at):
                return child.pid
            time.sleep(0.5)
        stop_pid(child.pid)
        raise LocalPlatformError(
            f"{process.name} was not ready after {process.ready_timeout:.0f} s; "
            f"log {log_path}:\n{_log_tail(log_path)}"
        )


@dataclass
class LocalPlatform:
    """A Prefect server on SQLite plus a `process` worker, on loopback, all state under ``state_dir``.

    More processes (e.g. a dashboard) can be appended with ``add_process``; ``up`` starts them in
    order after the server and the worker, ``down`` stops everything in reverse order.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    port: int = DEFAULT_PORT
    work_pool: str = DEFAULT_WORK_POOL
    worker_cwd: Path = field(default_factory=Path.cwd)
    ui: bool = True
    python: str = sys.executable
    processes: list[ManagedProcess] = field(init=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).expanduser().resolve()
        self.worker_cwd = Path(self.worker_cwd).resolve()
        self.supervisor = ProcessSupervisor(self.state_dir)
        self.processes = [self._server_process(), self._worker_process()]

    @property
    def api_url(self) -> str:
        """The Prefect API URL of this platform (what PREFECT_API_URL should be)."""
        return f"http://{HOST}:{self.port}/api"

    @property
    def prefect_home(self) -> Path:
        """PREFECT_HOME of the server and the worker (database, profiles, local result storage)."""
        return self.state_dir / "prefect"

    @property
    def worker_name(self) -> str:
        """The name our worker registers under in its pool."""
        return f"{self.work_pool}-worker"

    def add_process(self, process: ManagedProcess) -> None:
        """Manage one more process (started after the existing ones, stopped before them)."""
        if any(existing.name == process.name for existing in self.processes):
            raise ValueError(f"a process named {process.name!r} is already managed")
        self.processes.append(process)

    def prefect_env(self) -> dict[str, str]:
        """Environment for Prefect processes of this platform: the caller's, pointed at this server."""
        home = self.prefect_home
        # Settings inherited for another server (its URL, database, UI address, auth) would make this
        # one talk to or store in the wrong place: the platform is self-contained, so drop them all.
        inherited = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_PREFECT)}
        return {
            **inherited,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_API_HOST": HOST,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "true" if self.ui else "false",
            # A laptop's or a test's worker has one pool to watch: poll every 2 s, not Prefect's 10 s,
            # so a run starts within moments of being created.
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }

    def up(self) -> None:
        """Start whatever is not running yet and wait until everything serves (idempotent)."""
        with self._locked():
            self.prefect_home.mkdir(parents=True, exist_ok=True)
            for process in self.processes:
                if process.prepare is not None:
                    process.prepare()
                self.supervisor.ensure(process)

    def down(self, purge: bool = False) -> list[str]:
        """Stop every managed process (data is kept unless ``purge``); return the names that ran."""
        with self._locked():
            stopped = [p.name for p in reversed(self.processes) if self.supervisor.stop(p)]
            if purge and self.state_dir.exists():
                shutil.rmtree(self.state_dir)
        return stopped

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Several shells (or test sessions) may run `up` at once; one of them starts, the rest wait.
        # The lock file lives beside the state dir so that a purge can delete the dir under it.
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        with (self.state_dir.parent / f".{self.state_dir.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def status(self) -> list[ProcessStatus]:
        """The state of every managed process."""
        return [self.supervisor.status(process) for process in self.processes]

    def healthy(self) -> bool:
        """Whether the Prefect API answers its health check."""
        try:
            response = httpx.get(f"{self.api_url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def ensure_work_pool(self) -> dict[str, Any]:
        """Create the `process` work pool unless it exists; refuse a pool of another type."""
        with httpx.Client(base_url=self.api_url, timeout=30.0) as client:
            response = client.get(f"/work_pools/{self.work_pool}")
            if response.status_code == 200:
                pool: dict[str, Any] = response.json()
                if pool.get("type") != WORK_POOL_TYPE:
                    raise LocalPlatformError(
                        f"work pool {self.work_pool!r} at {self.api_url} has type {pool.get('type')!r}, "
                        f"not {WORK_POOL_TYPE!r}; delete it or choose another pool name"
                    )
                return pool
            if response.status_code != 404:
                raise LocalPlatformError(
                    f"reading work pool {self.work_pool!r} failed: {response.status_code} {response.text}"
                )
            # Imported here: loading Prefect's worker machinery costs seconds, and only creation needs it.
            from prefect.workers.process import ProcessWorker

            created = client.post(
                "/work_pools/",
                json={
                    "name": self.work_pool,
                    "type": WORK_POOL_TYPE,
                    "base_job_template": ProcessWorker.get_default_base_job_template(),
                    "description": "LUME local platform: flow runs as processes on this machine",
                },
            )
            if created.status_code == 409:  # created concurrently by someone else: check its type
                return self.ensure_work_pool()
            if created.status_code != 201:
                raise LocalPlatformError(
                    f"creating work pool {self.work_pool!r} failed: {created.status_code} {created.text}"
                )
            result: dict[str, Any] = created.json()
            return result

    def online_workers(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Workers of the pool that are online and sent a heartbeat after wall time ``since``."""
        try:
            response = httpx.post(
                f"{self.api_url}/work_pools/{self.work_pool}/workers/filter", json={}, timeout=5.0
            )
        except httpx.HTTPError:
            return []
        if response.status_code != 200:
            return []
        # Allow for clock granularity between this process and the server's timestamps.
        threshold = datetime.fromtimestamp(since).astimezone() - timedelta(seconds=2)
        online = []
        for worker in response.json():
            heartbeat = worker.get("last_heartbeat_time")
            if worker.get("status") != "ONLINE" or heartbeat is None:
                continue
            if datetime.fromisoformat(heartbeat) >= threshold:
                online.append(worker)
        return online

    def _server_process(self) -> ManagedProcess:
        return ManagedProcess(
            name="server",
            argv=[self.python, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(self.port)],
            env=self.prefect_env(),
            cwd=self.state_dir,
            ready=lambda _started_at: self.healthy(),
            ready_timeout=SERVER_READY_TIMEOUT,
            port=self.port,
            identity=self.api_url,
        )

    def _worker_process(self) -> ManagedProcess:
        def worker_ready(started_at: float) -> bool:
            return any(w.get("name") == self.worker_name for w in self.online_workers(started_at))

        return ManagedProcess(
            name="worker",
            argv=[
                self.python, "-m", "prefect", "worker", "start",
                "--pool", self.work_pool, "--type", WORK_POOL_TYPE, "--name", self.worker_name,
                "--no-create-pool-if-not-found",
            ],
            env=self.prefect_env(),
            cwd=self.worker_cwd,
            ready=worker_ready,
            ready_timeout=WORKER_READY_TIMEOUT,
            prepare=self.ensure_work_pool,
            identity=f"{self.api_url} {self.work_pool}",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lume_platform.local up|down|status|port-owner`: run the local platform from a shell."""
    parser = argparse.ArgumentParser(prog="python -m lume_platform.local", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "port-owner"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="Prefect server port")
    parser.add_argument("--pool", default=DEFAULT_WORK_POOL, help="name of the process work pool")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE_DIR, help="state directory")
    parser.add_argument("--cwd", type=Path, default=Path.cwd(), help="working directory of the worker")
    parser.add_argument("--no-ui", action="store_true", help="do not serve the Prefect UI")
    parser.add_argument("--purge", action="store_true", help="with down: also delete the state directory")
    args = parser.parse_args(argv)

    if args.command == "port-owner":
        owner = port_owner(args.port)
        if owner is None:
            return 1
        print(owner, _process_environ(owner).get(MANAGED_MARKER, "-"), _process_cmdline(owner))
        return 0

    platform = LocalPlatform(
        state_dir=args.state, port=args.port, work_pool=args.pool, worker_cwd=args.cwd, ui=not args.no_ui
    )
    try:
        if args.command == "up":
            platform.up()
            print(f"Prefect API {platform.api_url}, work pool {platform.work_pool!r}: up")
            return 0
        if args.command == "down":
            stopped = platform.down(purge=args.purge)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
            return 0
    except LocalPlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    statuses = platform.status()
    for status in statuses:
        print(status.describe())
    print(f"api {platform.api_url}: {'healthy' if platform.healthy() else 'not answering'}")
    return 0 if all(s.running for s in statuses) else 3


if __name__ == "__main__":
    sys.exit(main())
