"""A property-based run of the whole API against its own OpenAPI document (schemathesis):
no 5xx, and no response that breaks its documented status, content type or schema.
Bounded in examples per operation and in time."""

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
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devhost.services.process import free_port
from devhost.settings_file import PROJECT_DIR

EXAMPLES_PER_OPERATION = 8


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
        env={**os.environ, "LOG_LEVEL": "WARNING"},
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


@pytest.fixture(scope="module")
def api_schema(running_api: tuple[str, str]) -> Any:
    base, _ = running_api
    status, document = _request(base + "/api/openapi.json")
    assert status == 200
    # Deleting the account would turn every later call into "not set up": left out of the run.
    return schemathesis.openapi.from_dict(document).exclude(method="DELETE", path="/api/users/me")


# schemathesis' pytest plugin does not work with pytest 9, so each operation is driven through its
# hypothesis strategy directly: the same generation and the same checks.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.timeout(600)
def test_the_api_honours_its_openapi_document(api_schema: Any, running_api: tuple[str, str]) -> None:
    base, token = running_api
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case: Any) -> None:
            case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

        try:
            exercise()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # schemathesis raises exception groups: collect, then report all
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert failures == [], "\n\n".join(failures)
