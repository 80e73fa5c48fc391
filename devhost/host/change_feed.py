"""Cosmos DB trigger functions fed from the emulator's change feed.

Like the Functions host's change feed processor:

- The monitored container's change feed is split into feed ranges (the real
  processor has one per physical partition; the emulator has one partition, so
  the key space is cut into `DEVHOST_CHANGE_FEED_LEASES` ranges, 2 by default).
  Each range has a lease document in the lease container, under the function's
  `leaseContainerPrefix`: its `FeedRange`, its `ContinuationToken`, its `Owner`
  and a `timestamp`.
- Leases are owned: a host takes an unowned or expired lease (no renewal for
  `LEASE_EXPIRY_SECONDS`), renews its own every `LEASE_RENEW_SECONDS`, and, when
  another host holds more than its share, takes one of that host's leases (load
  balancing). Every change of a lease is a replace conditional on its ETag, so
  two hosts can never both think they took it: the loser gets 412 and lets go.
  A host that loses a lease stops reading that range after its current batch.
- Batches go to the function as `func.DocumentList`; the checkpoint moves only
  after a batch is handled, and only while the lease is still this host's (an
  ETag-conditional replace). A batch that still fails after the function's
  retry policy is logged and recorded in a file (the host would move on too), so
  nothing is dropped silently.
- A host that stops releases its leases, so another takes them at once; one that
  dies leaves them to expire. Its owner name is the machine and the HTTP port, so
  a host restarted on the same port picks its own leases up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.cosmos import exceptions
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.functions import meta

from devhost.host.app_index import AppIndexError, FunctionSpec, resolve_setting_refs
from devhost.host.cancellation import raise_if_stopping
from devhost.host.retries import Invoke, invoke_with_retries
from shared_code.adapters.cosmos import direct_transport, parse_connection_string

log = logging.getLogger("devhost.change_feed")

DEFAULT_POLL_DELAY_MS = 5000  # the host's default feedPollDelay
DEFAULT_MAX_ITEMS = 100

# The Functions host's defaults are 60 s / 17 s / 13 s; shorter locally, so that a killed host's
# leases move within seconds and a second host gets its share at once.
LEASE_EXPIRY_SECONDS = float(os.environ.get("DEVHOST_LEASE_EXPIRY_SECONDS", "15"))
LEASE_RENEW_SECONDS = LEASE_EXPIRY_SECONDS / 5
LEASE_ACQUIRE_SECONDS = 1.0
# A change-feed read or a lease write answers at once (an empty feed is a 304). One that has not answered
# in this long (connecting, or waiting for the answer) is lost, e.g. sent to a paused or restarting
# emulator: it is given up and asked again, so a range reads on within about this long of the emulator's
# return. The SDK's own defaults (5 s to connect, 65 s to read) would stall the range meanwhile.
CLIENT_TIMEOUT_SECONDS = 5.0
# A change-feed read, whatever the SDK does inside it, is given up after this long. The SDK retries a lost
# connection itself, with backoff, and only checks its own operation timeout between tries: a read
# begun during an outage was seen to stall its range until well past the emulator's return.
READ_DEADLINE_SECONDS = 2 * CLIENT_TIMEOUT_SECONDS


def lease_count() -> int:
    return max(1, int(os.environ.get("DEVHOST_CHANGE_FEED_LEASES", "2")))


def feed_ranges(count: int) -> list[dict[str, Any]]:
    """`count` feed ranges covering every effective partition key. Hash-v2 keys (what the SDK creates
    containers with) all fall below "40", so that span is cut in equal parts; the last one runs to "FF"."""
    bounds = ["", *(f"{(0x40 * i) // count:02X}" for i in range(1, count)), "FF"]
    return [
        {"Range": {"min": lo, "max": hi, "isMinInclusive": True, "isMaxInclusive": False}}
        for lo, hi in itertools.pairwise(bounds)
    ]


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

    def lease_id(self, index: int) -> str:
        return f"{self.lease_prefix}{self.database}.{self.container}..{index}"


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


@dataclass
class Lease:
    """A lease document as this host last saw it (its ETag included)."""

    document: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def owner(self) -> str | None:
        return self.document.get("Owner") or None

    @property
    def etag(self) -> str:
        return str(self.document["_etag"])

    @property
    def continuation(self) -> str | None:
        token = self.document.get("ContinuationToken")
        return str(token) if token else None

    @property
    def feed_range(self) -> dict[str, Any]:
        return dict(self.document["FeedRange"])

    def alive(self, now: float) -> bool:
        return (
            self.owner is not None and float(self.document.get("timestamp") or 0) + LEASE_EXPIRY_SECONDS > now
        )


class LeaseLost(Exception):
    """Another host owns the lease now."""


@dataclass
class _Owned:
    lease: Lease
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None


class ChangeFeedTrigger:
    """Feeds one Cosmos DB trigger function until cancelled: takes its share of the leases, reads
    the change feed of each range it owns, renews and checkpoints them."""

    def __init__(
        self, spec: FunctionSpec, config: TriggerConfig, invoke: Invoke, failures_dir: Path, host_id: str
    ) -> None:
        self.spec = spec
        self.config = config
        self._invoke = invoke
        self._failures_path = failures_dir / f"{spec.name}.jsonl"
        self.owner = host_id
        self._ranges = feed_ranges(lease_count())
        self._owned: dict[str, _Owned] = {}
        self._leases: ContainerProxy | None = None
        self._idle: set[str] = set()  # leases whose last read found nothing new
        self.delivered = 0  # documents handed to the function (for tests and diagnostics)

    @property
    def owned_leases(self) -> list[str]:
        return sorted(self._owned)

    @property
    def caught_up(self) -> bool:
        """Whether this host owns leases and its last read of each found nothing new."""
        return bool(self._owned) and set(self._owned) <= self._idle

    @property
    def checkpoint(self) -> str | None:
        """A summary of this host's positions, once every lease it owns has one (None before)."""
        tokens = [o.lease.continuation for o in self._owned.values()]
        if not tokens or not all(tokens):
            return None
        return f"{len(tokens)} lease(s) positioned"

    def _client(self) -> CosmosClient:
        parts = parse_connection_string(self.config.connection_string)
        # The timeouts go to the client, not only the transport: the SDK sends its own per request.
        return CosmosClient(
            parts["AccountEndpoint"],
            credential=parts["AccountKey"],
            transport=direct_transport(),
            connection_timeout=CLIENT_TIMEOUT_SECONDS,
            read_timeout=CLIENT_TIMEOUT_SECONDS,
            # A lost request fails at once rather than being retried after a growing backoff: the caller
            # asks again after its poll delay, so the first request after the emulator's return is fresh.
            retry_connect=0,
            retry_read=0,
        )

    async def run(self) -> None:
        async with self._client() as client:
            self._leases = client.get_database_client(self.config.lease_database).get_container_client(
                self.config.lease_container
            )
            renewed_at = 0.0
            try:
                while True:
                    try:
                        await self._balance()
                        if time.monotonic() - renewed_at >= LEASE_RENEW_SECONDS:
                            await self._renew_all()
                            renewed_at = time.monotonic()
                    except AzureError as exc:
                        raise_if_stopping(exc)
                        log.warning(
                            "%s: the lease container did not answer (%s); trying again",
                            self.spec.name,
                            getattr(exc, "status_code", None) or type(exc).__name__,
                        )
                    await asyncio.sleep(LEASE_ACQUIRE_SECONDS)
            finally:
                await self._release_all()

    # --- leases ---------------------------------------------------------------------------------

    async def _read_leases(self) -> list[Lease]:
        assert self._leases is not None
        leases = []
        for index, feed_range in enumerate(self._ranges):
            lease_id = self.config.lease_id(index)
            document: dict[str, Any]
            try:
                document = dict(await self._leases.read_item(lease_id, partition_key=lease_id))
            except exceptions.CosmosResourceNotFoundError:
                document = await self._create_lease(lease_id, index, feed_range)
            if "FeedRange" not in document:
                document = await self._upgrade_lease(document, index, feed_range)
            leases.append(Lease(document))
        return leases

    async def _create_lease(self, lease_id: str, index: int, feed_range: dict[str, Any]) -> dict[str, Any]:
        assert self._leases is not None
        document = {
            "id": lease_id,
            "LeaseToken": str(index),
            "FeedRange": feed_range,
            "ContinuationToken": None,
            "Owner": None,
            "timestamp": 0,
        }
        try:
            created: dict[str, Any] = await self._leases.create_item(document)
            return created
        except exceptions.CosmosResourceExistsError:  # another host created it first
            existing: dict[str, Any] = await self._leases.read_item(lease_id, partition_key=lease_id)
            return existing

    async def _upgrade_lease(
        self, document: dict[str, Any], index: int, feed_range: dict[str, Any]
    ) -> dict[str, Any]:
        """A lease from before feed ranges (one per container): its position does not apply to a range,
        so the range starts as a new lease does (the functions' writes never go backwards on a replay)."""
        assert self._leases is not None
        log.warning(
            "%s: lease %s predates feed ranges; the range starts over from the trigger's start position",
            self.spec.name,
            document["id"],
        )
        upgraded = {**document, "LeaseToken": str(index), "FeedRange": feed_range, "ContinuationToken": None}
        try:
            replaced: dict[str, Any] = await self._leases.replace_item(
                document["id"],
                upgraded,
                etag=document["_etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return replaced
        except exceptions.CosmosAccessConditionFailedError:
            again: dict[str, Any] = await self._leases.read_item(document["id"], partition_key=document["id"])
            return again

    async def _replace(self, lease: Lease, **changes: Any) -> Lease:
        """Change a lease only if nobody changed it since we read it; CosmosAccessConditionFailedError
        otherwise."""
        assert self._leases is not None
        document = {k: v for k, v in lease.document.items() if not k.startswith("_")}
        document.update(changes)
        replaced = await self._leases.replace_item(
            lease.id, document, etag=lease.etag, match_condition=MatchConditions.IfNotModified
        )
        return Lease(replaced)

    async def _balance(self) -> None:
        """Take this host's share of the leases (ceil(leases / live owners)): unowned or expired ones
        first, then, if still short, one from the host holding the most."""
        now = time.time()
        leases = await self._read_leases()
        for lease in leases:  # leases another host took from us (or that we let lapse)
            if lease.id in self._owned and lease.owner != self.owner:
                self._lose(lease.id, f"now owned by {lease.owner}")
        owners: dict[str, list[Lease]] = {}
        for lease in leases:
            if lease.alive(now) or lease.owner == self.owner:
                owners.setdefault(str(lease.owner), []).append(lease)
        owners.setdefault(self.owner, [])
        target = math.ceil(len(leases) / len(owners))
        mine = {lease.id for lease in owners[self.owner]}
        for lease in owners[self.owner]:
            if lease.id not in self._owned:  # ours from before a restart on the same port
                self._start(lease)
        free = [lease for lease in leases if not lease.alive(now) and lease.id not in mine]
        for lease in free[: max(0, target - len(mine))]:
            if await self._take(lease, "it was free" if lease.owner is None else f"{lease.owner}'s expired"):
                mine.add(lease.id)
        if len(mine) < target:
            richest = max((o for o in owners if o != self.owner), key=lambda o: len(owners[o]), default=None)
            if richest is not None and len(owners[richest]) > target:
                await self._take(owners[richest][-1], f"{richest} held more than its share")

    async def _take(self, lease: Lease, why: str) -> bool:
        try:
            taken = await self._replace(lease, Owner=self.owner, timestamp=time.time())
        except exceptions.CosmosAccessConditionFailedError:
            return False  # another host changed it first
        log.info("%s: took lease %s (%s)", self.spec.name, lease.id, why)
        self._start(taken)
        return True

    def _start(self, lease: Lease) -> None:
        owned = _Owned(lease)
        self._owned[lease.id] = owned
        owned.task = asyncio.create_task(self._process(owned), name=f"{self.spec.name} {lease.id}")
        owned.task.add_done_callback(lambda task: self._ended(owned, task))

    def _ended(self, owned: _Owned, task: asyncio.Task[None]) -> None:
        """A range's reader that broke is dropped; the next balancing pass starts it again (the lease
        is still ours)."""
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "%s: reading lease %s broke (%r); starting it again",
            self.spec.name,
            owned.lease.id,
            task.exception(),
        )
        if self._owned.get(owned.lease.id) is owned:
            del self._owned[owned.lease.id]

    def _lose(self, lease_id: str, why: str) -> None:
        self._idle.discard(lease_id)
        owned = self._owned.pop(lease_id, None)
        if owned is None:
            return
        log.info("%s: lease %s lost (%s); this host stops reading its range", self.spec.name, lease_id, why)
        if owned.task is not None and owned.task is not asyncio.current_task():
            owned.task.cancel()

    async def _renew_all(self) -> None:
        for lease_id, owned in list(self._owned.items()):
            try:
                await self._update(owned, timestamp=time.time())
            except LeaseLost as exc:
                self._lose(lease_id, str(exc))

    async def _update(self, owned: _Owned, **changes: Any) -> None:
        """Renew or checkpoint a lease we own; LeaseLost when another host owns it now."""
        async with owned.lock:
            for _ in range(3):
                try:
                    owned.lease = await self._replace(owned.lease, **changes)
                    return
                except exceptions.CosmosAccessConditionFailedError:
                    assert self._leases is not None
                    current = Lease(
                        await self._leases.read_item(owned.lease.id, partition_key=owned.lease.id)
                    )
                    if current.owner != self.owner:
                        raise LeaseLost(f"now owned by {current.owner}") from None
                    owned.lease = current
                except exceptions.CosmosResourceNotFoundError:
                    raise LeaseLost("its lease document was deleted") from None
            raise LeaseLost("it kept changing under this host")

    async def _release_all(self) -> None:
        for lease_id, owned in list(self._owned.items()):
            if owned.task is not None:
                owned.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await owned.task
            with contextlib.suppress(Exception):
                await self._update(owned, Owner=None, timestamp=0)
                log.info("%s: released lease %s", self.spec.name, lease_id)
        self._owned.clear()

    # --- one range ------------------------------------------------------------------------------

    async def _process(self, owned: _Owned) -> None:
        # A client of its own per range: the change feed position after an empty page is read from the
        # client's last response, which no other request may overwrite in between.
        async with self._client() as client:
            monitored = client.get_database_client(self.config.database).get_container_client(
                self.config.container
            )
            await self._process_range(owned, monitored)

    async def _process_range(self, owned: _Owned, monitored: ContainerProxy) -> None:
        continuation = checkpointed = owned.lease.continuation
        feed_range = owned.lease.feed_range
        while self._owned.get(owned.lease.id) is owned:
            try:
                async with asyncio.timeout(READ_DEADLINE_SECONDS):
                    items, next_continuation = await self._read_page(monitored, feed_range, continuation)
            except (AzureError, TimeoutError) as exc:
                raise_if_stopping(exc)
                log.warning(
                    "%s: reading the change feed of %s failed (%s); retrying",
                    self.spec.name,
                    self.config.container,
                    getattr(exc, "status_code", None) or type(exc).__name__,
                )
                await asyncio.sleep(self.config.poll_delay_seconds)
                continue
            if items:
                self._idle.discard(owned.lease.id)
                await self._deliver(items)
            continuation = next_continuation or continuation
            if continuation and continuation != checkpointed:
                try:
                    await self._update(owned, ContinuationToken=continuation, timestamp=time.time())
                    checkpointed = continuation
                except LeaseLost as exc:
                    self._lose(owned.lease.id, str(exc))
                    return
                except AzureError as exc:  # written with the next batch; a crash meanwhile replays it
                    raise_if_stopping(exc)
                    log.warning("%s: checkpoint of %s failed (%s)", self.spec.name, owned.lease.id, exc)
            if not items:
                self._idle.add(owned.lease.id)
                await asyncio.sleep(self.config.poll_delay_seconds)

    def _start_from(self) -> Any:
        """Where a range with no position starts: a point in time, the beginning, or now."""
        if self.config.start_from_time is not None:
            return self.config.start_from_time
        return "Beginning" if self.config.start_from_beginning else "Now"

    async def _read_page(
        self, monitored: ContainerProxy, feed_range: dict[str, Any], continuation: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        if continuation is None:
            feed = monitored.query_items_change_feed(
                feed_range=feed_range, start_time=self._start_from(), max_item_count=self.config.max_items
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
        # the client's last response (this client is this range's alone).
        token = pages.continuation_token or monitored.client_connection.last_response_headers.get("etag")
        return items, str(token) if token else continuation

    async def _deliver(self, items: list[dict[str, Any]]) -> None:
        self.delivered += len(items)
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
