"""The host process and its language workers, shaped like the Functions host.

In Azure one host process per instance starts FUNCTIONS_WORKER_PROCESS_COUNT Python worker processes
and spreads invocations over them. Locally `python -m devhost host` is that host process: it starts N
workers (`python -m devhost worker`), each a whole FunctionHost that loads the app, and restarts a
worker that dies. The host process itself never imports the app, so it stays small.

- HTTP: every worker listens on the same port with SO_REUSEPORT; the kernel spreads new connections
  over the workers' listeners (by a hash of the connection). No proxy hop: a request costs what it
  costs with one worker, and a worker that dies takes only its own connections with it.
- Timers: each worker runs every timer behind its singleton lock (devhost/host/singleton.py), so a
  timer fires on one worker at a time.
- Change feeds: each worker is a lease owner of its own (machine:port/workerN); the leases spread over
  the workers as over instances (devhost/host/change_feed.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devhost.supervisor import how_it_ended

log = logging.getLogger("devhost.workers")

# As the Functions host: FUNCTIONS_WORKER_PROCESS_COUNT, at most 10.
MAX_WORKERS = 10
# When the setting is absent: one worker per core this process may use, at most this many. Azure's
# Python default is 1 per instance (instances scale out); locally one host is every instance. Capped
# because each worker is a whole copy of the app (about 100 MiB idle, 150-200 MiB under load, its own
# PostgreSQL pools) and the stack's services (PostgreSQL, the single-threaded Node emulators) need
# the cores too; FUNCTIONS_WORKER_PROCESS_COUNT sets more (docs/local-host.md).
DEFAULT_WORKERS_CAP = 2


def default_worker_count() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, DEFAULT_WORKERS_CAP))


READY_TIMEOUT_SECONDS = 180.0
# A worker that dies sooner than this after starting is restarted only after a pause, so one that
# cannot start at all does not spin.
QUICK_DEATH_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 2.0
STOP_GRACE_SECONDS = 30.0
READY_LINE = "Chorus is running at"


class WorkerCountError(ValueError):
    pass


def worker_count(environ: dict[str, str] | None = None) -> int:
    """FUNCTIONS_WORKER_PROCESS_COUNT (1..10), or the default when it is absent or empty."""
    environ = dict(os.environ) if environ is None else environ
    raw = environ.get("FUNCTIONS_WORKER_PROCESS_COUNT", "").strip()
    if not raw:
        return default_worker_count()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise WorkerCountError(
            f"FUNCTIONS_WORKER_PROCESS_COUNT={raw!r}: set a whole number from 1 to {MAX_WORKERS} "
            "(or leave it unset for the default)"
        )
    return int(raw)


def _die_with_host() -> None:
    """Linux: a worker is killed outright when its host process dies, however it dies: the host's
    supervisor then starts a new host and new workers on the same port."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def worker_file(state_dir: Path, index: int) -> Path:
    return state_dir / "workers" / f"{index}.json"


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes]
    started: float
    ready: bool = False


class WorkerPool:
    """Starts `count` workers on `port`, restarts any that dies, stops them all on SIGINT/SIGTERM."""

    def __init__(self, state_dir: Path, port: int, count: int, log_level: str, project_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = port
        self.count = count
        self.log_level = log_level
        self.project_dir = project_dir
        self.workers: dict[int, Worker] = {}
        self.restarts = 0
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, index: int) -> Worker:
        worker_file(self.state_dir, index).unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "devhost",
            "worker",
            "--index",
            str(index),
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
            "--state-dir",
            str(self.state_dir),
        ]
        process = subprocess.Popen(
            argv, cwd=self.project_dir, preexec_fn=_die_with_host, stdin=subprocess.DEVNULL
        )
        return Worker(index, process, time.monotonic())

    def _is_ready(self, worker: Worker) -> bool:
        with contextlib.suppress(OSError, ValueError):
            return bool(
                json.loads(worker_file(self.state_dir, worker.index).read_text()).get("pid")
                == worker.process.pid
            )
        return False

    def _write_host_file(self) -> None:
        """Who is hosting now, for tools and tests (a restarted host or worker has a new process id)."""
        described = {
            "pid": os.getpid(),
            "baseUrl": self.base_url,
            "workers": {str(i): w.process.pid for i, w in sorted(self.workers.items())},
        }
        path = self.state_dir / "host.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(described) + "\n")
        temporary.replace(path)

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request_stop)
        (self.state_dir / "workers").mkdir(parents=True, exist_ok=True)
        try:
            for index in range(self.count):
                self.workers[index] = self._spawn(index)
            if not self._wait_until_ready():
                return 0 if self._stopping.is_set() else 1
            self._write_host_file()
            print(
                f"{READY_LINE} {self.base_url}/api  ({self.count} worker process(es); Ctrl-C stops it)",
                flush=True,
            )
            while not self._stopping.wait(0.2):
                self._restart_the_dead()
            return 0
        finally:
            self._stop_all()
            with contextlib.suppress(OSError, ValueError):
                if json.loads((self.state_dir / "host.json").read_text()).get("pid") == os.getpid():
                    (self.state_dir / "host.json").unlink()

    def _wait_until_ready(self) -> bool:
        """Until every worker serves; False if one cannot start (it exited before it was ready)."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self._stopping.is_set():
            for worker in self.workers.values():
                if worker.process.poll() is not None:
                    log.error(
                        "worker %d %s while starting (see above); stopping the host",
                        worker.index,
                        how_it_ended(worker.process.returncode),
                    )
                    return False
                worker.ready = worker.ready or self._is_ready(worker)
            if all(w.ready for w in self.workers.values()):
                return True
            if time.monotonic() > deadline:
                log.error("the workers did not start within %.0f s; stopping the host", READY_TIMEOUT_SECONDS)
                return False
            self._stopping.wait(0.05)
        return False

    def _restart_the_dead(self) -> None:
        for index, worker in list(self.workers.items()):
            if worker.process.poll() is None:
                continue
            lived = time.monotonic() - worker.started
            log.warning(
                "worker %d (process %d) %s after %.1f s; restarting it. Requests it was answering got no "
                "answer; the other workers keep serving, and the restarted worker takes its timer locks "
                "and change-feed leases back",
                index,
                worker.process.pid,
                how_it_ended(worker.process.returncode),
                lived,
            )
            if lived < QUICK_DEATH_SECONDS and self._stopping.wait(RESTART_PAUSE_SECONDS):
                return
            self.workers[index] = self._spawn(index)
            self.restarts += 1
            self._write_host_file()

    def _stop_all(self) -> None:
        running = [w for w in self.workers.values() if w.process.poll() is None]
        for worker in running:
            worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in running:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error(
                    "worker %d did not stop within %.0f s; killing it", worker.index, STOP_GRACE_SECONDS
                )
                worker.process.kill()
                worker.process.wait(10)
