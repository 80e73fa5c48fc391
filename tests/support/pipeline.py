"""What the relay and change-feed tests share: people, owners' views of the stores, and running the
pipeline until it is idle."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.cosmos import exceptions

from shared_code.bootstrap import outbox_relay
from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.policy import RelayPolicy
from shared_code.outbox.relay import EventHandler, OutboxRelay
from shared_code.outbox.store import OutboxStore
from shared_code.projections.writes import COUNTERS, FEED, NOTIFICATIONS, POSTS, PROFILES, REACTIONS
from tests.support.api import ApiClient
from tests.support.onboarding import onboard
from tests.support.outbox import OwnerDb

if TYPE_CHECKING:
    from devhost.services.eventhubs import EventHubsStandIn
    from shared_code.app_context import AppContext


PROJECTION_CONTAINERS = (POSTS, FEED, REACTIONS, COUNTERS, NOTIFICATIONS, PROFILES)


# What Cosmos adds to every item; two states are compared without them.
SYSTEM_FIELDS = frozenset({"_rid", "_self", "_etag", "_attachments", "_ts", "_lsn"})


# Backoff and leases short enough for a test to wait them out.
FAST = RelayPolicy(batch_size=50, claim_lease_seconds=0.5, max_attempts=3, backoff_base_seconds=0.05)


_EVENT_COLUMNS = (
    "id, event_id, aggregate_type, aggregate_id, aggregate_version, event_type, payload, "
    "metadata, created_at, attempts"
)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_type: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    status: str
    attempts: int
    last_error: str | None
    claimed: bool
    backing_off: bool


class Owner(OwnerDb):
    """The test database as its owner (the one owner connection, tests/support/outbox.py), with what the
    relay's tests read: outbox rows with their claim state, stored events, the moderators' mirror."""

    async def outbox(self) -> list[OutboxRow]:
        rows = await self.rows(
            """SELECT id, event_type, aggregate_type, aggregate_id::text, aggregate_version, status, attempts,
                      last_error, coalesce(claimed_until > now(), false), next_attempt_at > now()
               FROM outbox ORDER BY id"""
        )
        return [OutboxRow(*r) for r in rows]

    async def by_id(self) -> dict[int, OutboxRow]:
        return {r.id: r for r in await self.outbox()}

    async def stored_events(
        self, where: str = "true", params: Sequence[Any] | None = None
    ) -> list[StoredEvent]:
        """Outbox rows as the relay hands them to handlers (`where` is written by tests, never input)."""
        rows = await self.rows(f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE {where} ORDER BY id", params)
        return [StoredEvent(*r) for r in rows]

    async def unpublished(self) -> int:
        return int(await self.scalar("SELECT count(*) FROM outbox WHERE status <> 'published'"))

    async def redeliver(self, ids: Iterable[int]) -> None:
        """Make published events pending again, as if their outcome had never been recorded."""
        await self.conn.execute(
            """UPDATE outbox SET status = 'pending', published_at = NULL, attempts = 0,
                                 next_attempt_at = now(), claimed_until = NULL
               WHERE id = ANY(%s)""",
            (list(ids),),
        )

    async def admin_mirror(self) -> dict[str, tuple[Any, ...]]:
        rows = await self.rows(
            "SELECT post_id::text, author_id::text, content, status, deleted, last_action, version "
            "FROM posts_admin_mirror"
        )
        return {r[0]: r[1:] for r in rows}


def without_system_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in SYSTEM_FIELDS}


async def all_docs(ctx: AppContext, container: str) -> dict[str, dict[str, Any]]:
    """Every item of a container by id (the test's own database: small)."""
    client = ctx.cosmos_db.get_container_client(container)
    return {doc["id"]: doc async for doc in client.query_items("SELECT * FROM c")}


async def read_doc(
    ctx: AppContext, container: str, item_id: str, partition_key: str
) -> dict[str, Any] | None:
    client = ctx.cosmos_db.get_container_client(container)
    try:
        doc: dict[str, Any] = await client.read_item(item_id, partition_key)
    except exceptions.CosmosResourceNotFoundError:
        return None
    return doc


async def snapshot(
    ctx: AppContext, containers: Iterable[str] = PROJECTION_CONTAINERS
) -> dict[str, dict[str, dict[str, Any]]]:
    """The projections' content, system fields left out: what two states are compared by."""
    return {
        name: {i: without_system_fields(d) for i, d in (await all_docs(ctx, name)).items()}
        for name in containers
    }


def production_handlers(ctx: AppContext) -> list[EventHandler]:
    """The handlers the app's relay runs, as shared_code.bootstrap wires them (the single source of that wiring)."""
    return list(outbox_relay(ctx)._handlers)


def relay_with(
    ctx: AppContext, policy: RelayPolicy = FAST, handlers: Sequence[EventHandler] | None = None
) -> OutboxRelay:
    return OutboxRelay(
        OutboxStore(ctx.pg_pool, listen_url=ctx.settings.postgres_url.get_secret_value()),
        production_handlers(ctx) if handlers is None else handlers,
        policy,
    )


async def run_until_idle(relay: OutboxRelay, max_rounds: int = 200) -> int:
    """Rounds until one claims nothing (everything published, backing off, dead or claimed elsewhere).
    Returns how many events were published."""
    published = 0
    for _ in range(max_rounds):
        report = await relay.run_once()
        published += report.published
        if not report.claimed:
            return published
    raise AssertionError(f"the relay was still claiming events after {max_rounds} rounds")


@dataclass
class Recorder:
    """An EventHandler that only records which events it was given, per call (to observe the relay)."""

    name: str = "recorder"
    batches: list[list[int]] = field(default_factory=list)

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        self.batches.append([e.id for e in events])
        return {}

    @property
    def seen(self) -> list[int]:
        return [i for batch in self.batches for i in batch]


class InjectedCosmosFailure(exceptions.CosmosHttpResponseError):
    def __init__(self, event: StoredEvent) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            status_code=503, message=f"injected: Cosmos unavailable for outbox event {event.id}"
        )


class FailingFor:
    """Wraps a handler: the chosen events fail (as if Cosmos were unreachable for them) for their first
    `times` deliveries, or as long as `healed` is False; the rest of the batch goes to the real handler."""

    def __init__(self, inner: EventHandler, outbox_ids: Iterable[int], times: int | None = None) -> None:
        self.inner = inner
        self.name = f"failing-{inner.name}"
        self.outbox_ids = set(outbox_ids)
        self.times = times
        self.healed = False
        self.failures: Counter[int] = Counter()

    def _fails(self, event: StoredEvent) -> bool:
        if event.id not in self.outbox_ids or self.healed:
            return False
        return self.times is None or self.failures[event.id] < self.times

    async def handle(self, events: Sequence[StoredEvent]) -> Mapping[int, BaseException]:
        failing = [e for e in events if self._fails(e)]
        self.failures.update(e.id for e in failing)
        results = dict(await self.inner.handle([e for e in events if e not in failing]))
        results.update({e.id: InjectedCosmosFailure(e) for e in failing})
        return results


def hub_messages(standin: EventHubsStandIn, hub: str, event_ids: Iterable[Any]) -> list[dict[str, Any]]:
    """What the stand-in received for these events (by message id), in arrival order."""
    wanted = {str(e) for e in event_ids}
    return [m for m in standin.received(hub) if m.get("messageId") in wanted]


class People:
    """Setup steps through the real HTTP functions, each asserting that it worked."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.ids: dict[str, str] = {}

    async def ok(self, method: str, path: str, who: str, body: Any = None) -> Any:
        r = await self.api.call(method, path, subject=who, json_body=body)
        assert r.status in (200, 201, 202, 204), (method, path, who, r)
        return r.json

    async def join(self, *names: str) -> list[str]:
        for name in names:
            self.ids[name] = (await onboard(self.api, name))["id"]
        return [self.ids[n] for n in names]

    async def post(self, who: str, content: str) -> str:
        return str((await self.ok("POST", "/api/posts", who, {"content": content}))["id"])

    async def edit(self, who: str, post_id: str, content: str) -> None:
        await self.ok("PATCH", f"/api/posts/{post_id}", who, {"content": content})

    async def react(self, who: str, post_id: str, reaction: str | None) -> None:
        if reaction is None:
            await self.ok("DELETE", f"/api/posts/{post_id}/reactions", who)
        else:
            await self.ok("PUT", f"/api/posts/{post_id}/reactions", who, {"type": reaction})

    async def comment(self, who: str, post_id: str, content: str = "nice") -> str:
        return str((await self.ok("POST", f"/api/posts/{post_id}/comments", who, {"content": content}))["id"])

    async def edge(self, method: str, who: str, kind: str, whom: str) -> None:
        """follow / block / mute (PUT) or their undoing (DELETE)."""
        await self.ok(method, f"/api/users/{self.ids[whom]}/{kind}", who)


async def assert_projections_match_postgres(ctx: AppContext, owner: Owner) -> None:
    """Every projection equals what PostgreSQL says, once the relay and both change feeds have caught up
    (the caller runs them): profiles, posts, reactions, counters, notifications, feeds, the admin mirror."""
    profiles = await all_docs(ctx, PROFILES)
    users = await owner.rows(
        """SELECT u.id::text, u.username, p.display_name, p.bio, u.version, u.deleted_at IS NOT NULL
           FROM users u JOIN profiles p ON p.user_id = u.id"""
    )
    assert set(profiles) == {u[0] for u in users}
    for user_id, username, display_name, bio, version, deleted in users:
        doc = profiles[user_id]
        assert (doc["version"], doc["deleted"]) == (version, deleted), user_id
        if not deleted:
            assert (doc["username"], doc["displayName"], doc["bio"]) == (username, display_name, bio), user_id

    posts = await all_docs(ctx, POSTS)
    rows = await owner.rows(
        "SELECT id::text, author_id::text, content, version, deleted_at IS NOT NULL FROM posts"
    )
    assert set(posts) == {r[0] for r in rows}
    for post_id, author_id, content, version, deleted in rows:
        doc = posts[post_id]
        assert (doc["authorId"], doc["version"], doc["deleted"]) == (author_id, version, deleted), post_id
        assert doc["content"] == ("" if deleted else content), post_id
    # the moderators' mirror: (author, content, deleted, version); a deleted post keeps its content there
    mirror = await owner.admin_mirror()
    assert {k: (m[0], m[1], m[3], m[5]) for k, m in mirror.items()} == {
        r[0]: (r[1], r[2], r[4], r[3]) for r in rows
    }

    reactions = await all_docs(ctx, REACTIONS)
    rows = await owner.rows(
        """SELECT r.post_id::text, r.user_id::text, r.type, r.version, r.deleted_at IS NOT NULL,
                  p.author_id::text
           FROM reactions r JOIN posts p ON p.id = r.post_id"""
    )
    assert set(reactions) == {f"{r[0]}:{r[1]}" for r in rows}
    for post_id, user_id, reaction_type, version, deleted, _ in rows:
        doc = reactions[f"{post_id}:{user_id}"]
        assert (doc["type"], doc["version"], doc["deleted"]) == (reaction_type, version, deleted)

    counters = await all_docs(ctx, COUNTERS)
    for user_id, followers, following, posts_count, version in await owner.rows(
        "SELECT user_id::text, followers, following, posts, version FROM user_counts WHERE version > 1"
    ):
        doc = counters[f"{user_id}:counts"]
        assert (doc["followers"], doc["following"], doc["posts"], doc["version"]) == (
            followers,
            following,
            posts_count,
            version,
        ), user_id
    for post_id, counts, comments, version in await owner.rows(
        "SELECT post_id::text, reactions, comments, version FROM post_counts WHERE version > 1"
    ):
        doc = counters[f"{post_id}:counts"]
        assert ({k: v for k, v in doc["reactions"].items() if v}, doc["comments"], doc["version"]) == (
            {k: v for k, v in counts.items() if v},
            comments,
            version,
        ), post_id

    # every follow ever made notified its followee; every comment on someone else's post its author; every
    # live reaction to someone else's post its author (the change feed saw only the latest documents)
    expected_notes = {
        f"follow:{r[0]}:{r[1]}"
        for r in await owner.rows("SELECT follower_id::text, followee_id::text FROM follows")
    }
    expected_notes |= {
        f"comment:{r[0]}"
        for r in await owner.rows(
            """SELECT c.id::text FROM comments c JOIN posts p ON p.id = c.post_id
           WHERE c.author_id <> p.author_id"""
        )
    }
    expected_notes |= {f"reaction:{r[0]}:{r[1]}" for r in rows if not r[4] and r[1] != r[5]}
    assert expected_notes, "nothing to compare"
    assert set(await all_docs(ctx, NOTIFICATIONS)) == expected_notes

    # feeds: one's own visible posts and those of everyone one follows and has not muted
    expected_feed = {
        f"{r[0]}:{r[1]}"
        for r in await owner.rows(
            """SELECT u.id::text, p.id::text
           FROM users u JOIN posts p ON p.deleted_at IS NULL AND p.status = 'visible'
           WHERE p.author_id = u.id
              OR (EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = u.id AND f.followee_id = p.author_id
                            AND f.deleted_at IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = u.id AND m.muted_id = p.author_id
                                    AND m.deleted_at IS NULL))"""
        )
    }
    assert expected_feed, "nothing to compare"
    assert set(await all_docs(ctx, FEED)) == expected_feed
