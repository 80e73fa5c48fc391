"""The relay's handlers: Cosmos projections, feed maintenance, the moderators' mirror, Event Hubs.

Each takes a batch (at most one event per aggregate, see relay.py) and reports
failures per event; an event is published only when every handler succeeded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient
from psycopg_pool import AsyncConnectionPool

from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.db.unit_of_work import system_connection
from shared_code.domain.events import published_payload
from shared_code.domain.stored_event import StoredEvent
from shared_code.projections.documents import project
from shared_code.projections.writes import CosmosWrite

log = logging.getLogger("chorus.outbox")


async def _each(
    events: Sequence[StoredEvent],
    semaphore: asyncio.Semaphore,
    work: Callable[[StoredEvent], Awaitable[None]],
) -> dict[int, BaseException]:
    """Run `work` per event, at most as many at once as `semaphore` allows: the handler's one semaphore,
    shared by every batch the relay has in flight, so the sink sees the handler's concurrency however
    many batches overlap. Collects failures by outbox id."""
    failures: dict[int, BaseException] = {}

    async def run(event: StoredEvent) -> None:
        async with semaphore:
            try:
                await work(event)
            except Exception as exc:
                failures[event.id] = exc

    await asyncio.gather(*(run(event) for event in events))
    return failures


class NotificationAdmission(Protocol):
    """What the projections ask before writing notifications (services.notification_settings.NotificationGate,
    given by shared_code.bootstrap): the writes without the notifications not to be written."""

    async def admit(self, writes: Sequence[CosmosWrite]) -> list[CosmosWrite]: ...


class ProjectionHandler:
    name = "cosmos-projections"

    def __init__(
        self, writer: CosmosWriter, concurrency: int, notifications: NotificationAdmission | None = None
    ) -> None:
        self._writer = writer
        self._slots = asyncio.Semaphore(concurrency)
        self._notifications = notifications

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        return await _each(events, self._slots, self._apply)

    async def _apply(self, event: StoredEvent) -> None:
        writes = project(event)
        if self._notifications is not None:
            writes = await self._notifications.admit(writes)
        await self._writer.apply_all(writes)

    async def probe(self) -> None:
        """Cosmos DB answers at all (the relay's breaker asks, see breaker.py)."""
        await self._writer.probe()


class FeedMaintenance(Protocol):
    """What the handler needs of the feeds (services.feeds.FeedService, given by shared_code.bootstrap):
    the outbox runs below the services and never imports them."""

    async def sees(self, recipient_id: str, author_id: str) -> bool: ...

    async def backfill(self, recipient_id: str, author_id: str) -> int: ...

    async def remove_author(self, recipient_id: str, author_id: str) -> int: ...

    async def fan_out_repost(self, post_id: str, reposter_id: str) -> int: ...

    async def retract_repost(self, post_id: str, reposter_id: str) -> int: ...


class FeedMaintenanceHandler:
    """Follows back-fill the follower's feed; unfollows, blocks and mutes take posts out of it; reposts
    put the original into the reposter's followers' feeds and undoing one takes it out again.
    (Posts themselves reach feeds through the posts_v2 change feed.)"""

    name = "feed-maintenance"

    def __init__(self, feeds: FeedMaintenance, concurrency: int) -> None:
        self._feeds = feeds
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        relevant = [e for e in events if e.event_type in _FEED_EFFECTS]
        return await _each(relevant, self._slots, self._apply)

    async def _apply(self, event: StoredEvent) -> None:
        p = event.payload
        effect = _FEED_EFFECTS[event.event_type]
        if effect == "backfill":
            follower, followee = _pair(event)
            await self._feeds.backfill(follower, followee)
        elif effect == "remove":
            follower, followee = _pair(event)
            await self._remove_unless_seen(follower, followee)
        elif effect == "remove-both":
            a, b = str(p["blockerId"]), str(p["blockedId"])
            await asyncio.gather(self._remove_unless_seen(a, b), self._remove_unless_seen(b, a))
        elif effect == "repost":
            await self._feeds.fan_out_repost(str(p["postId"]), str(p["userId"]))
        elif effect == "unrepost":
            await self._feeds.retract_repost(str(p["postId"]), str(p["userId"]))

    async def _remove_unless_seen(self, recipient: str, author: str) -> None:
        # A replayed or late removal (e.g. mute.created after mute.deleted) must not undo the newer state.
        if not await self._feeds.sees(recipient, author):
            await self._feeds.remove_author(recipient, author)


def _pair(event: StoredEvent) -> tuple[str, str]:
    """(recipient, author) of a follow or mute event."""
    p = event.payload
    if event.aggregate_type == "follow":
        return str(p["followerId"]), str(p["followeeId"])
    return str(p["muterId"]), str(p["mutedId"])


_FEED_EFFECTS = {
    "follow.created": "backfill",
    "follow.deleted": "remove",
    "mute.created": "remove",
    "mute.deleted": "backfill",
    "block.created": "remove-both",
    "repost.created": "repost",
    "repost.deleted": "unrepost",
}


class FollowRequestApprovals(Protocol):
    """What the follow-request handler needs (services.social.PendingApprovals, given by
    shared_code.bootstrap)."""

    async def approve_batch(self, user_id: UUID) -> None: ...


class FollowRequestHandler:
    """An account that turned public with more pending follow requests than its request approved:
    each event (the visibility change, then each batch's progress) approves one more batch."""

    name = "follow-request-approvals"

    def __init__(self, approvals: FollowRequestApprovals, concurrency: int) -> None:
        self._approvals = approvals
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        batches = [
            e
            for e in events
            if e.event_type in ("profile.visibility_changed", "profile.follow_requests_approval_progressed")
            and e.payload.get("visibility", "public") == "public"
            and int(e.payload.get("pendingRequests", 0)) > 0
        ]
        return await _each(batches, self._slots, lambda e: self._approvals.approve_batch(e.aggregate_id))


class AccountErasure(Protocol):
    """What the erasure handler needs (services.erasure.ErasureService, given by shared_code.bootstrap)."""

    async def run_step(self, user_id: UUID, event_version: int, outbox_id: int) -> None: ...


class ErasureHandler:
    """Account erasure's batches (docs/privacy.md): each event of the chain does one batch and records the
    next event in the same transaction; a replayed event finds its batch done and does nothing."""

    name = "account-erasure"
    _STEPS = ("account.erasure_requested", "account.erasure_progressed")

    def __init__(self, erasure: AccountErasure, concurrency: int) -> None:
        self._erasure = erasure
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        steps = [e for e in events if e.event_type in self._STEPS]
        return await _each(
            steps,
            self._slots,
            lambda e: self._erasure.run_step(e.aggregate_id, e.aggregate_version, e.id),
        )


class AccountExport(Protocol):
    """What the export handler needs (services.export.ExportService, given by shared_code.bootstrap)."""

    async def write(self, export_id: UUID, user_id: UUID) -> None: ...


class ExportHandler:
    """Writes an account export too large to answer inline to a blob (docs/privacy.md)."""

    name = "account-export"

    def __init__(self, exports: AccountExport, concurrency: int) -> None:
        self._exports = exports
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        requested = [e for e in events if e.event_type == "account.export_requested"]
        return await _each(
            requested,
            self._slots,
            lambda e: self._exports.write(UUID(str(e.payload["exportId"])), UUID(str(e.payload["userId"]))),
        )


class AdminMirrorHandler:
    """Keeps `posts_admin_mirror` (what moderators see of every post) in step with post events."""

    name = "admin-mirror"

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        posts = [e for e in events if e.aggregate_type == "post"]
        flags = [e for e in events if e.event_type == "flag.created"]
        failures = await self._mirror_posts(posts) if posts else {}
        touched = {str(e.payload["postId"]) for e in posts + flags if e.id not in failures}
        if touched:
            try:
                await self._refresh_open_flags(sorted(touched))
            except Exception as exc:
                failures.update({e.id: exc for e in posts + flags if e.id not in failures})
        return failures

    async def _mirror_posts(self, posts: list[StoredEvent]) -> dict[int, BaseException]:
        rows = []
        for event in posts:
            p = event.payload
            author = p.get("author") or {}
            rows.append(
                (
                    p["postId"],
                    author.get("userId") or p.get("authorId"),
                    p.get("content", ""),
                    p.get("status", "visible"),
                    event.event_type == "post.deleted",
                    p.get("action") or event.event_type,
                    event.aggregate_version,
                )
            )
        try:
            await self._write(rows)
        except Exception as exc:
            if len(rows) == 1:
                return {posts[0].id: exc}
            # One bad row fails the statement for the whole batch: write them one at a time, so that only
            # the bad ones fail (and back off, or die) and the rest of the batch is published.
            failures: dict[int, BaseException] = {}
            for event, row in zip(posts, rows, strict=True):
                try:
                    await self._write([row])
                except Exception as row_exc:
                    failures[event.id] = row_exc
            return failures
        return {}

    async def _refresh_open_flags(self, post_ids: list[str]) -> None:
        """Open flags counted from the canonical flags, so the order flag and post events arrive in
        does not matter."""
        async with system_connection(self._pool) as conn, conn.transaction():
            await conn.execute("SELECT set_config('chorus.role', 'system', true)")
            await conn.execute(
                """UPDATE posts_admin_mirror m SET open_flags = (
                       SELECT count(*) FROM moderation_flags f WHERE f.post_id = m.post_id AND f.status = 'open')
                   WHERE m.post_id = ANY(%s::uuid[])""",
                (post_ids,),
            )

    async def _write(self, rows: list[tuple[Any, ...]]) -> None:
        async with system_connection(self._pool) as conn, conn.transaction():
            await conn.execute("SELECT set_config('chorus.role', 'system', true)")
            async with conn.cursor() as cur:
                # content/status are kept as they were when an event carries none (a deletion).
                await cur.executemany(
                    """INSERT INTO posts_admin_mirror (post_id, author_id, content, status, deleted,
                                                       last_action, version, updated_at)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, now())
                       ON CONFLICT (post_id) DO UPDATE SET
                           content = CASE WHEN EXCLUDED.deleted THEN posts_admin_mirror.content
                                          ELSE EXCLUDED.content END,
                           status = CASE WHEN EXCLUDED.deleted THEN posts_admin_mirror.status
                                         ELSE EXCLUDED.status END,
                           deleted = EXCLUDED.deleted,
                           last_action = EXCLUDED.last_action, version = EXCLUDED.version, updated_at = now()
                       WHERE posts_admin_mirror.version < EXCLUDED.version""",
                    rows,
                )


class EventHubsPublisher:
    """Every event to one hub, partition key = aggregate id, body = the envelope.

    A batch holds events of one partition key only, so events are grouped by
    aggregate and the groups sent concurrently; a failed send fails its events.
    (Batches per partition, with each event's key as its annotation, cut the sends from one per
    aggregate to one per partition, but need a link per partition: opening four against the local
    stand-in took 2.6 s idle and missed the 5 s publish deadline under load, charging whole
    batches. docs/reliability.md says what it would take.)
    """

    name = "event-hubs"
    # Runs after the internal handlers, for the events they all took (see OutboxRelay._handle).
    publishes = True

    def __init__(self, producer: EventHubProducerClient | None, concurrency: int) -> None:
        self._producer = producer
        # One semaphore for every batch in flight: the stream overlaps batches, the sends stay bounded.
        self._slots = asyncio.Semaphore(concurrency)

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        if self._producer is None:
            return {}  # publishing is off; start-up and health say so
        groups: dict[str, list[StoredEvent]] = defaultdict(list)
        for event in events:
            groups[str(event.aggregate_id)].append(event)
        failures: dict[int, BaseException] = {}

        async def send(key: str, group: list[StoredEvent]) -> None:
            async with self._slots:
                try:
                    await self._send(key, group)
                except Exception as exc:
                    failures.update({event.id: exc for event in group})

        await asyncio.gather(*(send(key, group) for key, group in groups.items()))
        return failures

    async def probe(self) -> None:
        """Event Hubs answers at all (the relay's breaker asks, see breaker.py)."""
        if self._producer is not None:
            await self._producer.get_eventhub_properties()

    async def _send(self, partition_key: str, group: list[StoredEvent]) -> None:
        assert self._producer is not None
        batch = await self._producer.create_batch(partition_key=partition_key)
        for event in group:
            envelope = event.envelope()
            envelope["payload"] = published_payload(event.event_type, event.payload)
            data = EventData(json.dumps(envelope, separators=(",", ":")))
            data.content_type = "application/json"
            data.message_id = str(event.event_id)
            data.properties = _properties(event)
            batch.add(data)  # a handful of small events: always fits
        await self._producer.send_batch(batch)


def _properties(event: StoredEvent) -> dict[str | bytes, Any]:
    properties: dict[str | bytes, Any] = {
        "eventType": event.event_type,
        "aggregateType": event.aggregate_type,
        "aggregateVersion": event.aggregate_version,
    }
    if event.correlation_id:
        properties["correlationId"] = event.correlation_id
    if event.metadata.get("traceparent"):
        properties["traceparent"] = str(event.metadata["traceparent"])
    return properties
