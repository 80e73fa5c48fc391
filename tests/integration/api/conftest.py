"""Fixtures of the HTTP API tests: the owner's view of the test database, and a few
shortcuts for the setup steps most tests share (onboard, post, comment)."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
import pytest

from tests.support.api import ApiClient
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb

if TYPE_CHECKING:
    from devhost.services.cosmos import CosmosEmulator
    from shared_code.app_context import AppContext


@pytest.fixture(scope="session")
def shared_cosmos_database(cosmos_emulator: CosmosEmulator) -> Iterator[str]:
    from azure.cosmos import CosmosClient

    from devhost.cosmos_provisioning import provision

    name = f"api_{uuid.uuid4().hex[:12]}"
    with CosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as client:
        provision(client, name)
        yield name
        client.delete_database(name)


@pytest.fixture
def cosmos_database_name(shared_cosmos_database: str) -> str:
    """One Cosmos database for every test here, instead of one each (about 0.3 s a test). These
    tests never run the relay, so the projections stay empty; the only Cosmos writes are cache
    refills keyed by each test's own fresh ids, so tests cannot see each other through Cosmos.
    A test that runs the relay or asserts on projections belongs elsewhere (tests/e2e), with a
    Cosmos database of its own."""
    return shared_cosmos_database


def _with_content_type(function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Put the response's mimetype in its headers, as the local host's HTTP server does, so that
    tests can check the Content-Type a client would get."""

    @functools.wraps(function)
    async def wrapper(req: func.HttpRequest) -> Any:
        result = await function(req)
        if isinstance(result, func.HttpResponse) and result.mimetype and "Content-Type" not in result.headers:
            text = result.mimetype.startswith("text/") and result.charset
            charset = f"; charset={result.charset}" if text else ""
            result.headers["Content-Type"] = result.mimetype + charset
        return result

    return wrapper


@pytest.fixture
def api(app_context: AppContext, app_settings_values: dict[str, str], state_dir: Path) -> ApiClient:
    """The root conftest's client, with Content-Type visible in responses."""
    from tests.support.stack import app_functions

    specs = [
        dataclasses.replace(spec, user_function=_with_content_type(spec.user_function))
        if spec.trigger_type == "httpTrigger"
        else spec
        for spec in app_functions(app_settings_values)
    ]
    return ApiClient(specs, state_dir)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[OwnerDb]:
    """The test's database as its owner: outbox rows and every table, row-level security bypassed."""
    owner = await OwnerDb.connect(database_url)
    try:
        yield owner
    finally:
        await owner.close()


@pytest.fixture
def chorus(api: ApiClient) -> Chorus:
    return Chorus(api)
