"""Cosmos DB trigger functions fed from the emulator's change feed.

Like the Functions host's change feed processor: one lease per monitored
container, stored in the lease container under the function's
`leaseContainerPrefix`; batches handed over as `func.DocumentList`; the
checkpoint moves only after a batch is handled. A batch that still fails after
the function's retry policy is logged and recorded in a file (the host would
move on too), so nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.cosmos import exceptions
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.functions import meta

from devhost.host.app_index import AppIndexError, FunctionSpec, resolve_setting_refs
from devhost.host.retries import Invoke, invoke_with_retries
from shared_code.adapters.cosmos import direct_transport, parse_connection_string

log = logging.getLogger("devhost.change_feed")

DEFAULT_POLL_DELAY_MS = 5000  # the host's default feedPollDelay
DEFAULT_MAX_ITEMS = 100


@dataclass(frozen=True)
class TriggerConfig:
    connection_string: str
    database: str
    container: str
    lease_database: str
    lease_container: str
    lease_prefix: str
    start_from_beginning: bool
    start_from_time: datetime | None
    max_items: int
    poll_delay_seconds: float

    @property
    def lease_id(self) -> str:
        return f"{self.lease_prefix}{self.database}.{self.container}..0"


def trigger_config(spec: FunctionSpec, environ: dict[str, str]) -> TriggerConfig:
    trigger = spec.trigger
    connection = str(trigger.get("connection") or trigger.get("connectionStringSetting") or "")
    if connection not in environ:
        raise AppIndexError(
            f"function {spec.name}: connection setting {connection!r} is not set "
            f"(the local host needs a Cosmos connection string there)"
        )
    database = resolve_setting_refs(str(trigger["databaseName"]), environ)
    start_time = trigger.get("startFromTime")
    return TriggerConfig(
        connection_string=environ[connection],
        database=database,
        container=resolve_setting_refs(str(trigger["containerName"]), environ),
        lease_database=resolve_setting_refs(str(trigger.get("leaseDatabaseName") or database), environ),
        lease_container=resolve_setting_refs(str(trigger.get("leaseContainerName") or "leases"), environ),
        lease_prefix=resolve_setting_refs(str(trigger.get("leaseContainerPrefix") or ""), environ),
        start_from_beginning=bool(trigger.get("startFromBeginning", False)),
        start_from_time=datetime.fromisoformat(str(start_time)) if start_time else None,
        max_items=int(trigger.get("maxItemsPerInvocation") or DEFAULT_MAX_ITEMS),
        poll_delay_seconds=int(trigger.get("feedPollDelay") or DEFAULT_POLL_DELAY_MS) / 1000,
    )


def document_list(items: list[dict[str, Any]]) -> Any:
    return (
        meta.get_binding_registry()
        .get("cosmosDBTrigger")
        .decode(meta.Datum(json.dumps(items), "json"), trigger_metadata={})
    )


class ChangeFeedTrigger:
    """Feeds one Cosmos DB trigger function until cancelled."""

    def __init__(
        self, spec: FunctionSpec, config: TriggerConfig, invoke: Invoke, failures_dir: Path, host_id: str
    ) -> None:
        self.spec = spec
        self.config = config
        self._invoke = invoke
        self._failures_path = failures_dir / f"{spec.name}.jsonl"
        self._host_id = host_id
        self.checkpoint: str | None = None

    async def run(self) -> None:
        parts = parse_connection_string(self.config.connection_string)
        # A client of its own: the change feed continuation is read from the client's last response.
        async with CosmosClient(
            parts["AccountEndpoint"], credential=parts["AccountKey"], transport=direct_transport()
        ) as client:
            monitored = client.get_database_client(self.config.database).get_container_client(
                self.config.container
            )
            leases = client.get_database_client(self.config.lease_database).get_container_client(
                self.config.lease_container
            )
            continuation = self.checkpoint = await self._read_lease(leases)
            while True:
                try:
                    items, next_continuation = await self._read_page(monitored, continuation)
                except exceptions.CosmosHttpResponseError as exc:
                    log.warning(
                        "%s: reading the change feed of %s failed (%s); retrying",
                        self.spec.name,
                        self.config.container,
                        exc.status_code,
                    )
                    await asyncio.sleep(self.config.poll_delay_seconds)
                    continue
                if items:
                    await self._deliver(items)
                if next_continuation and next_continuation != continuation:
                    continuation = next_continuation
                    await self._write_lease(leases, continuation)
                if not items:
                    await asyncio.sleep(self.config.poll_delay_seconds)

    def _start_from(self) -> Any:
        """Where a function with no lease starts: a point in time, the beginning, or now."""
        if self.config.start_from_time is not None:
            return self.config.start_from_time
        return "Beginning" if self.config.start_from_beginning else "Now"

    async def _read_page(
        self, monitored: ContainerProxy, continuation: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        if continuation is None:
            feed = monitored.query_items_change_feed(
                start_time=self._start_from(), max_item_count=self.config.max_items
            )
        else:
            feed = monitored.query_items_change_feed(
                continuation=continuation, max_item_count=self.config.max_items
            )
        pages: Any = feed.by_page()  # the SDK's pager: typed as a plain async iterator
        try:
            page = await pages.__anext__()
            items = [item async for item in page]
        except StopAsyncIteration:
            items = []
        # After an empty page (304) the pager keeps no token; the SDK leaves the resumable position in
        # the client's last response (this client is ours alone, so nothing else has overwritten it).
        token = pages.continuation_token or monitored.client_connection.last_response_headers.get("etag")
        return items, str(token) if token else continuation

    async def _deliver(self, items: list[dict[str, Any]]) -> None:
        summary = f"{self.config.container} docs={len(items)}"
        try:
            await invoke_with_retries(self.spec, document_list(items), self._invoke, summary=summary)
        except Exception as exc:
            self._record_failure(items, exc)

    def _record_failure(self, items: list[dict[str, Any]], exc: Exception) -> None:
        self._failures_path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "function": self.spec.name,
            "container": self.config.container,
            "failedAt": datetime.now(UTC).isoformat(),
            "error": f"{type(exc).__name__}: {exc}",
            "documents": items,
        }
        with self._failures_path.open("a") as out:
            out.write(json.dumps(record, default=str) + "\n")
        log.error(
            "%s failed on %d document(s) after its retries (%s: %s); the batch is recorded in %s "
            "for replay and the feed moves on",
            self.spec.name,
            len(items),
            type(exc).__name__,
            exc,
            self._failures_path,
        )

    async def _read_lease(self, leases: ContainerProxy) -> str | None:
        try:
            lease = await leases.read_item(self.config.lease_id, partition_key=self.config.lease_id)
        except exceptions.CosmosResourceNotFoundError:
            return None
        token = lease.get("ContinuationToken")
        return str(token) if token else None

    async def _write_lease(self, leases: ContainerProxy, continuation: str) -> None:
        self.checkpoint = continuation
        await leases.upsert_item(
            {
                "id": self.config.lease_id,
                "LeaseToken": "0",
                "ContinuationToken": continuation,
                "Owner": self._host_id,
                "timestamp": time.time(),
            }
        )
