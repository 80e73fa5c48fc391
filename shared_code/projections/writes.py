"""The Cosmos writes a projection asks for. Plain data: deciding them is pure, doing them
is the adapter's job (shared_code/adapters/cosmos_writer.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Soft-deleted projection documents expire after this long: long enough for every change
# feed consumer to see the deletion, short enough not to pay for tombstones.
TOMBSTONE_TTL_SECONDS = 24 * 3600
# Per-item ttl -1: never expires (in a container whose default TTL is on).
NO_EXPIRY = -1

POSTS = "posts_v2"
FEED = "userFeed"
REACTIONS = "reactions"
COUNTERS = "counters"
NOTIFICATIONS = "notifications"
PROFILES = "publicProfiles"
# Every author's recent posts, partitioned by author: what a feed read pulls of a big author.
AUTHOR_POSTS = "authorPosts"
# How long authorPosts keeps a post after its last change: at least FEED_ITEM_TTL_DAYS (at most 90),
# so a pull window always finds the posts a feed read may still take from Cosmos DB.
AUTHOR_POSTS_TTL_SECONDS = 90 * 24 * 3600

# Every conversation's messages, partitioned by conversation: what GET .../messages reads.
MESSAGES = "messages"
PARTITION_KEYS = {
    POSTS: "postId",
    FEED: "recipientId",
    REACTIONS: "postId",
    COUNTERS: "subjectId",
    NOTIFICATIONS: "recipientId",
    PROFILES: "userId",
    AUTHOR_POSTS: "authorId",
    MESSAGES: "conversationId",
}


@dataclass(frozen=True)
class VersionedUpsert:
    """Write `document` unless the stored one has the same or a newer `version`."""

    container: str
    document: dict[str, Any]

    @property
    def partition_key(self) -> str:
        return str(self.document[PARTITION_KEYS[self.container]])


@dataclass(frozen=True)
class CreateOnce:
    """Create `document` if absent; an existing one wins (so a replay changes nothing)."""

    container: str
    document: dict[str, Any]

    @property
    def partition_key(self) -> str:
        return str(self.document[PARTITION_KEYS[self.container]])


CosmosWrite = VersionedUpsert | CreateOnce
