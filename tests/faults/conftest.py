"""The fault suite (`make faults`): one local stack for the session, the app hosted beside it as a
separate process, faults injected with `python -m devhost fault`, outcomes observed over HTTP and
in the stores. Each test makes its own users; after each test every service is healed and a
dead host is started again, so no test inherits another's fault.

What each test measured goes to `.devhost/faults-report.md` (and `.json`): the figures in
docs/reliability.md come from there.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from azure.cosmos.aio import CosmosClient, DatabaseProxy

from devhost.settings_file import PROJECT_DIR
from tests.support.fault_suite import FAULT_HOST_SETTINGS, REPORT, SERVICES, People
from tests.support.running_stack import HostProcess, RunningStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="session")
def report_dir() -> Path:
    path = PROJECT_DIR / ".devhost"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def write_report(report_dir: Path) -> Iterator[None]:
    yield
    if not REPORT:
        return
    (report_dir / "faults-report.json").write_text(json.dumps(REPORT, indent=2) + "\n")
    lines = ["# make faults: measured figures", "", f"Run at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.", ""]
    for entry in REPORT:
        figures = ", ".join(f"{k}={v}" for k, v in entry.items() if k != "fault")
        lines.append(f"- **{entry['fault']}**: {figures}")
    (report_dir / "faults-report.md").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = RunningStack.start(tmp_path_factory.mktemp("fault-stack") / "state")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def host(stack: RunningStack) -> Iterator[HostProcess]:
    process = HostProcess(stack, "main", settings=dict(FAULT_HOST_SETTINGS))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
async def healed_stack(stack: RunningStack, host: HostProcess) -> AsyncIterator[None]:
    """Every test starts with every service up and the host answering, and leaves them so."""
    if not host.alive():
        host.start()
    await host.wait_ready()
    try:
        yield
    finally:
        for service in SERVICES:
            stack.fault(service, "heal")
        if not host.alive():
            host.start()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def people(http: aiohttp.ClientSession, stack: RunningStack, host: HostProcess) -> People:
    return People(http, stack, host)


@pytest.fixture
async def owner_db(stack: RunningStack) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """PostgreSQL as the owner, autocommit: set-up data and counting what the app wrote."""
    async with await psycopg.AsyncConnection.connect(stack.admin_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def cosmos(stack: RunningStack) -> AsyncIterator[DatabaseProxy]:
    async with CosmosClient(stack.cosmos_endpoint, credential=stack.cosmos_key) as client:
        yield client.get_database_client(stack.cosmos_database)
