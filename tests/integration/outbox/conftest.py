"""The outbox relay against the real stack: events are produced through the real HTTP functions
(`api.call`), the relay is driven by hand (`run_once`, `drain`), and what it wrote is read back from
Cosmos DB, PostgreSQL (as the database owner) and the Event Hubs stand-in.

Each test has its own PostgreSQL database and Cosmos database (root conftest). The Event Hubs stand-in is
shared by the session, so a test only looks at messages whose id is one of its own events' ids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import ApiClient
from tests.support.pipeline import (
    Owner,
    People,
)

# --- PostgreSQL, as the owner ----------------------------------------------------------------------


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[Owner]:
    db = await Owner.connect(database_url)
    try:
        yield db
    finally:
        await db.close()


# --- Cosmos DB ----------------------------------------------------------------------------------------


# --- the relay ------------------------------------------------------------------------------------------


# --- Event Hubs ------------------------------------------------------------------------------------------


# --- producing events through the API -------------------------------------------------------------------


@pytest.fixture
def people(api: ApiClient) -> People:
    return People(api)


# --- the projections against PostgreSQL ------------------------------------------------------------------
