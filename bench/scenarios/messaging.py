"""messaging: send → visible in the recipient's inbox (issue 16), and the message page after it.

PAIRS conversations talk at once; in each, the sender sends one message at a time through `POST
/api/conversations/{id}/messages` and the recipient polls `GET /api/conversations` (its inbox, from
PostgreSQL with the exact unread count) every POLL_S until the message is its conversation's last
message. t0 is when the send is issued (the write is included); visibility is the first poll that
shows it, so up to POLL_S of observation delay is included. The recipient then reads the message page
(`GET .../messages?limit=20`, from the `messages` projection, or PostgreSQL while it lags) and the
scenario checks the newest message is the one sent; then marks it read (the unread count must be 0).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.context import BenchContext
from bench.histogram import LatencyHistogram
from bench.result import ScenarioResult, ms

NAME = "messaging"
TARGET_INBOX_MS = 1000.0
POLL_S = 0.02
GIVE_UP_S = 30.0


async def run(ctx: BenchContext) -> ScenarioResult:
    pairs, per_pair = (3, 5) if ctx.quick else (10, 20)
    result = ScenarioResult(NAME, "send → visible in the recipient's inbox")
    result.parameters = {"conversations": pairs, "messages_each": per_pair, "poll_s": POLL_S}
    senders = [await ctx.onboard(f"bench-dm-sender-{n}", f"bench_dm_s{n}") for n in range(pairs)]
    recipients = [await ctx.onboard(f"bench-dm-recipient-{n}", f"bench_dm_r{n}") for n in range(pairs)]
    for sender, recipient in zip(senders, recipients, strict=True):
        await ctx.ensure_followers(sender, [recipient])  # not a message request
    to_inbox, send, page_read = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    problems: list[str] = []
    unseen = 0

    async def talk(n: int) -> None:
        nonlocal unseen
        sender_token = ctx.token(f"bench-dm-sender-{n}")
        recipient_token = ctx.token(f"bench-dm-recipient-{n}")
        conversation = await ctx.http.expect(
            "POST", "/api/conversations", sender_token, {"memberIds": [recipients[n]]}
        )
        cid = str(conversation["id"])
        for m in range(per_pair):
            began = time.monotonic()
            sent = await ctx.http.expect(
                "POST", f"/api/conversations/{cid}/messages", sender_token, {"text": f"bench message {m}"}
            )
            send.record_seconds(time.monotonic() - began)
            entry = await _until_in_inbox(ctx, recipient_token, cid, str(sent["id"]))
            if entry is None:
                unseen += 1
                continue
            to_inbox.record_seconds(time.monotonic() - began)
            if entry["unreadCount"] != 1:
                problems.append(f"conversation {n} message {m}: unread {entry['unreadCount']}, expected 1")
            t = time.monotonic()
            page = await ctx.http.expect(
                "GET", f"/api/conversations/{cid}/messages?limit=20", recipient_token
            )
            page_read.record_seconds(time.monotonic() - t)
            if not page["items"] or page["items"][0]["id"] != sent["id"]:
                problems.append(f"conversation {n} message {m}: not the newest on the message page")
            state = await ctx.http.expect(
                "PUT", f"/api/conversations/{cid}/read", recipient_token, {"messageId": sent["id"]}
            )
            if state["unreadCount"] != 0:
                problems.append(f"conversation {n} message {m}: unread {state['unreadCount']} after reading")

    await asyncio.gather(*(talk(n) for n in range(pairs)))
    result.histograms = {
        "send → in the recipient's inbox": to_inbox,
        "POST .../messages (the send itself)": send,
        "GET .../messages?limit=20": page_read,
    }
    result.figures = {
        "send_to_inbox": to_inbox.summary(),
        "send": send.summary(),
        "message_page": page_read.summary(),
        "never_seen": unseen,
        "problems": problems[:10],
    }
    p99 = to_inbox.percentile_ms(99.0)
    result.check(
        "send → visible in the recipient's inbox, p99",
        f"≤ {ms(TARGET_INBOX_MS)}",
        ms(p99),
        p99 <= TARGET_INBOX_MS and unseen == 0,
    )
    result.check(
        "inbox last message, unread counts and message page exact",
        "all",
        f"{len(problems)} problems",
        not problems,
    )
    return result


async def _until_in_inbox(
    ctx: BenchContext, token: str, conversation: str, message: str
) -> dict[str, Any] | None:
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        page = await ctx.http.expect("GET", "/api/conversations?limit=20", token)
        for entry in page["items"]:
            last = entry.get("lastMessage") or {}
            if entry["conversationId"] == conversation and last.get("id") == message:
                return dict(entry)
        await asyncio.sleep(POLL_S)
    return None
