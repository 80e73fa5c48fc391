"""`python -m devhost run`: the stack and the host as two child processes, split as in Azure.

The stack process owns the services (they are its children and die with it, not with the host).
The host is restarted whenever it dies, as the platform restarts a host instance, with a log line
that says how it died (the host restarts its own worker processes: devhost/host/workers.py). A stack that dies ends the run: nothing can be hosted without it.
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
from pathlib import Path

from devhost.settings_file import PROJECT_DIR

log = logging.getLogger("devhost.run")

STACK_START_TIMEOUT_SECONDS = 180.0
# A host that dies sooner than this after starting is restarted only after a pause, so a host that
# cannot start at all does not spin.
QUICK_DEATH_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 2.0
STOP_GRACE_SECONDS = 30.0


def _die_with_parent() -> None:
    """Linux: SIGTERM the child when this supervisor dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


class Supervisor:
    def __init__(self, state_dir: Path, port: int, keep_data: bool, log_level: str) -> None:
        self.state_dir = state_dir
        self.port = port
        self.keep_data = keep_data
        self.log_level = log_level
        self.stack: subprocess.Popen[bytes] | None = None
        self.host: subprocess.Popen[bytes] | None = None
        self.host_restarts = 0
        self._stopping = threading.Event()

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "devhost", *args, "--state-dir", str(self.state_dir)]
        # Their own sessions: a Ctrl-C reaches this process only, which stops the host, then the stack.
        return subprocess.Popen(
            argv,
            cwd=PROJECT_DIR,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            stdin=subprocess.DEVNULL,
        )

    def _start_stack(self) -> subprocess.Popen[bytes]:
        stack_file = self.state_dir / "stack.json"
        args = ["stack", "--log-level", self.log_level]
        if self.keep_data:
            args.append("--keep-data")
        process = self._spawn(*args)
        deadline = time.monotonic() + STACK_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self._stopping.is_set():
            if process.poll() is not None:
                raise RuntimeError(f"the stack {how_it_ended(process.returncode)} while starting (see above)")
            with contextlib.suppress(OSError, ValueError):
                if json.loads(stack_file.read_text()).get("stackPid") == process.pid:
                    return process
            self._stopping.wait(0.1)
        process.terminate()
        raise RuntimeError(f"the stack did not write {stack_file} within {STACK_START_TIMEOUT_SECONDS:.0f} s")

    def _start_host(self) -> subprocess.Popen[bytes]:
        return self._spawn("host", "--port", str(self.port), "--log-level", self.log_level)

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request_stop)
        exit_code = 0
        try:
            self.stack = self._start_stack()
            if self._stopping.is_set():
                return 0
            self.host = self._start_host()
            host_started = time.monotonic()
            while not self._stopping.wait(0.2):
                if self.stack.poll() is not None:
                    log.error(
                        "the stack %s; stopping the host too. Its services' logs are in %s",
                        how_it_ended(self.stack.returncode),
                        self.state_dir / "logs",
                    )
                    exit_code = 1
                    break
                if self.host.poll() is not None:
                    lived = time.monotonic() - host_started
                    log.warning(
                        "the host %s after %.1f s; restarting it (the stack and its data are untouched)",
                        how_it_ended(self.host.returncode),
                        lived,
                    )
                    if lived < QUICK_DEATH_SECONDS and self._stopping.wait(RESTART_PAUSE_SECONDS):
                        break
                    self.host = self._start_host()
                    self.host_restarts += 1
                    host_started = time.monotonic()
        except RuntimeError as exc:
            log.error("%s", exc)
            exit_code = 1
        finally:
            self._stop(self.host, "host")
            self._stop(self.stack, "stack")
        return exit_code

    @staticmethod
    def _stop(process: subprocess.Popen[bytes] | None, name: str) -> None:
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("the %s did not stop within %.0f s; killing it", name, STOP_GRACE_SECONDS)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
