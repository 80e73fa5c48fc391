"""The local host under test: `python -m devhost run` in a subprocess, its log, and its resources.

The harness never imports the app into the host's process: the host runs as `make run` runs it (embedded
defaults, its own state directory, a free port), and the harness reaches it over HTTP and reaches its
services through the endpoints in `stack.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from devhost.services.process import free_port
from devhost.settings_file import LOAD_TEST_RATE_LIMITS, PROJECT_DIR

READY_LINE = "Chorus is running at"
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 60.0


class HostError(RuntimeError):
    pass


@dataclass
class Stack:
    """What `stack.json` says about the running stack."""

    base_url: str
    state_dir: Path
    postgres_url: str  # as the app's login (row-level security applies)
    postgres_admin_url: str  # as the owner
    cosmos_endpoint: str
    cosmos_key: str
    cosmos_database: str
    app_settings: dict[str, str]


class LogTail:
    """Follows the host's log file; `wait_for` a line matching a pattern."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._pending = ""
        self._unread: list[str] = []

    def mark(self) -> None:
        """Ignore everything written so far."""
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        self._pending = ""
        self._unread = []

    def new_lines(self) -> list[str]:
        lines, self._unread = self._unread, []
        return lines + self._read()

    def _read(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        self._offset += len(chunk)
        text = self._pending + chunk.decode(errors="replace")
        lines = text.split("\n")
        self._pending = lines.pop()
        return lines

    def wait_for(
        self, pattern: re.Pattern[str], timeout: float, poll: float = 0.01
    ) -> tuple[re.Match[str], float]:
        """The first new line matching `pattern`, and the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.new_lines()
            for index, line in enumerate(lines):
                match = pattern.search(line)
                if match:
                    self._unread = lines[index + 1 :]  # later lines stay for the next wait
                    return match, time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no log line matching {pattern.pattern!r} within {timeout:.0f} s")
            time.sleep(poll)


@dataclass
class Sample:
    t: float  # seconds since the sampler started
    host_rss_mb: float  # the Python host process and its app workers (HTTP, relay timer, change feeds)
    tree_rss_mb: float  # the host and every service it started (PostgreSQL, Node emulators)
    host_cpu_s: float  # cumulative CPU seconds of the host process and its live workers
    harness_cpu_s: float  # cumulative CPU seconds of this (load-generating) process
    services_cpu_s: float  # cumulative CPU seconds of the services (PostgreSQL, Cosmos emulator, …)
    load1: float
    # RSS by process name (postgres, node, python, …) summed over the tree: which service holds the memory
    by_process_mb: dict[str, float] = field(default_factory=dict)
    # PSS of the same tree (shared pages divided among their sharers: what it really costs), every
    # PSS_EVERY-th sample (reading it costs more than RSS); None in between.
    tree_pss_mb: float | None = None
    # The harness's own PostgreSQL backends, left out of the tree figures.
    harness_backends_rss_mb: float = 0.0


PSS_EVERY = 4
_BACKEND_PORT = re.compile(r"^postgres: .* 127\.0\.0\.1\((\d+)\)")


def _local_ports(process: psutil.Process) -> set[int]:
    try:
        return {c.laddr.port for c in process.net_connections(kind="tcp") if c.laddr}
    except (psutil.AccessDenied, AttributeError):
        return set()


def _backend_port(process: psutil.Process) -> int | None:
    """A PostgreSQL backend's client port, from its process title (`postgres: user db 127.0.0.1(port) …`)."""
    try:
        title = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    match = _BACKEND_PORT.match(title)
    return int(match[1]) if match else None


_NODE_SERVICES = (
    ("cosmos-emulator", "node (Cosmos emulator)"),
    ("azurite", "node (Azurite)"),
    ("eventhubs-standin", "node (Event Hubs stand-in)"),
)


def _service_name(process: psutil.Process) -> str:
    """The process's name, and for Node which of the three services it is (their memory differs)."""
    name = str(process.name())
    if name == "node":
        command = " ".join(process.cmdline())
        return next((label for needle, label in _NODE_SERVICES if needle in command), name)
    return name


@dataclass
class ResourceSampler:
    """Samples RSS and CPU of the host tree and of the harness every `interval` seconds."""

    host_pid: int
    # The process whose descendants are the host and every service (`devhost run` runs them as two
    # process trees under it); the host's own tree when None.
    tree_pid: int | None = None
    interval: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0
    _dead_cpu: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def now(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        me = psutil.Process()
        try:
            host = psutil.Process(self.host_pid)
            root = psutil.Process(self.tree_pid) if self.tree_pid is not None else host
        except psutil.NoSuchProcess:
            return
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self._sample(host, root, me))
            except psutil.NoSuchProcess:
                return

    def _sample(self, host: psutil.Process, root: psutil.Process, me: psutil.Process) -> Sample:
        # The host process and the app's worker processes it starts (FUNCTIONS_WORKER_PROCESS_COUNT).
        app = [host]
        with contextlib.suppress(psutil.NoSuchProcess):
            app += host.children(recursive=True)
        app_pids = {process.pid for process in app}
        host_mem = 0
        host_cpu_s = 0.0
        for process in app:
            with contextlib.suppress(psutil.NoSuchProcess):
                host_mem += process.memory_info().rss
                times = process.cpu_times()
                host_cpu_s += times.user + times.system
        tree_rss = root.memory_info().rss
        by_name: dict[str, float] = {}
        services_cpu = 0.0
        # The harness's own PostgreSQL backends (its baselines' and set-up connections) are not the stack's.
        harness_ports = _local_ports(me)
        with_pss = len(self.samples) % PSS_EVERY == 0
        tree_pss = 0.0
        harness_backends = 0.0
        for child in root.children(recursive=True):
            try:
                if child.pid not in app_pids and _backend_port(child) in harness_ports:
                    harness_backends += child.memory_info().rss
                    continue
                rss = child.memory_info().rss
                tree_rss += rss
                if with_pss:
                    tree_pss += child.memory_full_info().pss
                name = "host and workers (python)" if child.pid in app_pids else _service_name(child)
                by_name[name] = by_name.get(name, 0.0) + rss / 2**20
                if child.pid in app_pids:
                    continue
                times = child.cpu_times()
                services_cpu += times.user + times.system
                # Short-lived PostgreSQL backends take their CPU with them: keep the last value seen.
                self._dead_cpu[child.pid] = times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        mine = me.cpu_times()
        return Sample(
            t=round(self.now(), 3),
            host_rss_mb=round(host_mem / 2**20, 1),
            tree_rss_mb=round(tree_rss / 2**20, 1),
            host_cpu_s=host_cpu_s,
            harness_cpu_s=mine.user + mine.system,
            services_cpu_s=services_cpu,
            load1=os.getloadavg()[0],
            by_process_mb={k: round(v, 1) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])},
            tree_pss_mb=round((tree_pss + root.memory_full_info().pss) / 2**20, 1) if with_pss else None,
            harness_backends_rss_mb=round(harness_backends / 2**20, 1),
        )

    def window(self, start: float, end: float) -> dict[str, Any]:
        """CPU use (cores busy on average) and peak memory between two `now()` times."""
        inside = [s for s in self.samples if start <= s.t <= end]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        span = max(1e-6, last.t - first.t)
        return {
            "host_cpu_cores": round((last.host_cpu_s - first.host_cpu_s) / span, 2),
            "harness_cpu_cores": round((last.harness_cpu_s - first.harness_cpu_s) / span, 2),
            "services_cpu_cores": round(max(0.0, last.services_cpu_s - first.services_cpu_s) / span, 2),
            "host_peak_rss_mb": max(s.host_rss_mb for s in inside),
            "tree_peak_rss_mb": max(s.tree_rss_mb for s in inside),
            "load1_max": round(max(s.load1 for s in inside), 2),
        }


class HostProcess:
    """`python -m devhost run --port P --state-dir D`, started and stopped by the harness."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.log_path = state_dir.parent / "host.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.tail = LogTail(self.log_path)
        self.stack: Stack | None = None

    def start(self) -> Stack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        argv = [
            sys.executable,
            "-m",
            "devhost",
            "run",
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state_dir),
        ]
        # A load generator sets its own, generous rate limits (docs/api.md "Limits").
        env = {**os.environ, **LOAD_TEST_RATE_LIMITS}
        self.process = subprocess.Popen(  # noqa: S603
            argv, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise HostError(
                    f"the local host exited with {self.process.returncode}:\n{self.log_excerpt()}"
                )
            if self.log_path.exists() and READY_LINE in self.log_path.read_text(errors="replace"):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise HostError(f"the local host did not start within {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.1)
        self.stack = self._read_stack()
        return self.stack

    def _read_stack(self) -> Stack:
        described = json.loads((self.state_dir / "stack.json").read_text())
        settings: dict[str, str] = described["appSettings"]
        return Stack(
            base_url=f"http://127.0.0.1:{self.port}",
            state_dir=self.state_dir,
            postgres_url=described["postgres"]["url"],
            postgres_admin_url=described["postgres"]["adminUrl"],
            cosmos_endpoint=described["cosmos"]["endpoint"],
            cosmos_key=_account_key(described["cosmos"]["connectionString"]),
            cosmos_database=settings["COSMOS_DATABASE"],
            app_settings=settings,
        )

    @property
    def pid(self) -> int:
        """The host process (the app), which `devhost run` starts beside the stack; see host.json."""
        described = json.loads((self.state_dir / "host.json").read_text())
        return int(described["pid"])

    @property
    def run_pid(self) -> int:
        """`devhost run` itself: the host and the stack (with every service) are its descendants."""
        assert self.process is not None
        return self.process.pid

    def log_excerpt(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM: the host stops the app and every service it started (PostgreSQL would outlive a KILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _account_key(connection_string: str) -> str:
    for part in connection_string.split(";"):
        if part.startswith("AccountKey="):
            return part[len("AccountKey=") :]
    raise HostError("the Cosmos connection string in stack.json has no AccountKey")
