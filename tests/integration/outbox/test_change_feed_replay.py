"""A full change-feed replay against the real emulator: the app's two change-feed functions hosted by
the local host (devhost/host), their leases wiped, the host started again: it reads both change feeds
from the beginning and hands every document to the functions once more. Nothing changes: no deleted,
hidden or unfollowed post comes back, no edit is undone, no notification doubles, counters stay exact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devhost.host.server import FunctionHost
from devhost.services.process import free_port
from devhost.settings_file import PROJECT_DIR
from shared_code.bootstrap import outbox_relay
from shared_code.projections.writes import COUNTERS, FEED, NOTIFICATIONS, POSTS, REACTIONS
from tests.integration.outbox.test_relay_concurrency import busy_graph
from tests.support.pipeline import (
    Owner,
    People,
    all_docs,
    run_until_idle,
    snapshot,
)
from tests.support.polling import eventually

if TYPE_CHECKING:
    from shared_code.app_context import AppContext

CHANGE_FEED_FUNCTIONS = {"fan_out_posts", "count_reactions"}
SETTLE_SECONDS = 60


@pytest.fixture
def host_factory(
    app_context: AppContext,
    app_settings_values: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Callable[[], Awaitable[FunctionHost]]:
    """Starts the app's change-feed functions in the local host, against this test's databases (the
    functions use this test's app context: the host runs them in this process)."""
    for name, value in app_settings_values.items():
        monkeypatch.setenv(name, value)

    async def start() -> FunctionHost:
        host = FunctionHost(PROJECT_DIR, tmp_path, port=free_port(), only=CHANGE_FEED_FUNCTIONS)
        await host.start()
        return host

    return start


@pytest.fixture
async def hosts() -> AsyncIterator[list[FunctionHost]]:
    started: list[FunctionHost] = []
    yield started
    for host in started:
        await host.stop()


async def expected_feed(owner: Owner) -> set[str]:
    """Feed item ids PostgreSQL implies: one's own visible posts and those of everyone one follows and
    has not muted."""
    rows = await owner.rows(
        """SELECT u.id::text || ':' || p.id::text
           FROM users u JOIN posts p ON p.deleted_at IS NULL AND p.status = 'visible'
           WHERE p.author_id = u.id
              OR (EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = u.id AND f.followee_id = p.author_id
                            AND f.deleted_at IS NULL)
                  AND NOT EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = u.id AND m.muted_id = p.author_id
                                    AND m.deleted_at IS NULL))"""
    )
    return {r[0] for r in rows}


async def settled(host: FunctionHost, ctx: AppContext, owner: Owner) -> None:
    """The relay has nothing left, both change feeds have read everything, and the feeds are what
    PostgreSQL implies. (Notifications are compared before and after, not with PostgreSQL: a reaction
    removed after the change feed saw it keeps the notification it caused.)"""

    async def check() -> str | None:
        await run_until_idle(outbox_relay(ctx))
        if await owner.unpublished():
            return "the outbox is not drained"
        if not host.change_feed_caught_up():
            return "change feeds still reading"
        feed, expected = set(await all_docs(ctx, FEED)), await expected_feed(owner)
        if feed != expected:
            return f"feeds differ: missing {expected - feed}, extra {feed - expected}"
        return None

    await eventually(check, lambda problem: problem is None, timeout=SETTLE_SECONDS, interval=0.2)


async def test_a_wiped_lease_container_replays_both_change_feeds_and_changes_nothing(
    app_context: AppContext,
    people: People,
    owner: Owner,
    host_factory: Callable[[], Awaitable[FunctionHost]],
    hosts: list[FunctionHost],
) -> None:
    await busy_graph(people)  # follows, posts, edits, reactions, comments, an unfollow, a mute, a deletion
    await people.join("moderator")
    hidden = await people.post("ann", "soon hidden")
    await people.react("ben", hidden, "like")
    await people.react("cat", hidden, "love")
    await people.react("cat", hidden, None)  # a removed reaction: its counters went back down
    host = await host_factory()
    hosts.append(host)
    await settled(host, app_context, owner)
    r = await people.api.call(
        "POST",
        f"/api/moderation/posts/{hidden}/decision",
        subject="moderator",
        role="moderator",
        json_body={"action": "hide", "reason": "spam"},
    )
    assert r.status == 200, r
    await settled(host, app_context, owner)
    before = await snapshot(app_context, [FEED, COUNTERS, NOTIFICATIONS])
    assert not any(item["postId"] == hidden for item in before[FEED].values())
    await host.stop()
    hosts.remove(host)

    # the leases are lost: the next host reads both change feeds from the beginning
    leases = app_context.cosmos_db.get_container_client("leases")
    wiped = [doc["id"] async for doc in leases.query_items("SELECT c.id FROM c")]
    assert wiped, "the first host kept leases"
    for lease_id in wiped:
        await leases.delete_item(lease_id, partition_key=lease_id)

    again = await host_factory()
    hosts.append(again)
    documents = {name: len(await all_docs(app_context, name)) for name in (POSTS, REACTIONS)}

    def replayed() -> bool:
        delivered = again.change_feed_delivered()
        return (
            delivered["fan_out_posts"] >= documents[POSTS]
            and delivered["count_reactions"] >= documents[REACTIONS]
            and again.change_feed_caught_up()
        )

    await eventually(lambda: asyncio.sleep(0, replayed()), bool, timeout=SETTLE_SECONDS, what="the replay")
    after = await snapshot(app_context, [FEED, COUNTERS, NOTIFICATIONS])
    assert after == before  # not a field of one feed item, counter or notification changed
    assert set(after[FEED]) == await expected_feed(owner)
    # counters exact: every post's reaction counts equal PostgreSQL's
    for post_id, counts, version in await owner.rows(
        "SELECT post_id::text, reactions, version FROM post_counts WHERE version > 1"
    ):
        doc = after[COUNTERS][f"{post_id}:counts"]
        assert ({k: v for k, v in doc["reactions"].items() if v}, doc["version"]) == (
            {k: v for k, v in counts.items() if v},
            version,
        )
    reactions_notified = [n for n in after[NOTIFICATIONS].values() if n["type"] == "reaction"]
    assert len({n["id"] for n in reactions_notified}) == len(reactions_notified) > 0
