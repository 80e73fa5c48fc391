"""Watching Cosmos containers from outside: a change-feed reader of its own (its own client, started at
"Now") that notes when each document id is first seen. Polling every `interval` seconds bounds the
observation error (a document is seen at most one interval plus one request after it was written)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from azure.cosmos.aio import ContainerProxy, CosmosClient

from shared_code.adapters.cosmos import direct_transport

PAGE = 1000


class ChangeFeedWatcher:
    def __init__(
        self,
        endpoint: str,
        key: str,
        database: str,
        container: str,
        interval: float = 0.02,
        key_of: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self._endpoint, self._key, self._database, self._container = endpoint, key, database, container
        self.interval = interval
        self._key_of = key_of or (lambda doc: str(doc["id"]))
        self.first_seen: dict[str, float] = {}
        self.requests = 0
        self.errors: list[str] = []  # failed reads (each read again)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(30):
            await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with CosmosClient(self._endpoint, credential=self._key, transport=direct_transport()) as client:
            container = client.get_database_client(self._database).get_container_client(self._container)
            items, token = await self._page(container, None)
            self._ready.set()
            while True:
                try:
                    items, token = await self._page(container, token)
                except Exception as exc:  # a slow emulator times a read out: read again, never stop watching
                    self.errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                    await asyncio.sleep(max(0.2, self.interval))
                    continue
                now = time.monotonic()
                for doc in items:
                    self.first_seen.setdefault(self._key_of(doc), now)
                if len(items) < PAGE:
                    await asyncio.sleep(self.interval)

    async def _page(
        self, container: ContainerProxy, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        self.requests += 1
        if token is None:
            feed = container.query_items_change_feed(start_time="Now", max_item_count=PAGE)
        else:
            feed = container.query_items_change_feed(continuation=token, max_item_count=PAGE)
        pages: Any = feed.by_page()  # the pager carries continuation_token (not in its type)
        try:
            page = await pages.__anext__()
            items = [item async for item in page]
        except StopAsyncIteration:
            items = []
        # As the local host's change-feed trigger does: after an empty page the position is in the etag.
        next_token = pages.continuation_token or container.client_connection.last_response_headers.get("etag")
        return items, str(next_token) if next_token else token
