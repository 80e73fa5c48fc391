"""A property-based run of the whole API against its own OpenAPI document: schemathesis with
every check (no 5xx; statuses, content types, bodies and headers as documented; what the document
allows is accepted and what it forbids refused; authentication not ignored; ...). The document
states every rule the server enforces, so the run finds nothing. Bounded in examples per operation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devhost.services.process import free_port
from devhost.settings_file import LOAD_TEST_RATE_LIMITS, PROJECT_DIR


def _request(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


@pytest.fixture(scope="module")
def running_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`python -m devhost run` in its own process, and an onboarded admin's token."""
    state_dir: Path = tmp_path_factory.mktemp("contract-state")
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "run",
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--log-level",
            "WARNING",
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # The run is a load generator: it sets its own generous rate limits (docs/api.md "Limits").
        env={**os.environ, "LOG_LEVEL": "WARNING", **LOAD_TEST_RATE_LIMITS},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "devhost run exited while starting"
            try:
                if _request(base + "/api/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the local host did not come up"
            time.sleep(0.2)
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "devhost",
                "token",
                "contract-admin",
                "--role",
                "admin",
                "--state-dir",
                str(state_dir),
            ],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status, _ = _request(
            base + "/api/users", "POST", {"username": "contract_admin", "displayName": "Ops"}, token
        )
        assert status == 201
        yield base, token
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


# Enough to reach every operation in every phase (coverage, fuzzing, stateful) in about a minute on
# two cores; the seed makes a failure reproducible with the command the assertion prints.
EXAMPLES_PER_OPERATION = 15
SEED = 1


def test_the_api_honours_its_openapi_document_under_every_check(running_api: tuple[str, str]) -> None:
    """schemathesis with all of its checks, authenticated, against the running local host; the
    few rules a schema cannot state are in schemathesis.toml, each with its reason."""
    base, token = running_api
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(PROJECT_DIR / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{base}/api/openapi.json",
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--workers",
        "1",
    ]
    result = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=540)
    report = result.stdout + result.stderr
    assert "operations" in report.lower(), report[-3000:]
    assert result.returncode == 0, (
        "schemathesis found failures; reproduce against `make run` with\n  "
        + " ".join([*command[:9], "'Authorization: Bearer $TOKEN'", *command[10:]])
        + "\n\n"
        + report[-12000:]
    )
