"""Sink outages against the real stack: a Cosmos DB or Event Hubs client that cannot reach its service
(a closed port: the SDK's own connection failure), swapped for the real one when the outage ends.

- Cosmos DB away: every event waits with no attempt spent and no backoff; after the return the relay
  resumes within its probe interval.
- Event Hubs away: projections keep flowing; after the return every event is published, keyed by its
  aggregate, in per-aggregate order, each once.
- Two relays: each event is in the hands of one relay at a time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from azure.cosmos.aio import CosmosClient
from azure.eventhub.aio import EventHubProducerClient

from shared_code.adapters.cosmos import direct_transport, parse_connection_string
from shared_code.adapters.cosmos_writer import CosmosWriter
from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.handlers import EventHubsPublisher, ProjectionHandler
from shared_code.outbox.policy import RelayPolicy
from shared_code.outbox.relay import EventHandler
from shared_code.projections.writes import POSTS
from tests.support.pipeline import (
    Owner,
    People,
    hub_messages,
    production_handlers,
    read_doc,
    relay_with,
    run_until_idle,
)
from tests.support.polling import eventually

if TYPE_CHECKING:
    from devhost.services.eventhubs import EventHubsStandIn
    from shared_code.app_context import AppContext

POLICY = RelayPolicy(batch_size=50, claim_lease_seconds=30, max_attempts=3, backoff_base_seconds=60.0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_cosmos(ctx: AppContext) -> CosmosClient:
    assert ctx.settings.cosmos_connection_string is not None
    parts = parse_connection_string(ctx.settings.cosmos_connection_string.get_secret_value())
    return CosmosClient(
        f"http://127.0.0.1:{closed_port()}/",
        credential=parts["AccountKey"],
        transport=direct_transport(),
        connection_retry_policy=None,
        retry_total=0,
    )


def unreachable_eventhubs(ctx: AppContext) -> EventHubProducerClient:
    assert ctx.settings.eventhubs_connection_string is not None
    live = ctx.settings.eventhubs_connection_string.get_secret_value()
    parts = dict(p.split("=", 1) for p in live.split(";") if "=" in p)
    parts["Endpoint"] = f"sb://127.0.0.1:{closed_port()}"
    return EventHubProducerClient.from_connection_string(
        ";".join(f"{k}={v}" for k, v in parts.items()),
        eventhub_name=ctx.settings.eventhub_name,
        retry_total=0,
    )


def swap(handlers: list[EventHandler], name: str, replacement: EventHandler) -> list[EventHandler]:
    assert any(h.name == name for h in handlers)
    return [replacement if h.name == name else h for h in handlers]


async def busy(people: People) -> list[str]:
    await people.join("alice", "bob")
    posts = [await people.post("alice", f"a{i}") for i in range(3)]
    await people.edit("alice", posts[0], "a0 edited")
    await people.edit("alice", posts[0], "a0 edited twice")
    await people.edge("PUT", "bob", "follow", "alice")
    return posts


async def test_a_cosmos_outage_spends_no_attempts_and_the_relay_resumes_when_it_returns(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    posts = await busy(people)
    dead_client = unreachable_cosmos(app_context)
    try:
        away = ProjectionHandler(CosmosWriter(dead_client.get_database_client("chorus")), 8)
        relay = relay_with(app_context, POLICY, swap(production_handlers(app_context), away.name, away))
        first = await relay.run_once()
        assert first.claimed > 0 and first.released == first.failed > 0 and first.dead == 0
        assert not relay.projections.breaker.delivers
        for _ in range(3):  # the outage goes on: probes, no claims, nothing spent
            await relay.run_once()
        rows = await owner.outbox()
        assert {(r.status, r.attempts, r.backing_off) for r in rows} == {("pending", 0, False)}
        assert any("waiting for projections to answer" in (r.last_error or "") for r in rows)

        # Cosmos DB is back (the real writer again): within a probe interval everything flows
        away._writer = CosmosWriter(app_context.cosmos_db)
        started = time.monotonic()

        async def left() -> int:
            await run_until_idle(relay)
            return await owner.unpublished()

        await eventually(left, lambda n: n == 0, timeout=10, interval=0.1, what="every event published")
        assert time.monotonic() - started < 10
        doc = await read_doc(app_context, POSTS, posts[0], posts[0])
        assert doc is not None and (doc["version"], doc["content"]) == (3, "a0 edited twice")
        assert {r.attempts for r in await owner.outbox()} == {0}
    finally:
        await dead_client.close()


async def test_an_event_hubs_outage_holds_back_only_publishing_which_catches_up_in_order(
    app_context: AppContext, people: People, owner: Owner, eventhubs_standin: EventHubsStandIn
) -> None:
    posts = await busy(people)
    dead_producer = unreachable_eventhubs(app_context)
    publisher = EventHubsPublisher(dead_producer, 8)
    relay = relay_with(app_context, POLICY, swap(production_handlers(app_context), publisher.name, publisher))
    try:
        await run_until_idle(relay)
        assert not relay.publishing.breaker.delivers
        # projections flowed: the post at its latest version, in Cosmos DB
        doc = await read_doc(app_context, POSTS, posts[0], posts[0])
        assert doc is not None and doc["version"] == 3
        projected = await owner.rows(
            "SELECT count(*) FILTER (WHERE projected_at IS NULL), count(*) FROM outbox"
        )
        assert projected[0][0] == 0
        assert {(r.status, r.attempts) for r in await owner.outbox()} == {("pending", 0)}

        # more writes while Event Hubs is still away: projected too
        await people.edit("alice", posts[1], "a1 edited")
        await run_until_idle(relay)
        doc = await read_doc(app_context, POSTS, posts[1], posts[1])
        assert doc is not None and doc["content"] == "a1 edited"

        # Event Hubs is back
        publisher._producer = app_context.eventhubs
        started = time.monotonic()

        async def left() -> int:
            await run_until_idle(relay)
            return await owner.unpublished()

        await eventually(left, lambda n: n == 0, timeout=10, interval=0.1, what="every event published")
        assert time.monotonic() - started < 10
    finally:
        await dead_producer.close()

    events = {str(e.event_id): e for e in await owner.stored_events()}
    messages = hub_messages(eventhubs_standin, app_context.settings.eventhub_name, events)
    assert sorted(m["messageId"] for m in messages) == sorted(events)  # each once
    order: dict[str, list[int]] = {}
    for message in messages:
        event = events[message["messageId"]]
        assert message["partitionKey"] == str(event.aggregate_id)
        order.setdefault(str(event.aggregate_id), []).append(event.aggregate_version)
    assert all(v == sorted(v) for v in order.values()), order
    assert max(len(v) for v in order.values()) >= 3


class Exclusive:
    """Records which relay holds which event while its handler runs; fails the test on an overlap."""

    def __init__(self) -> None:
        self.holding: dict[int, str] = {}
        self.overlaps: list[tuple[int, str, str]] = []
        self.handled: list[int] = []

    def handler(self, relay: str) -> EventHandler:
        exclusive = self

        class Hold:
            name = f"hold-{relay}"

            async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
                for e in events:
                    if e.id in exclusive.holding:
                        exclusive.overlaps.append((e.id, exclusive.holding[e.id], relay))
                    exclusive.holding[e.id] = relay
                await asyncio.sleep(0.01)  # hold them across the other relay's claims
                for e in events:
                    exclusive.holding.pop(e.id, None)
                    exclusive.handled.append(e.id)
                return {}

        return Hold()


async def test_two_relays_never_hold_the_same_event_at_once(
    app_context: AppContext, people: People, owner: Owner
) -> None:
    await people.join("ann", "ben", "cat")
    for name in ("ann", "ben", "cat"):
        for i in range(6):
            await people.post(name, f"{name} {i}")
    exclusive = Exclusive()
    policy = RelayPolicy(batch_size=4, claim_lease_seconds=30, max_attempts=3, backoff_base_seconds=0.05)
    relays = [
        relay_with(app_context, policy, [*production_handlers(app_context), exclusive.handler(n)])
        for n in ("a", "b")
    ]

    async def drain(relay: object) -> None:
        async def left() -> int:
            await run_until_idle(relay)  # type: ignore[arg-type]
            return await owner.unpublished()

        await eventually(left, lambda n: n == 0, timeout=30, interval=0.02, what="outbox drained")

    await asyncio.gather(*(drain(r) for r in relays))
    assert exclusive.overlaps == []
    assert sorted(exclusive.handled) == sorted(r.id for r in await owner.outbox())  # each once
