"""Media that disappears, tried over HTTP against the local host as an attacker (or a curious reader)
would: media of a deleted post, of a post a moderator hid, of a deleted account, and media never
attached stop being readable at once and their blobs are purged by the sweep; read URLs live minutes;
completion refuses bytes that are not of the declared type; two posts racing for one media id get a
409, not a 500; every answer says nosniff and personal ones no-store (docs/security.md "Media").

The host runs the media timer every second here (MEDIA_CLEANUP_SCHEDULE), so "after the sweep" is a
poll with a deadline, not a wait for the production schedule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import psycopg
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient

from devhost.host.server import FunctionHost
from shared_code.app_context import AppContext
from tests.support.http_client import Answer, ApiUser
from tests.support.local_host import hosted_app
from tests.support.onboarding import onboard_over_http
from tests.support.polling import eventually

# The first bytes of real files of each kind; storage does not care what follows.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
READ_URL_TTL = timedelta(seconds=300)  # MEDIA_READ_URL_TTL_SECONDS, the production default
SWEEP_DEADLINE = 30.0


@pytest.fixture
async def media_host(
    app_context: AppContext,
    app_settings_values: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[FunctionHost]:
    """The real app behind the local host, with the media timer (cleanup and sweep) every second."""
    settings = {**app_settings_values, "MEDIA_CLEANUP_SCHEDULE": "*/1 * * * * *"}
    async with hosted_app(settings, monkeypatch, tmp_path) as host:
        yield host


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def blobs(app_context: AppContext) -> AsyncIterator[Any]:
    """The media container, as storage itself sees it."""
    settings = app_context.settings
    assert settings.media_storage_connection_string is not None
    async with BlobServiceClient.from_connection_string(
        settings.media_storage_connection_string.get_secret_value()
    ) as service:
        yield service.get_container_client(settings.media_container)


async def blob_exists(blobs: Any, path: str) -> bool:
    try:
        await blobs.get_blob_client(path).get_blob_properties()
    except ResourceNotFoundError:
        return False
    return True


async def user(
    http: aiohttp.ClientSession, host: FunctionHost, state_dir: Path, role: str = "user"
) -> ApiUser:
    return await onboard_over_http(http, host.base_url, state_dir, role=role, prefix="m")


async def upload(
    http: aiohttp.ClientSession, owner: ApiUser, data: bytes, declared: str = "image/png"
) -> tuple[str, str]:
    """Request an upload and PUT the bytes; returns (media id, blob path)."""
    upload = await owner.ok("POST", "/api/media", {"contentType": declared, "sizeBytes": len(data)})
    async with http.put(
        upload["uploadUrl"], data=data, headers={**upload["uploadHeaders"], "Content-Type": declared}
    ) as response:
        assert response.status == 201, await response.text()
    return str(upload["mediaId"]), f"{owner.id}/{upload['mediaId']}"


async def ready_media(http: aiohttp.ClientSession, owner: ApiUser, data: bytes = PNG) -> tuple[str, str, Any]:
    media_id, path = await upload(http, owner, data)
    ready = await owner.ok("POST", f"/api/media/{media_id}/complete")
    return media_id, path, ready


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes, dict[str, str]]:
    async with http.get(url) as response:
        return response.status, await response.read(), {k.lower(): v for k, v in response.headers.items()}


def sas_expiry(url: str) -> datetime:
    return datetime.fromisoformat(parse_qs(urlsplit(url).query)["se"][0].replace("Z", "+00:00"))


def assert_not_found(answer: Answer) -> None:
    assert answer.status == 404, answer
    assert answer.body["type"].endswith("not-found")
    assert "url" not in answer.body


async def purged(database_url: str, media_id: str) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT purged_at IS NOT NULL FROM media_assets WHERE id = %s", (media_id,))
        row = await cur.fetchone()
    return bool(row and row[0])


async def assert_swept(database_url: str, blobs: Any, media_id: str, path: str, old_url: str) -> None:
    """The sweep deletes the blob and marks the row purged; a URL signed before no longer reads."""
    await eventually(lambda: purged(database_url, media_id), bool, timeout=SWEEP_DEADLINE, what="purged")
    assert not await blob_exists(blobs, path)
    async with aiohttp.ClientSession() as http:
        assert (await fetch(http, old_url))[0] == 404


async def test_a_deleted_posts_media_is_refused_at_once_and_its_blob_purged(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path, database_url: str, blobs: Any
) -> None:
    alice, bob = await user(http, media_host, state_dir), await user(http, media_host, state_dir)
    media_id, path, _ = await ready_media(http, alice)
    post = await alice.ok("POST", "/api/posts", {"content": "look", "mediaIds": [media_id]})
    shown = await bob.ok("GET", f"/api/media/{media_id}")
    status, body, headers = await fetch(http, shown["url"])
    assert (status, body) == (200, PNG)
    # What a reader gets is what the server decided, not what the uploader sent.
    assert headers["content-type"] == "image/png"
    assert headers["content-disposition"] == f'inline; filename="{media_id}.png"'

    await alice.ok("DELETE", f"/api/posts/{post['id']}")
    assert_not_found(await bob.call("GET", f"/api/media/{media_id}"))
    assert_not_found(await alice.call("GET", f"/api/media/{media_id}"))
    assert_not_found(await alice.call("POST", f"/api/media/{media_id}/complete"))  # no fresh URL either
    await assert_swept(database_url, blobs, media_id, path, shown["url"])


async def test_media_of_a_post_a_moderator_hid_is_refused_to_everyone_and_purged(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path, database_url: str, blobs: Any
) -> None:
    alice, bob = await user(http, media_host, state_dir), await user(http, media_host, state_dir)
    moderator = await user(http, media_host, state_dir, role="moderator")
    media_id, path, ready = await ready_media(http, alice)
    post = await alice.ok("POST", "/api/posts", {"content": "look", "mediaIds": [media_id]})
    assert (await bob.ok("GET", f"/api/posts/{post['id']}"))["media"][0]["mediaId"] == media_id

    await moderator.ok(
        "POST", f"/api/moderation/posts/{post['id']}/decision", {"action": "hide", "reason": "spam"}
    )
    for reader in (bob, alice, moderator):
        assert_not_found(await reader.call("GET", f"/api/media/{media_id}"))
    assert_not_found(await alice.call("POST", f"/api/media/{media_id}/complete"))
    # The author still sees the hidden post, without a signed URL for its media.
    assert (await alice.ok("GET", f"/api/posts/{post['id']}"))["media"] == []
    await assert_swept(database_url, blobs, media_id, path, ready["url"])


async def test_media_of_a_deleted_account_is_refused_and_purged(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path, database_url: str, blobs: Any
) -> None:
    alice, bob = await user(http, media_host, state_dir), await user(http, media_host, state_dir)
    media_id, path, ready = await ready_media(http, alice)
    await alice.ok("POST", "/api/posts", {"content": "look", "mediaIds": [media_id]})
    # The account deleted as erasure marks it (the row soft-deleted); its media goes with it.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("UPDATE users SET deleted_at = now() WHERE id = %s", (alice.id,))
        await conn.commit()
    assert_not_found(await bob.call("GET", f"/api/media/{media_id}"))
    await assert_swept(database_url, blobs, media_id, path, ready["url"])


@pytest.mark.parametrize(("data", "looks_like"), [(PNG, "image/png"), (HTML, None)], ids=["png", "html"])
async def test_bytes_that_are_not_the_declared_type_are_refused_and_discarded(
    media_host: FunctionHost,
    http: aiohttp.ClientSession,
    state_dir: Path,
    blobs: Any,
    data: bytes,
    looks_like: str | None,
) -> None:
    mallory = await user(http, media_host, state_dir)
    media_id, path = await upload(http, mallory, data, declared="image/jpeg")
    answer = await mallory.call("POST", f"/api/media/{media_id}/complete")
    assert answer.status == 422, answer
    assert answer.body["found"]["bytesLookLike"] == looks_like
    assert "the uploaded bytes are" in answer.body["detail"]
    assert not await blob_exists(blobs, path)
    # Still pending, so it cannot be attached or read.
    assert (await mallory.call("POST", "/api/posts", {"content": "x", "mediaIds": [media_id]})).status == 422
    pending = await mallory.call("GET", f"/api/media/{media_id}")
    assert pending.status == 409, pending
    assert "url" not in pending.body
    # The real thing, declared as what it is, is accepted.
    media_id, _ = await upload(http, mallory, JPEG, declared="image/jpeg")
    assert (await mallory.ok("POST", f"/api/media/{media_id}/complete"))["contentType"] == "image/jpeg"


async def test_read_urls_live_minutes_not_a_day(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path
) -> None:
    alice = await user(http, media_host, state_dir)
    media_id, _, ready = await ready_media(http, alice)
    post = await alice.ok("POST", "/api/posts", {"content": "look", "mediaIds": [media_id]})
    urls = [
        ready["url"],
        (await alice.ok("GET", f"/api/media/{media_id}"))["url"],
        post["media"][0]["url"],
        (await alice.ok("GET", f"/api/posts/{post['id']}"))["media"][0]["url"],
    ]
    now = datetime.now(UTC)
    for url in urls:
        expiry = sas_expiry(url)
        # The configured TTL, rounded up to the minute (and a little for clocks): never hours.
        assert now < expiry <= now + READ_URL_TTL + timedelta(seconds=90), url
        query = parse_qs(urlsplit(url).query)
        assert query["sp"] == ["r"]
        assert query["rsct"] == ["image/png"]


async def test_media_never_attached_expires(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path, database_url: str, blobs: Any
) -> None:
    alice = await user(http, media_host, state_dir)
    media_id, path, ready = await ready_media(http, alice)
    assert (await alice.ok("GET", f"/api/media/{media_id}"))["mediaId"] == media_id
    # Ready for longer than MEDIA_UNATTACHED_TTL_HOURS (24) without a post.
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute(
            "UPDATE media_assets SET ready_at = now() - interval '25 hours' WHERE id = %s", (media_id,)
        )
        await conn.commit()
    assert_not_found(await alice.call("GET", f"/api/media/{media_id}"))
    assert_not_found(await alice.call("POST", f"/api/media/{media_id}/complete"))
    assert (await alice.call("POST", "/api/posts", {"content": "x", "mediaIds": [media_id]})).status == 422
    await assert_swept(database_url, blobs, media_id, path, ready["url"])


async def test_media_is_read_only_by_whom_its_post_shows_to(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path
) -> None:
    alice, bob, carol = [await user(http, media_host, state_dir) for _ in range(3)]
    media_id, _, _ = await ready_media(http, alice)
    # Unattached: the owner's alone.
    assert_not_found(await bob.call("GET", f"/api/media/{media_id}"))
    post = await alice.ok("POST", "/api/posts", {"content": "look", "mediaIds": [media_id]})
    assert (await bob.ok("GET", f"/api/media/{media_id}"))["mediaId"] == media_id
    # A reader the author blocked sees neither the post nor its media.
    await alice.ok("PUT", f"/api/users/{carol.id}/block")
    assert (await carol.call("GET", f"/api/posts/{post['id']}")).status == 404
    assert_not_found(await carol.call("GET", f"/api/media/{media_id}"))
    assert_not_found(await bob.call("GET", "/api/media/00000000-0000-4000-8000-000000000000"))


async def test_two_posts_racing_for_one_media_id_get_a_409_not_a_500(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path
) -> None:
    alice = await user(http, media_host, state_dir)
    for _ in range(3):
        media_id, _, _ = await ready_media(http, alice)
        answers = await asyncio.gather(
            *(
                alice.call("POST", "/api/posts", {"content": f"race {n}", "mediaIds": [media_id]})
                for n in range(4)
            )
        )
        statuses = sorted(a.status for a in answers)
        assert statuses.count(201) == 1, answers
        # The losers: 409 when they raced the winner's insert, 422 when they came after its commit.
        assert set(statuses) - {201} <= {409, 422}, answers


async def test_every_answer_says_nosniff_and_personal_ones_no_store(
    media_host: FunctionHost, http: aiohttp.ClientSession, state_dir: Path
) -> None:
    alice = await user(http, media_host, state_dir)
    media_id, _, _ = await ready_media(http, alice)
    personal = [
        await alice.call("GET", "/api/users/me"),
        await alice.call("GET", f"/api/media/{media_id}"),
        await alice.call("GET", "/api/feed"),
        await alice.call("GET", "/api/media/00000000-0000-4000-8000-000000000000"),  # a problem too
    ]
    for answer in personal:
        assert answer.header("x-content-type-options") == "nosniff", answer
        assert answer.header("cache-control") == "no-store", answer
    anonymous = ApiUser(http, media_host.base_url, token="")
    for path in ("/api/health", "/api/openapi.json"):
        async with http.get(media_host.base_url + path) as response:
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    unauthenticated = await anonymous.call("GET", "/api/users/me")
    assert unauthenticated.status == 401
    assert unauthenticated.header("x-content-type-options") == "nosniff"
