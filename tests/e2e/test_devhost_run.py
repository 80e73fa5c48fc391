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


def _get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
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
        token: str | None = None
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if token is None and _healthy(port):
                    token = _admin_token(state_dir)
                if token is None:
                    time.sleep(0.2)
                    continue
                # The readiness report is the operators' (admin role); anonymous health is liveness only.
                status, body = _get_json(f"http://127.0.0.1:{port}/api/admin/health", token)
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def _healthy(port: int) -> bool:
    """The host answers its liveness probe."""
    try:
        status, body = _get_json(f"http://127.0.0.1:{port}/api/health")
    except OSError:
        return False
    return status == 200 and body["status"] == "alive"


def _admin_token(state_dir: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "devhost", "token", "ops", "--role", "admin", "--state-dir", str(state_dir)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.timeout(240)
def test_run_restarts_a_host_killed_with_sigkill_and_the_services_keep_their_data(tmp_path: Path) -> None:
    port = free_port()
    state_dir = tmp_path / "state"
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "run", "--port", str(port), "--state-dir", str(state_dir)],
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # A first worker may answer before every worker is up; host.json is written once all are.
        _wait_for(
            lambda: process.poll() is None and _healthy(port) and bool(_read_json(state_dir / "host.json")),
            120,
            "the API did not answer",
        )
        host = _read_json(state_dir / "host.json")
        stack = _read_json(state_dir / "stack.json")
        service_pids = {name: stack[name]["pid"] for name in ("postgres", "cosmos", "azurite", "eventHubs")}
        token = subprocess.run(
            [sys.executable, "-m", "devhost", "token", "survivor", "--state-dir", str(state_dir)],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/users",
            data=json.dumps({"username": "survivor", "displayName": "Survivor"}).encode(),
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201

        os.kill(host["pid"], signal.SIGKILL)

        def restarted() -> bool:
            now = _read_json(state_dir / "host.json")
            return bool(now) and now["pid"] != host["pid"] and _healthy(port)

        _wait_for(restarted, 60, "the host was not restarted and healthy again")
        # The stack and its services never noticed: same processes, same data.
        assert process.poll() is None
        stack_now = _read_json(state_dir / "stack.json")
        assert {name: stack_now[name]["pid"] for name in service_pids} == service_pids
        me = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(me, timeout=10) as response:
            assert json.loads(response.read())["username"] == "survivor"
        output = log_path.read_text(errors="replace")
        assert "the host was killed by SIGKILL" in output
        assert "restarting it" in output
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0, log_path.read_text(errors="replace")[-3000:]
    assert not (state_dir / "stack.json").exists()
