"""Media rules without I/O: who may read an asset, when nothing visible uses it any more (the sweep
purges it), whether uploaded bytes are what was declared, and what a reader is served.

Visibility (docs/api.md "Media"): an asset is readable iff it is ready and not purged, its owner's
account is live, and either it is attached to a post that is live and 'visible' (and the post's
author has not blocked the caller), or it is not attached, the caller is its owner and it became
ready less than MEDIA_UNATTACHED_TTL_HOURS ago. Nothing else (a moderator included) reads the media
of a deleted, hidden or removed post: its blob is purged soon after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

# filetype 1.2.0: magic-number matchers for exactly the types we accept (JPEG, PNG, GIF, WebP, AVIF,
# MP4, WebM, QuickTime), pure Python, no dependencies; pinned in requirements.txt.
import filetype

from shared_code.domain.limits import ALLOWED_MEDIA_TYPES


@dataclass(frozen=True)
class AttachedPost:
    id: UUID
    author_id: UUID
    live: bool  # not deleted
    status: str  # 'visible', 'hidden' or 'removed'


@dataclass(frozen=True)
class MediaState:
    """What the rules need to know about one asset, read in one query."""

    owner_id: UUID
    owner_live: bool
    status: str  # 'pending' or 'ready'
    ready_at: datetime | None
    gone: bool  # soft-deleted (a stale pending upload) or purged
    post: AttachedPost | None
    # Attached to a live direct message: its readers get its URL with the message (services/messaging.py).
    in_message: bool = False


def unattached_expired(state: MediaState, now: datetime, unattached_ttl: timedelta) -> bool:
    return (
        state.post is None
        and not state.in_message
        and state.ready_at is not None
        and now - state.ready_at >= unattached_ttl
    )


def readable_by_someone(state: MediaState, now: datetime, unattached_ttl: timedelta) -> bool:
    """Whether anyone may still read the asset: when not, the sweep deletes its blob."""
    if state.status != "ready" or state.gone or not state.owner_live:
        return False
    if state.post is not None:
        return state.post.live and state.post.status == "visible"
    return not unattached_expired(state, now, unattached_ttl)


def readable_by(
    state: MediaState, caller: UUID, now: datetime, unattached_ttl: timedelta, *, hidden_by_author: bool
) -> bool:
    """Whether `caller` may read the asset (get a signed URL for it). `hidden_by_author`: the caller
    may not see the attached post's author's content (domain/privacy.py: a private account not
    followed, or the author blocked the caller), which hides the post and so its media."""
    if not readable_by_someone(state, now, unattached_ttl):
        return False
    if state.post is None:
        return caller == state.owner_id
    return caller == state.post.author_id or not hidden_by_author


def purgeable(state: MediaState, now: datetime, unattached_ttl: timedelta) -> bool:
    """A ready asset whose blob the sweep deletes: nobody may read it any more."""
    return state.status == "ready" and not state.gone and not readable_by_someone(state, now, unattached_ttl)


# --- what the bytes are ---------------------------------------------------------------------------

# How much of an upload completion reads to check its type: the window filetype's matchers look at.
SNIFF_BYTES: Final = 8192

_MATCHERS: Final = {media_type: filetype.get_type(mime=media_type) for media_type in ALLOWED_MEDIA_TYPES}
assert all(_MATCHERS.values()), "every allowed media type has a magic-number matcher"


def bytes_match(declared_type: str, head: bytes) -> bool:
    """Whether the first bytes of an upload (up to SNIFF_BYTES) carry the declared type's magic number."""
    matcher = _MATCHERS.get(declared_type)
    return matcher is not None and bool(matcher.match(bytearray(head)))


def sniffed_type(head: bytes) -> str | None:
    """Which allowed type the bytes look like, if any (to say so when they are refused)."""
    for media_type in sorted(ALLOWED_MEDIA_TYPES):
        if bytes_match(media_type, head):
            return media_type
    return None


@dataclass(frozen=True)
class ServedAs:
    """The headers a reader gets, decided by the server: set on the blob at completion and
    repeated as the read SAS's response overrides (rsct, rscd)."""

    content_type: str
    content_disposition: str


def served_as(media_id: UUID, content_type: str) -> ServedAs:
    """Inline, under a name the server makes (the media id and the type's extension): nothing the
    uploader chose reaches a header. Only types whose bytes were checked are ever served."""
    matcher = _MATCHERS.get(content_type)
    extension = matcher.extension if matcher is not None else "bin"
    disposition = "inline" if matcher is not None else "attachment"
    return ServedAs(
        content_type=content_type if matcher is not None else "application/octet-stream",
        content_disposition=f'{disposition}; filename="{media_id}.{extension}"',
    )
