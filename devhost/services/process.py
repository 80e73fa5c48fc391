"""Child processes the local stack starts: started in their own process group,
logged to a file, waited for until ready, and always stopped."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path


class ServiceStartError(RuntimeError):
    """A local service did not come up; the message says which and where its log is."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """One child process with its log file. `stop()` is idempotent and kills the whole group."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    # How it was started, so that `respawn` starts the same thing again (same ports, same data).
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready` until true; fail fast if the process exits, with its log tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceStartError(
                    f"{self.name} exited with code {self.popen.returncode} while starting; "
                    f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceStartError(
            f"{self.name} was not ready after {timeout:.0f} s; see its log {self.log_path}:\n{self.log_tail()}"
        )

    def respawn(self) -> ManagedProcess:
        """The same command started again (after `stop`)."""
        return start_process(self.name, self.argv, self.log_path, self.env, self.cwd, self.user)

    def pause(self) -> None:
        """SIGSTOP the whole group: its sockets stay open but nothing answers (a hung server)."""
        _signal_group(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        _signal_group(self.popen.pid, signal.SIGCONT)

    def stop(self, grace: float = 5.0, stop_signal: signal.Signals = signal.SIGTERM) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGCONT)  # a paused (SIGSTOPped) process cannot stop
            _signal_group(self.popen.pid, stop_signal)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
        else:
            # The leader is gone; make sure nothing it spawned outlives it.
            _signal_group(self.popen.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# Linux delivers the parent-death signal when the *thread* that forked the child exits, so every
# child is forked from this one long-lived thread, whichever thread asks for it.
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devhost-spawner")


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the host dies, even by SIGKILL, so nothing outlives it."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_process(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> ManagedProcess:
    """Start `argv` in a new session (its own process group) with output going to `log_path`.

    The child is tied to this process's life (see `_die_with_parent`); `user` runs it as another
    system user (PostgreSQL refuses to run as root)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)

    def spawn() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log_file:
            return subprocess.Popen(
                list(argv),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
                user=user,
                preexec_fn=_die_with_parent,
            )

    try:
        popen = _SPAWNER.submit(spawn).result()
    except FileNotFoundError as exc:
        raise ServiceStartError(f"cannot start {name}: {exc.filename} not found") from exc
    return ManagedProcess(
        name=name, popen=popen, log_path=log_path, argv=list(argv), env=env, cwd=cwd, user=user
    )


NODE_DIR = Path(__file__).resolve().parent.parent / "node"

# V8 lets the young generation of a 64-bit Node grow to 16 MB per semi-space, sized for throughput on
# big machines. The Cosmos emulator and Azurite keep their data in the old generation and their
# requests' garbage dies young and small: with 4 MB semi-spaces the emulator holding 30,000 documents
# took 23 MiB less RSS for the same CPU, Azurite about 12 MiB less under the bench
# (docs/local-host.md "Memory"). The Event Hubs stand-in showed no difference, so it keeps the default.
NODE_MEMORY_OPTIONS = "--max-semi-space-size=4"


def node_environment() -> dict[str, str]:
    """Environment additions for a Node service: the memory options added to the caller's NODE_OPTIONS,
    unless those set a semi-space size of their own (the caller's choice wins)."""
    inherited = os.environ.get("NODE_OPTIONS", "")
    if "--max-semi-space-size" in inherited:
        return {}
    return {"NODE_OPTIONS": f"{inherited} {NODE_MEMORY_OPTIONS}".strip()}


def node_bin(name: str) -> Path:
    """A binary installed by `npm ci` in devhost/node."""
    path = NODE_DIR / "node_modules" / ".bin" / name
    if not path.exists():
        raise ServiceStartError(f"{path} is missing: run `make install` (it runs npm ci in devhost/node)")
    return path
