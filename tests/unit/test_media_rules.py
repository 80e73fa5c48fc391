"""The media rules without I/O: who may read an asset, what the sweep purges, whether bytes are of
the declared type, and what a reader is served."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared_code.domain.limits import ALLOWED_MEDIA_TYPES
from shared_code.domain.media_rules import (
    SNIFF_BYTES,
    AttachedPost,
    MediaState,
    bytes_match,
    purgeable,
    readable_by,
    readable_by_someone,
    served_as,
    sniffed_type,
)

OWNER, READER = uuid.UUID(int=1), uuid.UUID(int=2)
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=24)
LIVE_POST = AttachedPost(id=uuid.UUID(int=9), author_id=OWNER, live=True, status="visible")
UNATTACHED = MediaState(
    owner_id=OWNER, owner_live=True, status="ready", ready_at=NOW - timedelta(hours=1), gone=False, post=None
)
ATTACHED = dataclasses.replace(UNATTACHED, post=LIVE_POST)


def read(state: MediaState, caller: uuid.UUID = READER, blocked: bool = False) -> bool:
    return readable_by(state, caller, NOW, TTL, hidden_by_author=blocked)


def test_unattached_media_is_its_owners_alone_until_it_expires() -> None:
    assert read(UNATTACHED, OWNER)
    assert not read(UNATTACHED, READER)
    assert not purgeable(UNATTACHED, NOW, TTL)
    expired = dataclasses.replace(UNATTACHED, ready_at=NOW - TTL)
    assert not read(expired, OWNER)
    assert purgeable(expired, NOW, TTL)


def test_attached_media_is_read_by_whom_the_post_shows_to() -> None:
    assert read(ATTACHED, READER)
    assert read(ATTACHED, OWNER)
    assert not read(ATTACHED, READER, blocked=True)
    assert read(ATTACHED, OWNER, blocked=True)  # the author is never blocked from their own post
    # Attached media does not expire: the unattached TTL is for media no post uses.
    old = dataclasses.replace(ATTACHED, ready_at=NOW - timedelta(days=400))
    assert read(old) and not purgeable(old, NOW, TTL)


@pytest.mark.parametrize(
    "post",
    [
        dataclasses.replace(LIVE_POST, live=False),
        dataclasses.replace(LIVE_POST, status="hidden"),
        dataclasses.replace(LIVE_POST, status="removed"),
    ],
    ids=["deleted", "hidden", "removed"],
)
def test_media_of_a_deleted_hidden_or_removed_post_is_nobodys_and_purged(post: AttachedPost) -> None:
    state = dataclasses.replace(ATTACHED, post=post)
    assert not read(state, OWNER)
    assert not read(state, READER)
    assert not readable_by_someone(state, NOW, TTL)
    assert purgeable(state, NOW, TTL)


def test_a_deleted_accounts_media_is_nobodys_and_purged() -> None:
    for state in (UNATTACHED, ATTACHED):
        gone_owner = dataclasses.replace(state, owner_live=False)
        assert not read(gone_owner, OWNER) and not read(gone_owner, READER)
        assert purgeable(gone_owner, NOW, TTL)


def test_pending_or_already_purged_media_is_not_read_nor_purged_again() -> None:
    pending = dataclasses.replace(UNATTACHED, status="pending", ready_at=None)
    assert not read(pending, OWNER) and not purgeable(pending, NOW, TTL)  # the pending cleanup's
    gone = dataclasses.replace(ATTACHED, gone=True, post=dataclasses.replace(LIVE_POST, live=False))
    assert not read(gone, OWNER) and not purgeable(gone, NOW, TTL)


# --- the bytes ----------------------------------------------------------------------------------

SAMPLES = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/gif": b"GIF89a\x01\x00\x01\x00",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "image/avif": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",
    "video/mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41",
    "video/webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm",
    "video/quicktime": b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ",
}


def test_every_accepted_type_has_a_sample_here() -> None:
    assert set(SAMPLES) == ALLOWED_MEDIA_TYPES


@pytest.mark.parametrize("media_type", sorted(SAMPLES))
def test_bytes_match_their_own_type_and_no_other(media_type: str) -> None:
    head = SAMPLES[media_type] + bytes(64)
    assert bytes_match(media_type, head)
    assert sniffed_type(head) == media_type
    assert [t for t in ALLOWED_MEDIA_TYPES if t != media_type and bytes_match(t, head)] == []


@pytest.mark.parametrize(
    "head",
    [
        b"<!doctype html><script>alert(1)</script>",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"%PDF-1.7\n",
        b"",
        b"\xff\xd8",  # too short to be anything
    ],
    ids=["html", "svg", "pdf", "empty", "truncated"],
)
def test_documents_a_browser_might_run_match_no_accepted_type(head: bytes) -> None:
    assert sniffed_type(head) is None
    assert not any(bytes_match(t, head) for t in ALLOWED_MEDIA_TYPES)


def test_an_unknown_declared_type_matches_nothing() -> None:
    assert not bytes_match("image/svg+xml", SAMPLES["image/png"])
    assert SNIFF_BYTES >= 262  # enough for every matcher's window (filetype reads up to 8 KiB)


def test_a_reader_is_served_inline_under_a_name_the_server_made() -> None:
    media_id = uuid.UUID(int=5)
    served = served_as(media_id, "image/webp")
    assert served.content_type == "image/webp"
    assert served.content_disposition == f'inline; filename="{media_id}.webp"'
    # Anything not on the list would be a download, never rendered (defensive: it cannot be uploaded).
    odd = served_as(media_id, "text/html")
    assert odd.content_type == "application/octet-stream"
    assert odd.content_disposition.startswith("attachment;")
