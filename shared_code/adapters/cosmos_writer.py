"""Applying projection writes to Cosmos DB, idempotently and never backwards.

A versioned write costs one request in the common case: a patch whose filter
predicate only matches an older stored version (412 means "already newer: done";
404 means "not there yet: create it"). Documents with more fields than a patch
may set fall back to read-then-replace on the ETag.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from azure.core import MatchConditions
from azure.cosmos import exceptions
from azure.cosmos.aio import ContainerProxy, DatabaseProxy

from shared_code.projections.writes import PARTITION_KEYS, CosmosWrite, CreateOnce, VersionedUpsert

# Cosmos DB accepts at most this many operations in one patch.
MAX_PATCH_OPERATIONS = 10
# A write that keeps losing races to concurrent writers gives up after this many rounds.
MAX_ROUNDS = 5


class CosmosWriter:
    def __init__(self, database: DatabaseProxy) -> None:
        self._database = database
        self._containers: dict[str, ContainerProxy] = {}

    def container(self, name: str) -> ContainerProxy:
        if name not in self._containers:
            self._containers[name] = self._database.get_container_client(name)
        return self._containers[name]

    async def probe(self) -> None:
        """One cheap read of the database's properties: raises when Cosmos DB does not answer."""
        await self._database.read()

    async def apply_all(self, writes: Iterable[CosmosWrite]) -> None:
        """Apply independent writes concurrently (they target different documents)."""
        await asyncio.gather(*(self.apply(write) for write in writes))

    async def apply(self, write: CosmosWrite) -> None:
        if isinstance(write, CreateOnce):
            # Already there: a replay, or the cause repeated.
            with contextlib.suppress(exceptions.CosmosResourceExistsError):
                await self.container(write.container).create_item(write.document)
            return
        await self._versioned_upsert(write)

    async def _versioned_upsert(self, write: VersionedUpsert) -> None:
        container = self.container(write.container)
        document = write.document
        version = int(document["version"])
        key_field = PARTITION_KEYS[write.container]
        fields = {name: value for name, value in document.items() if name not in ("id", key_field)}
        # A first version is most likely a new document: try the one-request create first.
        if version == 1 and await _created(container, document):
            return
        for _ in range(MAX_ROUNDS):
            if len(fields) <= MAX_PATCH_OPERATIONS:
                outcome = await _patch_if_older(
                    container, document["id"], write.partition_key, fields, version
                )
            else:
                outcome = await _replace_if_older(container, document, write.partition_key, version)
            if outcome != "missing":
                return
            if await _created(container, document):
                return
        raise RuntimeError(
            f"{write.container}/{document['id']}: lost {MAX_ROUNDS} races with concurrent writers; will retry"
        )


async def _created(container: ContainerProxy, document: dict[str, Any]) -> bool:
    try:
        await container.create_item(document)
    except exceptions.CosmosResourceExistsError:
        return False
    return True


async def _patch_if_older(
    container: ContainerProxy, item_id: str, partition_key: str, fields: dict[str, Any], version: int
) -> str:
    operations = [{"op": "set", "path": f"/{name}", "value": value} for name, value in fields.items()]
    try:
        await container.patch_item(
            item_id,
            partition_key,
            operations,
            # An int we produced ourselves: safe to inline (predicates take no parameters).
            filter_predicate=f"FROM c WHERE c.version < {version}",
        )
    except exceptions.CosmosAccessConditionFailedError:
        return "not-older"
    except exceptions.CosmosResourceNotFoundError:
        return "missing"
    return "written"


async def _replace_if_older(
    container: ContainerProxy, document: dict[str, Any], partition_key: str, version: int
) -> str:
    for _ in range(MAX_ROUNDS):
        try:
            current = await container.read_item(document["id"], partition_key)
        except exceptions.CosmosResourceNotFoundError:
            return "missing"
        if int(current.get("version", 0)) >= version:
            return "not-older"
        try:
            await container.replace_item(
                document["id"], document, etag=current["_etag"], match_condition=MatchConditions.IfNotModified
            )
        except exceptions.CosmosAccessConditionFailedError:
            continue  # someone wrote in between: look again
        except exceptions.CosmosResourceNotFoundError:
            return "missing"
        return "written"
    raise RuntimeError(f"{document['id']}: lost {MAX_ROUNDS} races with concurrent writers; will retry")
