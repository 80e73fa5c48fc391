"""The long-lived clients of one worker process, created once and shared.

The process's own is held by the composition root (shared_code/bootstrap.py
`get_app_context`); tests and tools build theirs with `AppContext.create(settings)`,
close it with `aclose()`, and may install it with `bootstrap.use_app_context`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from azure.cosmos.aio import CosmosClient, DatabaseProxy
from azure.eventhub.aio import EventHubProducerClient
from azure.storage.blob.aio import BlobServiceClient
from psycopg_pool import AsyncConnectionPool

from shared_code.adapters.blob import create_blob_service
from shared_code.adapters.cosmos import create_cosmos_client, create_request_cosmos_client
from shared_code.adapters.eventhubs import create_producer
from shared_code.adapters.media_signing import MediaSigner, MediaUrls
from shared_code.adapters.postgres import connection_kwargs, open_pool
from shared_code.auth import TokenVerifier
from shared_code.cursors import CursorCodec
from shared_code.db.boundary import UnsafeDatabaseLogin, check_app_login
from shared_code.db.text_search import UnknownTextSearchConfig, check_text_search_config
from shared_code.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AppContext:
    settings: Settings
    pg_pool: AsyncConnectionPool
    # The background work's pool: its connections act as the system from their start (SystemPool).
    system_pool: AsyncConnectionPool
    cosmos: CosmosClient
    cosmos_db: DatabaseProxy
    # The same account for request paths: short timeouts and a small retry budget (COSMOS_REQUEST_*).
    request_cosmos: CosmosClient
    request_cosmos_db: DatabaseProxy
    blob_service: BlobServiceClient
    eventhubs: EventHubProducerClient | None
    tokens: TokenVerifier
    cursors: CursorCodec
    media_urls: MediaUrls

    @classmethod
    async def create(cls, settings: Settings) -> AppContext:
        await refuse_unsafe_login(settings)
        cosmos = create_cosmos_client(settings)
        request_cosmos = create_request_cosmos_client(settings)
        blob_service = create_blob_service(settings)
        eventhubs = create_producer(settings)
        media_signer = MediaSigner.from_settings(settings, blob_service)
        await media_signer.warm_up()  # with the managed identity: the first delegation key, if it can
        if eventhubs is None:
            log.warning(
                "Event Hubs publishing is off: neither EventHubs nor EventHubs__fullyQualifiedNamespace is set"
            )
        return cls(
            settings=settings,
            pg_pool=await open_pool(settings),
            system_pool=await open_pool(settings, acting_as_system=True),
            cosmos=cosmos,
            cosmos_db=cosmos.get_database_client(settings.cosmos_database),
            request_cosmos=request_cosmos,
            request_cosmos_db=request_cosmos.get_database_client(settings.cosmos_database),
            blob_service=blob_service,
            eventhubs=eventhubs,
            tokens=TokenVerifier.from_settings(settings),
            cursors=CursorCodec(settings.cursor_signing_key.get_secret_value().encode()),
            media_urls=MediaUrls(media_signer, timedelta(hours=settings.media_unattached_ttl_hours)),
        )

    async def aclose(self) -> None:
        await self.pg_pool.close()
        await self.system_pool.close()
        await self.cosmos.close()
        await self.request_cosmos.close()
        await self.blob_service.close()
        if self.eventhubs is not None:
            await self.eventhubs.close()


async def refuse_unsafe_login(settings: Settings) -> None:
    """Refuse to start (UnsafeDatabaseLogin, naming the cause) if the app's PostgreSQL login would not
    be subject to row-level security, or (UnknownTextSearchConfig) if the database has no text-search
    configuration named SEARCH_TEXT_CONFIG. A server that is away does not stop the start: the pool then
    checks its first connection instead (shared_code.adapters.postgres.open_pool)."""
    try:
        kwargs = await connection_kwargs(settings)()
        conn = await psycopg.AsyncConnection.connect(settings.postgres_url.get_secret_value(), **kwargs)
    except psycopg.OperationalError as exc:
        log.warning(
            "cannot check the PostgreSQL login at start-up (%s); the pool checks it on connecting", exc
        )
        return
    try:
        await check_app_login(conn)
        await check_text_search_config(conn, settings.search_text_config)
    except (UnsafeDatabaseLogin, UnknownTextSearchConfig) as exc:
        log.critical("%s", exc)
        raise
    finally:
        await conn.close()
