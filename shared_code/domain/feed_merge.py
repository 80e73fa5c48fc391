"""The home feed's merge, pure: which sources a page reads, how their entries become one page, and
where a page's keyset sends the next one. No I/O, no clock (callers pass `now`).

A home feed page is read from up to three kinds of source (docs/architecture.md "Home feeds at any
audience size"):
- the caller's `userFeed` partition: posts fanned out on write;
- one `authorPosts` partition per big author the caller follows: posts pulled at read time, within
  the author's pull window (the span of post times that were not fanned out);
- PostgreSQL, for whatever is older than what Cosmos DB keeps (the horizon).
Every source is read in the same order, (createdAt, postId) descending, after the same keyset, so
the cursor is one keyset whatever source the last entry came from. A post may be in two sources (a
post fanned out before its author crossed the threshold and pulled after, say): it is shown once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# (createdAt, postId): the order of every feed source, newest first.
Key = tuple[datetime, str]

# Items expire at their post's createdAt plus the retention; a page trusts Cosmos DB only for posts
# somewhat newer than that, so an item about to expire is never half there.
HORIZON_MARGIN = timedelta(hours=1)
HORIZON_MARGIN_SHARE = 0.05  # of the retention, when the retention is short (tests)


def parse_time(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cosmos_time(value: datetime) -> str:
    """A time as feed sources store the times they are ordered by: UTC, always six fractional digits,
    'Z'. Cosmos DB orders these as strings, and a variable width would not sort: pydantic's JSON form
    drops a zero fraction, and 'Z' sorts after '.', so '…:05Z' would come after '…:05.000005Z'."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def entry_key(entry: dict[str, Any]) -> Key:
    return parse_time(entry["createdAt"]), str(entry["postId"])


# --- the threshold ---------------------------------------------------------------------------------


def is_pulled(followers: int, max_followers: int) -> bool:
    """Whether an author's posts are pulled at read time rather than fanned out on write: the one
    place the threshold is decided (posts, and reposts by the same rule)."""
    return followers > max_followers


@dataclass(frozen=True)
class PullWindow:
    """The span of an author's post times that may not have been fanned out. `pulling`: the author is
    above the threshold now, so every post from `since` on is pulled; otherwise posts in
    [since, last] are (the posts after `last` were fanned out again). A window may be wider than what
    was really pulled (a post in both is shown once); never narrower."""

    author_id: str
    since: datetime
    last: datetime
    pulling: bool

    def covers(self, at: datetime) -> bool:
        """Whether a post or repost made at `at` is pulled (not fanned out) by this window."""
        return self.since <= at and (self.pulling or at <= self.last)

    def overlaps(self, horizon: datetime, after: Key | None) -> bool:
        """Whether a page (entries newer than the horizon, before the position) may pull anything of
        this window; a page pulls createdAt >= since (and <= last unless pulling)."""
        if not self.pulling and self.last <= horizon:
            return False
        return after is None or after[0] >= self.since


# --- retention -------------------------------------------------------------------------------------


def retention_margin(ttl: timedelta) -> timedelta:
    return min(HORIZON_MARGIN, ttl * HORIZON_MARGIN_SHARE)


def horizon(now: datetime, ttl: timedelta, floor: datetime | None) -> datetime:
    """Cosmos DB holds every feed entry created after this time (and PostgreSQL serves the rest):
    later than the retention (plus a margin) and than the feed's trim floor, if it was trimmed."""
    by_age = now - ttl + retention_margin(ttl)
    return max(by_age, floor) if floor is not None else by_age


def item_ttl_seconds(created_at: datetime, now: datetime, ttl: timedelta) -> int | None:
    """The Cosmos ttl that makes a feed item expire `ttl` after its post was created (Cosmos counts
    from the item's last write); None when it is already past that (the item is not written)."""
    remaining = int((created_at + ttl - now).total_seconds())
    return remaining if remaining > 0 else None


def trims_after(recipient_id: str, post_id: str, max_items: int) -> bool:
    """Whether writing this post into this feed also trims the feed to `max_items`: about one write in
    max_items/10 (every write for tiny caps), chosen by feed and post so that one fan-out's trims are
    spread over few feeds and a trim's read of the keys is paid back over many writes; a feed thus
    holds at most about 1.1 x max_items items."""
    every = max(1, max_items // 10)
    digest = hashlib.blake2b(f"{recipient_id}:{post_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % every == 0


def trim_split(keys: Sequence[Key], max_items: int) -> tuple[list[Key], datetime | None]:
    """Of a feed's keys (any order): the ones beyond the newest `max_items` (to delete), and the new
    floor (the newest deleted createdAt: entries at or before it may be gone), or None."""
    ordered = sorted(keys, reverse=True)
    beyond = ordered[max_items:]
    return beyond, (beyond[0][0] if beyond else None)


# --- merging one page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourcePage:
    """What one source returned for a page: entries newest first, all after the position and newer
    than the horizon; `exhausted` when it returned everything it holds there (fewer than asked)."""

    entries: list[dict[str, Any]]
    exhausted: bool


def newer_than(page: SourcePage, edge: datetime) -> SourcePage:
    """A source page fetched against an earlier horizon, cut at a later one: what it held at or below
    `edge` is left to PostgreSQL, and a page that was cut has nothing more above the edge."""
    kept = [entry for entry in page.entries if entry_key(entry)[0] > edge]
    return SourcePage(kept, exhausted=page.exhausted or len(kept) < len(page.entries))


@dataclass(frozen=True)
class MergedPage:
    entries: list[dict[str, Any]]  # to show, newest first, at most the limit
    position: Key | None  # the last entry looked at (shown or not): the next page starts after it
    cosmos_done: bool  # every Cosmos source is exhausted: what follows comes from PostgreSQL


def _newer_version(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return b if int(b.get("postVersion") or 0) > int(a.get("postVersion") or 0) else a


def _preferred(
    a: dict[str, Any], b: dict[str, Any], hidden: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Of two entries of one post in a page: the one that may show (a pulled copy the feed's own item
    shadows is hidden, the item is not), else the newer version."""
    a_hidden, b_hidden = hidden(a), hidden(b)
    if a_hidden != b_hidden:
        return b if a_hidden else a
    return _newer_version(a, b)


# --- reposts pulled from big reposters -------------------------------------------------------------


@dataclass(frozen=True)
class PulledRepost:
    """The newest live repost of a post by an account the reader pulls (a big reposter they follow,
    within its pull window, newer than the horizon), as PostgreSQL says now."""

    user_id: str
    at: datetime


@dataclass(frozen=True)
class RepostFacts:
    """What decides which entry of a post shows in one page (once per feed, docs/architecture.md
    "Reposts by big accounts"). `newest_pulled`: by post id; `in_feed`: posts the reader's own
    userFeed holds newer than the horizon."""

    newest_pulled: dict[str, PulledRepost]
    in_feed: frozenset[str]


def newest_pulled_reposts(
    reposts: Sequence[tuple[str, str, datetime]], windows: Sequence[PullWindow], edge: datetime
) -> dict[str, PulledRepost]:
    """Of live reposts (post id, reposter id, time), the newest per post among those a page pulls: by
    an account whose window covers the repost's time, newer than the horizon. Ties: the greater
    reposter id (any fixed order will do: every page decides alike)."""
    by_author = {w.author_id: w for w in windows}
    newest: dict[str, PulledRepost] = {}
    for post_id, user_id, at in reposts:
        window = by_author.get(user_id)
        if window is None or at <= edge or not window.covers(at):
            continue
        current = newest.get(post_id)
        if current is None or (at, user_id) > (current.at, current.user_id):
            newest[post_id] = PulledRepost(user_id, at)
    return newest


def shadowed(entry: dict[str, Any], facts: RepostFacts) -> bool:
    """Whether a pulled entry must not show because another entry of its post does (once per feed):
    - the reader's userFeed holds the post (above the horizon): its item shows it, at its place;
    - a pulled repost shows only if it is the post's newest pulled repost (an undone one, or an older
      one, shows nowhere);
    - a pulled post of a big author shows unless a pulled repost of it (always newer) does.
    The userFeed's own entries are never shadowed. Every page decides an entry alike, wherever the
    cursor is, so no post shows twice across pages. Pure."""
    if not entry.get("pulled"):
        return False
    post_id = str(entry["postId"])
    if post_id in facts.in_feed:
        return True
    newest = facts.newest_pulled.get(post_id)
    if entry.get("repostedBy"):
        return newest is None or newest.user_id != str(entry["repostedBy"])
    return newest is not None


def newer_reposter(entry: dict[str, Any], facts: RepostFacts) -> PulledRepost | None:
    """For a userFeed entry: the pulled repost to show as its reposter when it is newer than the one
    the item shows (a big reposter's repost writes no item, so the item cannot know it). Pure."""
    if entry.get("pulled"):
        return None
    newest = facts.newest_pulled.get(str(entry["postId"]))
    if newest is None:
        return None
    shown = entry.get("repostedAt")
    if shown and parse_time(shown) >= newest.at:
        return None
    return newest


def merge_sources(
    sources: Sequence[SourcePage], limit: int, hidden: Callable[[dict[str, Any]], bool]
) -> MergedPage:
    """One page of the merged feed from one fetch of each source.

    Only entries at or after the frontier are certain to be in order: a source that was not exhausted
    may hold more entries below its last one, so nothing below the highest such last entry is taken
    this round. Entries of one post in several sources are one entry (one that may show, else the
    newest version)."""
    frontier: Key | None = None
    for source in sources:
        if not source.exhausted and source.entries:
            last = entry_key(source.entries[-1])
            frontier = last if frontier is None else max(frontier, last)
    unique: dict[str, dict[str, Any]] = {}
    for source in sources:
        for entry in source.entries:
            if frontier is not None and entry_key(entry) < frontier:
                continue
            post_id = str(entry["postId"])
            unique[post_id] = _preferred(unique[post_id], entry, hidden) if post_id in unique else entry
    candidates = sorted(unique.values(), key=entry_key, reverse=True)
    shown: list[dict[str, Any]] = []
    position: Key | None = None
    for entry in candidates:
        if len(shown) == limit:
            return MergedPage(shown, position, cosmos_done=False)
        position = entry_key(entry)
        if not hidden(entry):
            shown.append(entry)
    # every candidate was looked at: Cosmos has more only if some source was not exhausted
    return MergedPage(shown, position, cosmos_done=frontier is None)


def likely_page(entries: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` distinct posts among a round's entries: if the screen hides none, the page the
    merge makes of them is a prefix of these (cut at the frontier), so they are worth hydrating before
    the screen has answered. Only a hint: whatever the page holds beyond it is hydrated after."""
    unique: dict[str, dict[str, Any]] = {}
    for entry in entries:
        unique.setdefault(str(entry["postId"]), entry)
    return sorted(unique.values(), key=entry_key, reverse=True)[:limit]


# --- a whole page ----------------------------------------------------------------------------------

# A page whose merged entries were mostly hidden (muted, blocked, deleted) reads again, at most this
# many times; then it answers short, with a cursor that goes on where it stopped.
MERGE_ROUNDS = 3


@dataclass(frozen=True)
class FeedPage:
    cosmos_entries: list[dict[str, Any]]  # from userFeed and authorPosts, newest first
    postgres_entries: list[dict[str, Any]]  # then these, older than all of the above
    position: Key | None  # the keyset of the last entry looked at
    more: bool  # whether a next page may hold anything (then the cursor is `position`)


CosmosFetch = Callable[[Key | None, int], Awaitable[list[SourcePage]]]
Screen = Callable[[list[dict[str, Any]]], Awaitable[Callable[[dict[str, Any]], bool]]]
PostgresFetch = Callable[[Key | None, int, datetime], Awaitable[list[dict[str, Any]]]]


async def read_page(
    limit: int,
    after: Key | None,
    edge: datetime,
    cosmos: CosmosFetch,
    screen: Screen,
    postgres: PostgresFetch,
) -> FeedPage:
    """One page of the home feed after the keyset `after`.

    `cosmos(position, n)` returns one SourcePage per Cosmos source (at most n entries each, newer
    than `edge`, before `position`); `screen(entries)` says which of them must not show; `postgres(
    position, n, edge)` returns up to n entries created at or before `edge`, before `position`.
    Entries newer than the horizon `edge` come from Cosmos DB, the rest from PostgreSQL: the two
    never overlap, and the keyset is the same, so a page may end in either and the next goes on."""
    shown: list[dict[str, Any]] = []
    position = after
    cosmos_done = after is not None and after[0] <= edge
    rounds = 0
    while not cosmos_done and len(shown) < limit and rounds < MERGE_ROUNDS:
        rounds += 1
        want = limit - len(shown)
        pages = await cosmos(position, want)
        hidden = await screen([entry for page in pages for entry in page.entries])
        merged = merge_sources(pages, want, hidden)
        shown += merged.entries
        position = merged.position or position
        cosmos_done = merged.cosmos_done
    if not cosmos_done:
        return FeedPage(shown, [], position, more=True)
    if len(shown) == limit:
        return FeedPage(shown, [], position, more=True)  # PostgreSQL may hold older entries
    want = limit - len(shown)
    older = await postgres(position, want + 1, edge)
    taken = older[:want]
    if taken:
        position = entry_key(taken[-1])
    return FeedPage(shown, taken, position, more=len(older) > want)
