"""The local Functions host, driven over real HTTP and real Cosmos change feeds with a sample app."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from azure.cosmos import PartitionKey
from azure.cosmos.aio import CosmosClient

from devhost.host.server import FunctionHost

if TYPE_CHECKING:
    from devhost.services.cosmos import CosmosEmulator
from devhost.services.process import free_port

SAMPLE_APP = Path(__file__).parent / "sample_app"
MODULE = "sample_function_app"
GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Poll `check` until true; fail with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def sample_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("SAMPLE_TIMER_SCHEDULE", "* * * * * *")
    monkeypatch.setenv("SAMPLE_DATABASE", "unused")
    monkeypatch.setenv("CosmosDB", "AccountEndpoint=https://127.0.0.1:1/;AccountKey=a2V5;")
    return monkeypatch


async def start_host(tmp_path: Path, only: set[str]) -> tuple[FunctionHost, ModuleType]:
    """Host only the named functions (as `func start --functions` does): the others need
    services a given test does not start."""
    host = FunctionHost(SAMPLE_APP, tmp_path, port=free_port(), module_name=MODULE, only=only)
    await host.start()
    return host, sys.modules[MODULE]


@pytest.fixture
async def http_host(tmp_path: Path, sample_environment: pytest.MonkeyPatch) -> AsyncIterator[FunctionHost]:
    host, _ = await start_host(
        tmp_path,
        only={
            "get_item",
            "get_numbered_item",
            "get_special_item",
            "create_item",
            "get_file",
            "get_page",
            "boom",
        },
    )
    yield host
    await host.stop()


async def get(host: FunctionHost, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, host.base_url + path, **kwargs) as r,
    ):
        body = await r.read()
        parsed = json.loads(body) if body and r.content_type == "application/json" else body
        return r.status, parsed, r.headers


async def test_route_templates_and_constraints(http_host: FunctionHost) -> None:
    status, body, _ = await get(http_host, f"/api/items/{GUID}?q=hello")
    assert (status, body) == (200, {"route": "guid", "id": GUID, "q": "hello"})
    assert (await get(http_host, "/api/items/42"))[1]["route"] == "int"
    assert (await get(http_host, "/api/items/special"))[1] == {"route": "literal"}
    assert (await get(http_host, "/api/files/a/b.txt"))[1] == {"path": "a/b.txt"}
    assert (await get(http_host, "/api/pages"))[1] == {"page": None}
    assert (await get(http_host, "/API/Pages/3"))[1] == {"page": "3"}


async def test_unknown_routes_are_404_and_wrong_methods_405(http_host: FunctionHost) -> None:
    assert (await get(http_host, "/api/items/not-a-guid-or-int"))[0] == 404
    assert (await get(http_host, "/api/nowhere"))[0] == 404
    assert (await get(http_host, "/items/42"))[0] == 404  # outside the routePrefix
    status, _, headers = await get(http_host, "/api/items/42", method="DELETE")
    assert status == 405
    assert headers["Allow"] == "GET"


async def test_sync_functions_get_context_and_run_off_the_loop(http_host: FunctionHost) -> None:
    _, body, _ = await get(http_host, "/api/items/7")
    assert body["function"] == "get_numbered_item"
    assert uuid.UUID(body["invocationId"])
    assert body["thread"].startswith("function")


async def test_request_bodies_and_status_codes_pass_through(http_host: FunctionHost) -> None:
    status, body, _ = await get(http_host, "/api/items", method="POST", json={"name": "x"})
    assert status == 201
    assert body["received"] == {"name": "x"}
    assert body["contentType"].startswith("application/json")


async def test_an_unhandled_exception_is_a_logged_500(
    http_host: FunctionHost, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        status, body, _ = await get(http_host, "/api/boom")
    assert status == 500
    assert b"failed on purpose" not in (body or b"")  # no error text reaches the client
    assert any("failed on purpose" in (r.exc_text or "") for r in caplog.records)
    assert any(
        "boom trigger=httpTrigger" in r.getMessage() and "outcome=failed" in r.getMessage()
        for r in caplog.records
    )


async def test_one_log_line_per_invocation(http_host: FunctionHost, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="devhost.invocations"):
        await get(http_host, "/api/items/special")
    lines = [r.getMessage() for r in caplog.records if r.name == "devhost.invocations"]
    assert len(lines) == 1
    assert "get_special_item trigger=httpTrigger GET /api/items/special -> 200" in lines[0]
    assert "outcome=succeeded" in lines[0]


async def test_a_timer_fires_on_its_schedule(tmp_path: Path, sample_environment: pytest.MonkeyPatch) -> None:
    host, module = await start_host(tmp_path, only={"every_second"})
    try:
        await eventually(lambda: len(module.TIMER_RUNS) >= 2, timeout=5)
    finally:
        await host.stop()
    assert module.TIMER_RUNS[0]["function"] == "every_second"


# --- Cosmos DB trigger -------------------------------------------------------------------------


@pytest.fixture
async def watched(cosmos_emulator: CosmosEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """A database with a `watched` container and a `leases` container, and the app settings for them."""
    database_name = f"host_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SAMPLE_TIMER_SCHEDULE", "0 0 0 1 1 *")
    monkeypatch.setenv("SAMPLE_DATABASE", database_name)
    monkeypatch.setenv("CosmosDB", cosmos_emulator.connection_string)
    async with CosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as client:
        database = await client.create_database(database_name)
        container = await database.create_container("watched", partition_key=PartitionKey("/pk"))
        await database.create_container("leases", partition_key=PartitionKey("/id"))
        yield container
        await client.delete_database(database_name)


def delivered_ids(module: ModuleType) -> list[str]:
    return [str(item["id"]) for batch in module.FEED_BATCHES for item in batch]


async def test_a_cosmos_trigger_gets_exactly_the_documents_changed_after_its_checkpoint(
    tmp_path: Path, watched: Any
) -> None:
    await watched.upsert_item({"id": "before-start", "pk": "a"})
    host, module = await start_host(tmp_path, only={"on_watched_change"})
    try:
        # With no lease the function starts from now: wait until it holds a checkpoint.
        await eventually(lambda: _has_lease(host))
        for i in range(5):
            await watched.upsert_item({"id": f"doc-{i}", "pk": f"p{i % 2}", "n": i})
        await watched.upsert_item({"id": "doc-0", "pk": "p0", "n": 100})  # changed again
        await eventually(lambda: "doc-4" in delivered_ids(module) and _latest(module, "doc-0") == 100)
    finally:
        await host.stop()
    ids = delivered_ids(module)
    assert "before-start" not in ids
    assert sorted(set(ids)) == [f"doc-{i}" for i in range(5)]
    assert all(isinstance(batch, list) for batch in module.FEED_BATCHES)


def _latest(module: ModuleType, doc_id: str) -> Any:
    values = [item.get("n") for batch in module.FEED_BATCHES for item in batch if item["id"] == doc_id]
    return values[-1] if values else None


def _has_lease(host: FunctionHost) -> bool:
    return all(host.change_feed_checkpoints().values())


async def test_a_cosmos_trigger_resumes_from_its_lease_after_a_restart(tmp_path: Path, watched: Any) -> None:
    host, module = await start_host(tmp_path, only={"on_watched_change"})
    try:
        await eventually(lambda: _has_lease(host))
        await watched.upsert_item({"id": "first", "pk": "a"})
        await eventually(lambda: "first" in delivered_ids(module))
    finally:
        await host.stop()

    await watched.upsert_item({"id": "while-stopped", "pk": "a"})
    host, module = await start_host(tmp_path, only={"on_watched_change"})  # a fresh module: empty lists
    try:
        await eventually(lambda: "while-stopped" in delivered_ids(module))
        await watched.upsert_item({"id": "after-restart", "pk": "b"})
        await eventually(lambda: "after-restart" in delivered_ids(module))
    finally:
        await host.stop()
    assert "first" not in delivered_ids(module)


async def test_a_failing_batch_is_retried_then_recorded_not_dropped(tmp_path: Path, watched: Any) -> None:
    host, module = await start_host(tmp_path, only={"on_watched_change"})
    try:
        await eventually(lambda: _has_lease(host))
        await watched.upsert_item({"id": "bad", "pk": "a", "kind": "poison"})
        failures = tmp_path / "failed-batches" / "on_watched_change.jsonl"
        await eventually(failures.exists)
        await watched.upsert_item({"id": "good", "pk": "a"})
        await eventually(lambda: "good" in delivered_ids(module))
    finally:
        await host.stop()
    assert len(module.FAILED_ATTEMPTS) == 3  # the first try and two retries
    record = json.loads(failures.read_text().splitlines()[0])
    assert record["function"] == "on_watched_change"
    assert [d["id"] for d in record["documents"]] == ["bad"]
    assert "poison" in record["error"]
