"""`python -m devhost stack` in a subprocess of its own, for tests of the stack itself (its data
across restarts, its fault control). Output goes to a log file next to the state directory."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devhost.settings_file import PROJECT_DIR

START_TIMEOUT_SECONDS = 120.0


class StackProcess:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.log_path = state_dir.parent / f"{state_dir.name}-stack.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.described: dict[str, Any] = {}

    def start(self, keep_data: bool = False) -> dict[str, Any]:
        argv = [sys.executable, "-m", "devhost", "stack", "--state-dir", str(self.state_dir)]
        if keep_data:
            argv.append("--keep-data")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        stack_file = self.state_dir / "stack.json"
        while True:
            assert self.process.poll() is None, f"the stack exited while starting:\n{self.log_tail()}"
            described: dict[str, Any] = {}
            with contextlib.suppress(OSError, ValueError):
                described = json.loads(stack_file.read_text())
            if described.get("stackPid") == self.process.pid:
                self.described = described
                return described
            assert time.monotonic() < deadline, f"the stack did not start:\n{self.log_tail()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        assert self.process.returncode == 0, self.log_tail()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def cosmos_key(self) -> str:
        connection_string: str = self.described["cosmos"]["connectionString"]
        for part in connection_string.split(";"):
            if part.startswith("AccountKey="):
                return part.removeprefix("AccountKey=")
        raise AssertionError("no AccountKey in the Cosmos connection string")
