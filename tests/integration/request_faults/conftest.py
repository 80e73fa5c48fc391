"""The app in-process with its Cosmos DB behind a proxy a test can cut, hang or make fail
(tests/support/cosmos_fault_proxy.py), and a small social graph whose feeds are in Cosmos DB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.support.cosmos_fault_proxy import CosmosFaultProxy

if TYPE_CHECKING:
    from devhost.services.cosmos import CosmosEmulator


@pytest.fixture(autouse=True)
def outage_logs_start_fresh() -> None:
    """Operators' outage messages are logged at most every few seconds per process; each test here
    expects its own."""
    from functions.http_support import (
        cosmos_unavailable_log,
        media_storage_unavailable_log,
        postgres_unavailable_log,
    )

    for outage in (cosmos_unavailable_log, media_storage_unavailable_log, postgres_unavailable_log):
        outage.reset()


@pytest.fixture
async def cosmos_proxy(cosmos_emulator: CosmosEmulator) -> AsyncIterator[CosmosFaultProxy]:
    proxy = await CosmosFaultProxy.start(cosmos_emulator.endpoint)
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
def app_settings_values(
    app_settings_values: dict[str, str], cosmos_proxy: CosmosFaultProxy
) -> dict[str, str]:
    """The root conftest's settings, with Cosmos DB reached through the proxy."""
    return {**app_settings_values, "CosmosDB": cosmos_proxy.connection_string}
