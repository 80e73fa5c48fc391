"""Reposts by big accounts in the home feed (docs/architecture.md "Reposts by big accounts").

A repost by an account above FANOUT_MAX_FOLLOWERS is not fanned out: it is a document in the
reposter's `authorPosts` partition (projections/documents.author_repost_document), inside the
reposter's pull window, and the feeds of the reposter's followers pull it like a big author's post.
A post may then reach a feed by several entries (its fanned-out item, the author's pulled post, one
pulled repost per big reposter followed): each page asks here which of them shows, so it shows once,
and with the newest reposter (domain/feed_merge.shadowed, newer_reposter):
- one PostgreSQL statement: the live reposts of the page's posts by the accounts the reader pulls
  (an undone repost is gone at once, before its tombstone reaches authorPosts), and the authors of
  the posts pulled reposts name (a repost document does not name them);
- one batched Cosmos read: whether the reader's userFeed holds the pulled posts (above the horizon).
Nothing of this runs for a reader who pulls nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from azure.cosmos.aio import DatabaseProxy

from shared_code.adapters.availability import RequestBudget
from shared_code.db.rows import fetch_all
from shared_code.db.unit_of_work import Transactions, UnitOfWork
from shared_code.domain.feed_merge import (
    PullWindow,
    RepostFacts,
    cosmos_time,
    newer_reposter,
    newest_pulled_reposts,
    parse_time,
)
from shared_code.projections.writes import FEED
from shared_code.services.feeds import RepostRef, feed_item


def pulled_entry(me: str, document: dict[str, Any]) -> dict[str, Any]:
    """A feed entry from an authorPosts document (a big author's post, or a big reposter's repost),
    marked `pulled`. A repost's entry names the reposter as its author until `repost_facts` sets the
    post's own (the document does not hold it)."""
    if document.get("repostedBy"):
        reposter = str(document["repostedBy"])
        at = str(document.get("repostedAt") or document["createdAt"])
        entry = feed_item(
            me,
            {"postId": document["postId"], "authorId": reposter, "createdAt": at},
            RepostRef(reposter, at),
        )
    else:
        entry = feed_item(me, document)
    entry["pulled"] = True
    return entry


@dataclass(frozen=True)
class _Repost:
    post_id: UUID
    user_id: UUID
    created_at: datetime


@dataclass(frozen=True)
class _Author:
    post_id: UUID
    author_id: UUID


async def _live_reposts(
    uow: UnitOfWork, posts: list[UUID], pullers: list[UUID], reposted: list[UUID], edge: datetime
) -> tuple[list[_Repost], list[_Author]]:
    reposts = await fetch_all(
        uow.conn,
        _Repost,
        """SELECT post_id, user_id, created_at FROM reposts
           WHERE post_id = ANY(%(posts)s) AND user_id = ANY(%(pullers)s) AND deleted_at IS NULL
             AND created_at > %(edge)s""",
        {"posts": posts, "pullers": pullers, "edge": edge},
    )
    authors = (
        await fetch_all(
            uow.conn, _Author, "SELECT id AS post_id, author_id FROM posts WHERE id = ANY(%s)", (reposted,)
        )
        if reposted
        else []
    )
    return reposts, authors


async def _in_feed(
    db: DatabaseProxy, budget: RequestBudget, me: str, post_ids: set[str], edge: datetime
) -> set[str]:
    """Of `post_ids`, those the reader's userFeed holds above the horizon: one batched read."""
    if not post_ids:
        return set()
    async with budget.guard():
        items: list[dict[str, Any]] = await db.get_container_client(FEED).read_items(
            [(f"{me}:{post_id}", me) for post_id in sorted(post_ids)]
        )
    return {
        str(item["postId"])
        for item in items
        if item.get("createdAt") and parse_time(item["createdAt"]) > edge
    }


async def repost_facts(
    db: DatabaseProxy,
    run: Transactions,
    budget: RequestBudget,
    me: str,
    windows: list[PullWindow],
    edge: datetime,
    entries: list[dict[str, Any]],
) -> RepostFacts:
    """What decides which entry of each post in `entries` shows. Sets, in place, each pulled repost's
    `authorId` to its post's author (so the screen asks the privacy rule, mutes and blocks of the
    author, as for any entry) and the reposter of a userFeed entry a newer pulled repost relabels."""
    pullers = sorted({UUID(w.author_id) for w in windows})
    posts = sorted({UUID(str(e["postId"])) for e in entries})
    reposted = sorted({UUID(str(e["postId"])) for e in entries if e.get("pulled") and e.get("repostedBy")})
    reposts, authors = await run(lambda uow: _live_reposts(uow, posts, pullers, reposted, edge))
    author_of = {str(a.post_id): str(a.author_id) for a in authors}
    # The userFeed entries of this round are above the horizon: no need to read those again.
    fed = {str(e["postId"]) for e in entries if not e.get("pulled")}
    pulled_posts = {str(e["postId"]) for e in entries if e.get("pulled")}
    in_feed = fed | await _in_feed(db, budget, me, pulled_posts - fed, edge)
    facts = RepostFacts(
        newest_pulled=newest_pulled_reposts(
            [(str(r.post_id), str(r.user_id), r.created_at) for r in reposts], windows, edge
        ),
        in_feed=frozenset(in_feed & pulled_posts),
    )
    for entry in entries:
        post_id = str(entry["postId"])
        if entry.get("pulled") and entry.get("repostedBy") and post_id in author_of:
            entry["authorId"] = author_of[post_id]
        newer = newer_reposter(entry, facts)
        if newer is not None:
            entry["repostedBy"], entry["repostedAt"] = newer.user_id, cosmos_time(newer.at)
    return facts
