"""The host killed with SIGKILL in the middle of work, then started again: nothing lost, nothing
counted twice. Clients retry what got no answer, as real clients do (creating requests with the same
Idempotency-Key, PUTs as they are)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
import psycopg
import pytest
from azure.cosmos.aio import DatabaseProxy

from devhost.tokens import issue_token
from tests.faults.checks import (
    delivery_report,
    duplicate_notifications,
    feed_size,
    last_outbox_id,
    notifications_of,
    outbox_since,
    reaction_counts,
)
from tests.support.fault_suite import People, record
from tests.support.http_client import NO_ANSWER, Answer, ApiUser
from tests.support.polling import eventually
from tests.support.running_stack import HostProcess, RunningStack

RECOVERY_DEADLINE = 120.0
# Feed items written before the host is killed mid fan-out.
MID_FAN_OUT = 200


async def _kill_after(host: HostProcess, ready: Callable[[], Awaitable[bool]], timeout: float = 120) -> None:
    """SIGKILL the host as soon as `ready()` says the work is under way."""
    await eventually(ready, lambda r: r, timeout=timeout, interval=0.05, what="the work under way")
    host.kill()


async def _restart(host: HostProcess) -> float:
    host.start()
    return await host.wait_ready()


async def _answered(call: Callable[[], Awaitable[Answer]]) -> Answer:
    """Retry a request that got no answer (the host was down) until it gets one."""
    return await eventually(
        call, lambda a: a.status != NO_ANSWER, timeout=RECOVERY_DEADLINE, what="an answer"
    )


async def bulk_users(owner_db: psycopg.AsyncConnection[Any], count: int, tag: str) -> list[tuple[str, str]]:
    """`count` users written straight into PostgreSQL (set-up, not under test): (subject, id)."""
    async with owner_db.transaction():
        await owner_db.execute(
            """INSERT INTO users (auth_subject, auth_provider, username)
               SELECT %(tag)s || '-' || i, 'email', %(tag)s || i FROM generate_series(1, %(count)s) i""",
            {"tag": tag, "count": count},
        )
        await owner_db.execute(
            """INSERT INTO profiles (user_id, display_name)
               SELECT id, username FROM users WHERE auth_subject LIKE %s""",
            (f"{tag}-%",),
        )
        await owner_db.execute(
            "INSERT INTO user_counts (user_id) SELECT id FROM users WHERE auth_subject LIKE %s", (f"{tag}-%",)
        )
    cur = await owner_db.execute(
        "SELECT auth_subject, id::text FROM users WHERE auth_subject LIKE %s", (f"{tag}-%",)
    )
    return [(str(s), str(i)) for s, i in await cur.fetchall()]


async def bulk_follow(owner_db: psycopg.AsyncConnection[Any], followers: list[str], author_id: str) -> None:
    async with owner_db.transaction():
        await owner_db.execute(
            """INSERT INTO follows (follower_id, followee_id)
               SELECT f::uuid, %(author)s::uuid FROM unnest(%(followers)s::text[]) f""",
            {"author": author_id, "followers": followers},
        )
        await owner_db.execute(
            "UPDATE user_counts SET followers = followers + %s, version = version + 1 WHERE user_id = %s",
            (len(followers), author_id),
        )


@pytest.mark.timeout(300)
async def test_killed_mid_relay_batch_every_event_is_delivered_once_in_the_feeds(
    people: People,
    host: HostProcess,
    stack: RunningStack,
    owner_db: psycopg.AsyncConnection[Any],
    cosmos: DatabaseProxy,
) -> None:
    author, reader = await people.new(), await people.new()
    await reader.ok("PUT", f"/api/users/{author.id}/follow")
    since = await last_outbox_id(owner_db)
    keys = [str(uuid.uuid4()) for _ in range(200)]
    semaphore = asyncio.Semaphore(8)
    answered = 0

    async def post(key: str) -> Answer:
        nonlocal answered
        async with semaphore:
            answer = await author.call(
                "POST", "/api/posts", {"content": key}, headers={"Idempotency-Key": key}
            )
            answered += 1
            return answer

    burst = [asyncio.create_task(post(key)) for key in keys]

    async def under_way() -> bool:
        published = (await outbox_since(owner_db, since))["published"]
        return answered >= 60 and published > 0

    await _kill_after(host, under_way)
    killed = time.monotonic()
    answers = await asyncio.gather(*burst)
    lost = [k for k, a in zip(keys, answers, strict=True) if a.status != 201]
    await _restart(host)
    for key in lost:
        retry = await _answered(partial(post, key))
        assert retry.status == 201, retry

    outbox = await eventually(
        lambda: outbox_since(owner_db, since),
        lambda o: o["pending"] == 0,
        timeout=RECOVERY_DEADLINE,
        what="every event of the burst published",
    )
    post_ids = {
        str(r[0])
        for r in await (
            await owner_db.execute("SELECT id FROM posts WHERE author_id = %s", (author.id,))
        ).fetchall()
    }
    expected_events = {
        str(r[0])
        for r in await (
            await owner_db.execute("SELECT event_id FROM outbox WHERE id > %s", (since,))
        ).fetchall()
    }
    report = await eventually(
        lambda: _delivered(stack, expected_events),
        lambda r: expected_events <= r["event_ids"],
        timeout=RECOVERY_DEADLINE,
        what="every event on Event Hubs",
    )
    in_feed = await eventually(
        lambda: _feed_post_count(cosmos, reader.id),
        lambda n: n >= len(keys),
        timeout=RECOVERY_DEADLINE,
        what="every post in the follower's feed",
    )
    recovered = time.monotonic() - killed
    record(
        "host SIGKILL mid relay batch (200 posts)",
        requests_without_answer=len(lost),
        recovered_s=round(recovered, 1),
        posts=len(post_ids),
        events_dead=outbox["dead"],
        duplicates_seen_by_consumer=report["duplicates"],
        feed_items=in_feed,
    )
    assert len(post_ids) == len(keys), "a retried post was lost or written twice"
    assert outbox["dead"] == 0
    assert in_feed == len(keys), "the feed lost or doubled a post"


@pytest.mark.timeout(300)
async def test_a_worker_killed_mid_relay_batch_the_other_keeps_answering_and_every_post_lands_once(
    people: People,
    host: HostProcess,
    stack: RunningStack,
    owner_db: psycopg.AsyncConnection[Any],
    cosmos: DatabaseProxy,
) -> None:
    statuses = await host.worker_status()
    assert len(statuses) >= 2, "the fault host runs two workers (FAULT_HOST_SETTINGS)"
    author, reader = await people.new(), await people.new()
    await reader.ok("PUT", f"/api/users/{author.id}/follow")
    since = await last_outbox_id(owner_db)
    keys = [str(uuid.uuid4()) for _ in range(200)]
    semaphore = asyncio.Semaphore(8)
    answered = 0
    answered_after_kill = 0
    killed_at: float | None = None

    async def post(key: str) -> Answer:
        nonlocal answered, answered_after_kill
        async with semaphore:
            answer = await author.call(
                "POST", "/api/posts", {"content": key}, headers={"Idempotency-Key": key}
            )
            answered += 1
            if killed_at is not None and answer.status == 201:
                answered_after_kill += 1
            return answer

    burst = [asyncio.create_task(post(key)) for key in keys]

    async def under_way() -> bool:
        published = (await outbox_since(owner_db, since))["published"]
        return answered >= 60 and published > 0

    await eventually(under_way, lambda r: r, timeout=120, interval=0.05, what="the relay under way")
    # The worker running the relay timer now (it holds the timer's singleton lock).
    relay_worker = next(
        (s for s in (await host.worker_status()).values() if "outbox_relay_timer" in s["timers"]), None
    )
    assert relay_worker is not None, "no worker holds the relay timer's lock"
    os.kill(relay_worker["pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    answers = await asyncio.gather(*burst)
    assert host.alive(), "killing one worker took the host down"
    lost = [k for k, a in zip(keys, answers, strict=True) if a.status != 201]
    for key in lost:
        retry = await _answered(partial(post, key))
        assert retry.status == 201, retry

    outbox = await eventually(
        lambda: outbox_since(owner_db, since),
        lambda o: o["pending"] == 0,
        timeout=RECOVERY_DEADLINE,
        what="every event of the burst published",
    )
    post_count = await scalar(owner_db, "SELECT count(*) FROM posts WHERE author_id = %s", author.id)
    in_feed = await eventually(
        lambda: _feed_post_count(cosmos, reader.id),
        lambda n: n >= len(keys),
        timeout=RECOVERY_DEADLINE,
        what="every post in the follower's feed",
    )
    restarted = await host.worker_status()
    record(
        "one of two workers SIGKILLed mid relay batch (200 posts)",
        requests_without_answer=len(lost),
        answered_after_kill=answered_after_kill,
        recovered_s=round(time.monotonic() - killed_at, 1),
        posts=post_count,
        events_dead=outbox["dead"],
        feed_items=in_feed,
    )
    assert answered_after_kill > 0, "the surviving worker answered nothing while the other was down"
    assert relay_worker["pid"] not in {s["pid"] for s in restarted.values()}, "the killed worker is back?"
    assert len(restarted) == len(statuses), "the killed worker was not restarted"
    assert post_count == len(keys), "a retried post was lost or written twice"
    assert outbox["dead"] == 0
    assert in_feed == len(keys), "the feed lost or doubled a post"


async def scalar(owner_db: psycopg.AsyncConnection[Any], query: str, *args: Any) -> int:
    row = await (await owner_db.execute(query, args)).fetchone()
    assert row is not None
    return int(row[0])


async def _delivered(stack: RunningStack, event_ids: set[str]) -> dict[str, Any]:
    return delivery_report(await stack.published_events(), event_ids)


async def _feed_post_count(cosmos: DatabaseProxy, recipient_id: str) -> int:
    container = cosmos.get_container_client("userFeed")
    counts = [
        int(n)  # type: ignore[call-overload]  # a VALUE query yields numbers, not documents
        async for n in container.query_items("SELECT VALUE COUNT(1) FROM c", partition_key=recipient_id)
    ]
    return sum(counts)


@pytest.mark.timeout(600)
async def test_killed_mid_fan_out_of_a_10000_follower_post_every_feed_gets_it_once(
    people: People,
    host: HostProcess,
    owner_db: psycopg.AsyncConnection[Any],
    cosmos: DatabaseProxy,
) -> None:
    author = await people.new()
    tag = f"fan{uuid.uuid4().hex[:8]}"
    followers = [user_id for _, user_id in await bulk_users(owner_db, 10_000, tag)]
    await bulk_follow(owner_db, followers, author.id)
    post = await author.ok("POST", "/api/posts", {"content": "to ten thousand followers"})

    async def partly_fanned_out() -> bool:
        # Past the author's own item and the first pages of followers, well before the end.
        return MID_FAN_OUT <= await feed_size(cosmos, post["id"]) < len(followers) // 2

    await _kill_after(host, partly_fanned_out)
    at_kill = await feed_size(cosmos, post["id"])
    killed = time.monotonic()
    await _restart(host)
    expected = set(followers) | {author.id}
    await eventually(
        lambda: feed_size(cosmos, post["id"]),
        lambda n: n >= len(followers),
        timeout=RECOVERY_DEADLINE * 2,
        interval=0.5,
        what="the post in every follower's feed",
    )
    recovered = time.monotonic() - killed
    recipients_cur = cosmos.get_container_client("userFeed").query_items(
        "SELECT VALUE c.recipientId FROM c WHERE c.postId = @p",
        parameters=[{"name": "@p", "value": post["id"]}],
    )
    recipients = [r async for r in recipients_cur]
    record(
        "host SIGKILL mid fan-out of a 10,000-follower post",
        feed_items_at_kill=at_kill,
        feed_items_after=len(recipients),
        recovered_s=round(recovered, 1),
    )
    assert set(recipients) >= set(followers), "a follower's feed lost the post"
    assert set(recipients) <= expected, "the post reached a feed of someone who does not follow its author"
    assert len(recipients) == len(set(recipients)), "a feed holds the post twice"
    assert at_kill < len(followers), "the fan-out had finished before the kill"


@pytest.mark.timeout(300)
async def test_killed_mid_reaction_storm_counters_are_exact_and_no_notification_doubles(
    people: People,
    host: HostProcess,
    stack: RunningStack,
    owner_db: psycopg.AsyncConnection[Any],
    cosmos: DatabaseProxy,
    http: aiohttp.ClientSession,
) -> None:
    author = await people.new()
    post = await author.ok("POST", "/api/posts", {"content": "react to me"})
    tag = f"rx{uuid.uuid4().hex[:8]}"
    fans = [
        ApiUser(http, host.base_url, issue_token(stack.state_dir, subject), id=user_id)
        for subject, user_id in await bulk_users(owner_db, 300, tag)
    ]
    kinds = ("like", "love", "wow")
    semaphore = asyncio.Semaphore(12)
    answered = 0

    async def react(index: int) -> Answer:
        nonlocal answered
        async with semaphore:
            answer = await fans[index].call(
                "PUT", f"/api/posts/{post['id']}/reactions", {"type": kinds[index % len(kinds)]}
            )
            answered += 1
            return answer

    storm = [asyncio.create_task(react(i)) for i in range(len(fans))]

    async def under_way() -> bool:
        return answered >= 80

    await _kill_after(host, under_way)
    killed = time.monotonic()
    answers = await asyncio.gather(*storm)
    unanswered = [i for i, a in enumerate(answers) if a.status not in (200, 201, 204)]
    await _restart(host)
    for index in unanswered:
        retry = await _answered(partial(react, index))
        assert retry.status in (200, 201, 204), retry

    truth_rows = await (
        await owner_db.execute(
            "SELECT type, count(*) FROM reactions WHERE post_id = %s AND deleted_at IS NULL GROUP BY type",
            (post["id"],),
        )
    ).fetchall()
    truth = {str(t): int(n) for t, n in truth_rows}
    counts = await eventually(
        lambda: reaction_counts(cosmos, post["id"]),
        lambda c: {k: v for k, v in c.items() if v} == truth,
        timeout=RECOVERY_DEADLINE,
        what="the reaction counters equal to PostgreSQL",
    )
    recovered = time.monotonic() - killed
    notifications = await notifications_of(cosmos, author.id)
    record(
        "host SIGKILL mid reaction storm (300 reactions)",
        requests_without_answer=len(unanswered),
        recovered_s=round(recovered, 1),
        counters=counts,
        truth=truth,
        notifications=len(notifications),
        duplicate_notifications=duplicate_notifications(notifications),
    )
    assert sum(truth.values()) == len(fans)
    assert duplicate_notifications(notifications) == 0
