"""Local services for the integration and e2e tests: each started once per test session,
on free ports, and stopped at the end. Each test gets its own data on top of them
(a database cloned from a migrated template, a Cosmos database of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from devhost.services.azurite import Azurite
    from devhost.services.cosmos import CosmosEmulator
    from devhost.services.eventhubs import EventHubsStandIn
    from devhost.services.postgres import PostgresServer
    from shared_code.app_context import AppContext
    from tests.support.api import ApiClient

TEMPLATE_DATABASE = "chorus_template"


@pytest.fixture(scope="session")
def service_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory, service_log_dir: Path
) -> Iterator[PostgresServer]:
    from devhost.services.postgres import start_postgres

    # Test data is thrown away: no fsync.
    server = start_postgres(tmp_path_factory.mktemp("pg") / "data", service_log_dir, durable=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated_template(postgres_server: PostgresServer) -> str:
    """A database with every migration applied, cloned by each test that needs one."""
    from shared_code.db.migrations import migrate
    from shared_code.db.roles import ensure_app_login
    from tests.support.stack import APP_LOGIN

    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DATABASE}"')
    migrate(postgres_server.url(TEMPLATE_DATABASE))
    ensure_app_login(postgres_server.url(TEMPLATE_DATABASE), APP_LOGIN)
    return TEMPLATE_DATABASE


@pytest.fixture
def database_url(postgres_server: PostgresServer, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield postgres_server.url(name)
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def cosmos_emulator(service_log_dir: Path) -> Iterator[CosmosEmulator]:
    from devhost.services.cosmos import start_cosmos_emulator

    emulator = start_cosmos_emulator(service_log_dir)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def eventhubs_standin(service_log_dir: Path) -> Iterator[EventHubsStandIn]:
    from devhost.services.eventhubs import start_eventhubs_standin

    standin = start_eventhubs_standin(service_log_dir)
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="session")
def azurite(service_log_dir: Path) -> Iterator[Azurite]:
    from azure.storage.blob import BlobServiceClient

    from devhost.services.azurite import start_azurite
    from devhost.settings_file import example_settings

    service = start_azurite(service_log_dir)
    with BlobServiceClient.from_connection_string(service.connection_string) as blob:
        blob.create_container(example_settings()["MEDIA_CONTAINER"])
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def cosmos_database_name(cosmos_emulator: CosmosEmulator) -> Iterator[str]:
    """A Cosmos database with every container from cosmos_indexes/, for this test only."""
    from azure.cosmos import CosmosClient

    from devhost.cosmos_provisioning import provision

    name = f"test_{uuid.uuid4().hex[:12]}"
    with CosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as client:
        provision(client, name)
        yield name
        client.delete_database(name)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the local signing key for test tokens lives."""
    return tmp_path_factory.mktemp("devhost-state")


@pytest.fixture
def app_settings_values(
    database_url: str,
    cosmos_emulator: CosmosEmulator,
    cosmos_database_name: str,
    azurite: Azurite,
    eventhubs_standin: EventHubsStandIn,
    state_dir: Path,
) -> dict[str, str]:
    from tests.support.stack import app_settings

    return app_settings(
        database_url, cosmos_emulator, cosmos_database_name, azurite, eventhubs_standin, state_dir
    )


@pytest.fixture
async def app_context(app_settings_values: dict[str, str]) -> AsyncIterator[AppContext]:
    """The app's clients for this test's database and Cosmos database, installed as the process's."""
    from shared_code.app_context import AppContext
    from shared_code.bootstrap import use_app_context
    from tests.support.stack import settings_from

    context = await AppContext.create(settings_from(app_settings_values))
    use_app_context(context)
    try:
        yield context
    finally:
        use_app_context(None)
        await context.aclose()


@pytest.fixture
def api(app_context: AppContext, app_settings_values: dict[str, str], state_dir: Path) -> ApiClient:
    from tests.support.api import ApiClient
    from tests.support.stack import app_functions

    return ApiClient(app_functions(app_settings_values), state_dir)
