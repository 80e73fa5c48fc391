"""`python -m devhost run` as a user runs it (what `make run` calls): everything comes up,
health is ok, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devhost.services.process import free_port
from devhost.settings_file import PROJECT_DIR


def _get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(180)
def test_run_serves_health_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    state_dir = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "devhost", "run", "--port", str(port), "--state-dir", str(state_dir)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        body: Any = None
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                status, body = _get_json(f"http://127.0.0.1:{port}/api/health")
            except OSError:
                time.sleep(0.2)
                continue
            if status == 200 and body["status"] == "ok":
                break
            time.sleep(0.2)
        assert body is not None and body["status"] == "ok", body
        assert {name: c["status"] for name, c in body["components"].items()} == {
            "postgres": "ok",
            "cosmos": "ok",
            "eventHubs": "ok",
            "blob": "ok",
        }
        stack = json.loads((state_dir / "stack.json").read_text())
        pids = [
            service["pid"] for service in stack.values() if isinstance(service, dict) and "pid" in service
        ]
        assert len(pids) == 4
        assert all(_alive(pid) for pid in pids)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if _alive(pid)] == [], output
    assert not (state_dir / "stack.json").exists()
