"""The local stack and the app host as separate processes, as `make stack` and `make host` run them,
for tests that kill the host or cut a service and watch what the app does.

The tests reach the app over HTTP, the services through the endpoints in `stack.json`, and inject
faults with `python -m devhost fault`, the same command an operator would type.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from devhost.services.process import free_port
from devhost.settings_file import PROJECT_DIR

START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 60.0


class ProcessError(RuntimeError):
    pass


def _log_excerpt(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@dataclass
class RunningStack:
    """`python -m devhost stack --state-dir D` in a subprocess, and what its stack.json says."""

    state_dir: Path
    process: subprocess.Popen[bytes]
    description: dict[str, Any]

    @classmethod
    def start(cls, state_dir: Path) -> RunningStack:
        state_dir.mkdir(parents=True, exist_ok=True)
        stack_file = state_dir / "stack.json"
        stack_file.unlink(missing_ok=True)
        log_path = state_dir / "stack.out"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "devhost", "stack", "--state-dir", str(state_dir)],
                cwd=PROJECT_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not stack_file.exists():
            if process.poll() is not None:
                raise ProcessError(f"the stack exited with {process.returncode}:\n{_log_excerpt(log_path)}")
            if time.monotonic() > deadline:
                _terminate(process)
                raise ProcessError(f"the stack did not start within {START_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.1)
        return cls(state_dir=state_dir, process=process, description=json.loads(stack_file.read_text()))

    @property
    def app_settings(self) -> dict[str, str]:
        return dict(self.description["appSettings"])

    @property
    def admin_url(self) -> str:
        """PostgreSQL as the owner: for set-up data and for counting what the app wrote."""
        return str(self.description["postgres"]["adminUrl"])

    @property
    def cosmos_endpoint(self) -> str:
        return str(self.description["cosmos"]["endpoint"])

    @property
    def cosmos_key(self) -> str:
        for part in str(self.description["cosmos"]["connectionString"]).split(";"):
            if part.startswith("AccountKey="):
                return part[len("AccountKey=") :]
        raise ProcessError("the Cosmos connection string in stack.json has no AccountKey")

    @property
    def cosmos_database(self) -> str:
        return self.app_settings["COSMOS_DATABASE"]

    def fault(self, service: str, action: str) -> None:
        """Inject (or heal) a fault with the operator's command."""
        result = subprocess.run(
            [sys.executable, "-m", "devhost", "fault", service, action, "--state-dir", str(self.state_dir)],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ProcessError(f"devhost fault {service} {action} failed: {result.stdout}{result.stderr}")

    async def published_events(self) -> list[dict[str, Any]]:
        """Every event the Event Hubs stand-in holds, as a consumer would read them, in arrival order."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.description["eventHubs"]["inspectUrl"]) as response,
        ):
            response.raise_for_status()
            events: list[dict[str, Any]] = await response.json()
        return events

    def stop(self) -> None:
        _terminate(self.process)


@dataclass
class HostProcess:
    """`python -m devhost host --port P --state-dir D`: the app, hosted as `func start` would,
    against a running stack. `settings` override the stack's app settings (as environment variables)."""

    stack: RunningStack
    name: str
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.stack.state_dir / f"host-{self.name}.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devhost",
                    "host",
                    "--port",
                    str(self.port),
                    "--state-dir",
                    str(self.stack.state_dir),
                ],
                cwd=PROJECT_DIR,
                env={**os.environ, **self.settings},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> float:
        """Until GET /api/health answers at all; returns the seconds it took."""
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise ProcessError(
                        f"host {self.name} exited with {self.process.returncode}:\n{_log_excerpt(self.log_path)}"
                    )
                try:
                    async with http.get(
                        self.base_url + "/api/health", timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        await response.read()
                        return time.monotonic() - started
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() - started > timeout:
                    raise ProcessError(f"host {self.name} did not answer within {timeout:.0f} s")
                await asyncio.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def worker_pids(self) -> dict[int, int]:
        """The host's worker processes now, by worker index (from host.json; {} before it is written)."""
        try:
            described = json.loads((self.stack.state_dir / "host.json").read_text())
        except (OSError, ValueError):
            return {}
        if described.get("baseUrl") != self.base_url:
            return {}
        return {int(index): int(pid) for index, pid in described.get("workers", {}).items()}

    async def worker_status(self, timeout: float = 60.0) -> dict[int, dict[str, Any]]:
        """GET /admin/host/status from every worker: each on a new connection, which the kernel hands
        to one worker's listener, until every worker in host.json has answered."""
        deadline = time.monotonic() + timeout
        seen: dict[int, dict[str, Any]] = {}
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            while True:
                expected = self.worker_pids()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(
                        self.base_url + "/admin/host/status", timeout=aiohttp.ClientTimeout(total=5)
                    ) as response:
                        status = await response.json()
                        seen[int(status["worker"])] = status
                current = {i: s for i, s in seen.items() if expected.get(i) == s["pid"]}
                if expected and current.keys() == expected.keys():
                    return current
                if time.monotonic() > deadline:
                    raise ProcessError(
                        f"workers {sorted(expected)} did not all answer; answered: {sorted(seen)}"
                    )
                await asyncio.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing, as when a worker is lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
