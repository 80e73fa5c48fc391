"""Media through the real HTTP functions and real HTTP to Azurite: request an upload, PUT the
bytes to the signed URL, complete, read through the signed read URL, attach to a post; the
refusals; the cleanup of stale pending uploads; and the user delegation (managed identity)
path against an Azurite that speaks HTTPS and OAuth."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import ipaddress
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from shared_code.adapters.media_signing import MediaSigner, MediaUrls
from shared_code.bootstrap import use_app_context
from shared_code.services.media import delete_stale_pending, purge_unreadable_media
from tests.support.api import ApiClient, Response
from tests.support.chorus import Chorus
from tests.support.outbox import OwnerDb
from tests.support.problems import assert_problem, error_fields

if TYPE_CHECKING:
    from devhost.services.process import ManagedProcess
    from shared_code.app_context import AppContext

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # not a real image; storage does not care
BLOB_TYPE = {"x-ms-blob-type": "BlockBlob"}


@pytest.fixture
async def container(app_context: AppContext) -> ContainerClient:
    """The media container (the local stack creates it; the test services start empty)."""
    client = app_context.blob_service.get_container_client(app_context.settings.media_container)
    with contextlib.suppress(ResourceExistsError):
        await client.create_container()
    return client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def request_upload(
    api: ApiClient,
    subject: str,
    content_type: str = "image/png",
    size: int = len(PNG),
    headers: dict[str, str] | None = None,
) -> Response:
    return await api.call(
        "POST",
        "/api/media",
        subject=subject,
        headers=headers,
        json_body={"contentType": content_type, "sizeBytes": size},
    )


async def put(
    http: aiohttp.ClientSession,
    url: str,
    data: bytes,
    content_type: str = "image/png",
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    headers = {**BLOB_TYPE, "Content-Type": content_type}
    async with http.put(url, data=data, headers=headers, ssl=ssl_context or True) as r:
        return r.status


async def get(
    http: aiohttp.ClientSession, url: str, ssl_context: ssl.SSLContext | None = None
) -> tuple[int, bytes, str | None]:
    async with http.get(url, ssl=ssl_context or True) as r:
        return r.status, await r.read(), r.headers.get("Content-Type")


async def status_of(db: OwnerDb, media_id: str) -> tuple[str, bool]:
    row = await db.row("SELECT status, deleted_at IS NOT NULL FROM media_assets WHERE id = %s", (media_id,))
    assert row is not None
    return row[0], row[1]


async def blob_exists(container: ContainerClient, path: str) -> bool:
    return bool(await container.get_blob_client(path).exists())


async def test_upload_through_the_signed_url_then_complete_read_and_post(
    api: ApiClient, chorus: Chorus, db: OwnerDb, container: ContainerClient, http: aiohttp.ClientSession
) -> None:
    alice, _bob = await chorus.users("alice", "bob")
    r = await request_upload(api, "alice")
    assert r.status == 201, r
    upload = r.json
    media_id = upload["mediaId"]
    assert r.headers["location"] == f"/api/media/{media_id}"
    assert upload["status"] == "pending"
    assert upload["uploadHeaders"] == {"x-ms-blob-type": "BlockBlob", "Content-Type": "image/png"}
    # The server chose the path: the caller's id, then the media id.
    url = urlsplit(upload["uploadUrl"])
    assert url.path.endswith(f"/{container.container_name}/{alice['id']}/{media_id}")
    assert parse_qs(url.query)["sp"] == ["c"]
    expires_at = datetime.fromisoformat(upload["expiresAt"])
    assert timedelta(minutes=9) < expires_at - datetime.now(UTC) <= timedelta(minutes=10)
    assert await status_of(db, media_id) == ("pending", False)

    assert await put(http, upload["uploadUrl"], PNG) == 201
    # The upload URL can neither read the blob nor replace it.
    status, _, _ = await get(http, upload["uploadUrl"])
    assert status == 403
    assert await put(http, upload["uploadUrl"], b"something else") == 403

    r = await api.call("POST", f"/api/media/{media_id}/complete", subject="alice")
    assert r.status == 200, r
    ready = r.json
    assert (ready["mediaId"], ready["status"], ready["contentType"], ready["sizeBytes"]) == (
        media_id,
        "ready",
        "image/png",
        len(PNG),
    )
    assert parse_qs(urlsplit(ready["url"]).query)["sp"] == ["r"]
    assert await get(http, ready["url"]) == (200, PNG, "image/png")
    assert await status_of(db, media_id) == ("ready", False)
    # Completing again is the same answer.
    again = await api.call("POST", f"/api/media/{media_id}/complete", subject="alice")
    assert again.status == 200, again
    assert again.json["mediaId"] == media_id
    assert again.json["status"] == "ready"

    r = await api.call(
        "POST", "/api/posts", subject="alice", json_body={"content": "look", "mediaIds": [media_id]}
    )
    assert r.status == 201, r
    assert [(m["mediaId"], m["contentType"]) for m in r.json["media"]] == [(media_id, "image/png")]
    r = await api.call("GET", f"/api/posts/{r.json['id']}", subject="bob")
    assert r.status == 200, r
    [shown] = r.json["media"]
    assert shown["mediaId"] == media_id
    assert urlsplit(shown["url"]).path == urlsplit(ready["url"]).path
    assert await get(http, shown["url"]) == (200, PNG, "image/png")
    # A signature that was tampered with reads nothing.
    widened = shown["url"].replace("sp=r&", "sp=rw&")
    assert widened != shown["url"]
    status, _, _ = await get(http, widened)
    assert status == 403


async def test_a_retried_request_with_the_same_idempotency_key_gets_the_same_upload(
    api: ApiClient, chorus: Chorus, db: OwnerDb, container: ContainerClient
) -> None:
    await chorus.user("alice")
    first = await request_upload(api, "alice", headers={"Idempotency-Key": "upload-1"})
    second = await request_upload(api, "alice", headers={"Idempotency-Key": "upload-1"})
    assert (first.status, second.status) == (201, 201)
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json == first.json
    assert await db.count("media_assets") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contentType": "image/svg+xml", "sizeBytes": 100}, "contentType"),
        ({"contentType": "text/html", "sizeBytes": 100}, "contentType"),
        ({"contentType": "image/png", "sizeBytes": 50 * 1024 * 1024 + 1}, "sizeBytes"),  # MEDIA_MAX_BYTES
        ({"contentType": "image/png", "sizeBytes": 0}, "sizeBytes"),
        ({"contentType": "image/png", "sizeBytes": 100, "blobPath": "x/y"}, "blobPath"),
    ],
    ids=["svg", "html", "too-large", "empty", "unknown-field"],
)
async def test_uploads_outside_the_rules_are_422_and_record_nothing(
    api: ApiClient, chorus: Chorus, db: OwnerDb, body: dict[str, Any], field: str
) -> None:
    await chorus.user("alice")
    r = await api.call("POST", "/api/media", subject="alice", json_body=body)
    problem = assert_problem(r, 422, "validation-failed")
    assert field in (error_fields(r) if "errors" in problem else {problem.get("field")}), problem
    assert await db.count("media_assets") == 0


async def test_completing_before_the_upload_or_with_other_bytes_keeps_it_pending(
    api: ApiClient, chorus: Chorus, db: OwnerDb, container: ContainerClient, http: aiohttp.ClientSession
) -> None:
    alice = await chorus.user("alice")
    upload = (await request_upload(api, "alice")).json
    media_id, path = upload["mediaId"], f"{alice['id']}/{upload['mediaId']}"
    complete = f"/api/media/{media_id}/complete"

    problem = assert_problem(await api.call("POST", complete, subject="alice"), 409, "conflict")
    assert "upload the bytes first" in problem["detail"]
    assert await status_of(db, media_id) == ("pending", False)

    # Two bytes more than declared: 422 naming both sizes; the blob is discarded.
    assert await put(http, upload["uploadUrl"], PNG + b"!!") == 201
    problem = assert_problem(await api.call("POST", complete, subject="alice"), 422, "validation-failed")
    assert problem["declared"] == {"contentType": "image/png", "sizeBytes": len(PNG)}
    assert problem["found"] == {"contentType": "image/png", "sizeBytes": len(PNG) + 2}
    assert f"declared {len(PNG)}, uploaded {len(PNG) + 2}" in problem["detail"]
    assert await status_of(db, media_id) == ("pending", False)
    assert not await blob_exists(container, path)

    # The declared size but another type.
    assert await put(http, upload["uploadUrl"], PNG, content_type="image/jpeg") == 201
    problem = assert_problem(await api.call("POST", complete, subject="alice"), 422, "validation-failed")
    assert problem["found"] == {"contentType": "image/jpeg", "sizeBytes": len(PNG)}
    assert "contentType: declared image/png, uploaded image/jpeg" in problem["detail"]
    assert await status_of(db, media_id) == ("pending", False)

    # A pending asset cannot go into a post.
    r = await api.call(
        "POST", "/api/posts", subject="alice", json_body={"content": "x", "mediaIds": [media_id]}
    )
    assert assert_problem(r, 422, "validation-failed")["mediaIds"] == [media_id]

    # The right bytes, through the same URL, complete it.
    assert await put(http, upload["uploadUrl"], PNG) == 201
    r = await api.call("POST", complete, subject="alice")
    assert r.status == 200, r
    assert await status_of(db, media_id) == ("ready", False)


async def test_someone_elses_media_cannot_be_completed_or_posted(
    api: ApiClient, chorus: Chorus, container: ContainerClient, http: aiohttp.ClientSession
) -> None:
    await chorus.users("alice", "bob")
    upload = (await request_upload(api, "alice")).json
    media_id = upload["mediaId"]
    assert await put(http, upload["uploadUrl"], PNG) == 201

    assert_problem(await api.call("POST", f"/api/media/{media_id}/complete", subject="bob"), 404, "not-found")
    assert_problem(
        await api.call("POST", f"/api/media/{uuid.uuid4()}/complete", subject="bob"), 404, "not-found"
    )
    assert (await api.call("POST", f"/api/media/{media_id}/complete", subject="alice")).status == 200
    assert_problem(await api.call("POST", f"/api/media/{media_id}/complete", subject="bob"), 404, "not-found")
    r = await api.call(
        "POST", "/api/posts", subject="bob", json_body={"content": "mine", "mediaIds": [media_id]}
    )
    assert assert_problem(r, 422, "validation-failed")["mediaIds"] == [media_id]


async def test_the_cleanup_removes_stale_pending_uploads_and_their_blobs_only(
    api: ApiClient,
    chorus: Chorus,
    db: OwnerDb,
    app_context: AppContext,
    container: ContainerClient,
    http: aiohttp.ClientSession,
) -> None:
    alice = await chorus.user("alice")

    async def uploaded(
        *, put_bytes: bool = True, complete: bool = False, age: timedelta | None = None
    ) -> str:
        upload = (await request_upload(api, "alice")).json
        if put_bytes:
            assert await put(http, upload["uploadUrl"], PNG) == 201
        if complete:
            assert (
                await api.call("POST", f"/api/media/{upload['mediaId']}/complete", subject="alice")
            ).status == 200
        if age is not None:
            await db.execute(
                "UPDATE media_assets SET created_at = now() - %s WHERE id = %s", (age, upload["mediaId"])
            )
        return str(upload["mediaId"])

    stale_with_blob = await uploaded(age=timedelta(hours=2))
    stale_without_blob = await uploaded(put_bytes=False, age=timedelta(minutes=61))
    fresh = await uploaded(age=timedelta(minutes=59))
    old_ready = await uploaded(complete=True, age=timedelta(days=3))

    async def clean() -> int:
        return await delete_stale_pending(
            app_context.pg_pool, app_context.blob_service, container.container_name, timedelta(minutes=60)
        )

    assert await clean() == 2
    assert await status_of(db, stale_with_blob) == ("pending", True)
    assert await status_of(db, stale_without_blob) == ("pending", True)
    assert not await blob_exists(container, f"{alice['id']}/{stale_with_blob}")
    assert await status_of(db, fresh) == ("pending", False)
    assert await blob_exists(container, f"{alice['id']}/{fresh}")
    assert await status_of(db, old_ready) == ("ready", False)
    assert await blob_exists(container, f"{alice['id']}/{old_ready}")
    # Idempotent, and what was cleaned up is gone for its owner too.
    assert await clean() == 0
    # The timer function does the same with the configured age (MEDIA_PENDING_MAX_AGE_MINUTES: 60).
    stale_again = await uploaded(age=timedelta(minutes=90))
    [timer] = [spec for spec in api.specs if spec.name == "clean_up_pending_media"]
    assert timer.trigger["schedule"] == "%MEDIA_CLEANUP_SCHEDULE%"
    await timer.user_function(timer=None)
    assert await status_of(db, stale_again) == ("pending", True)
    assert await status_of(db, fresh) == ("pending", False)
    assert_problem(
        await api.call("POST", f"/api/media/{stale_with_blob}/complete", subject="alice"), 404, "not-found"
    )


async def test_the_sweep_purges_each_unreadable_asset_once_across_two_instances_and_replays(
    api: ApiClient,
    chorus: Chorus,
    db: OwnerDb,
    app_context: AppContext,
    container: ContainerClient,
    http: aiohttp.ClientSession,
) -> None:
    alice = await chorus.user("alice")

    async def ready() -> str:
        upload = (await request_upload(api, "alice")).json
        assert await put(http, upload["uploadUrl"], PNG) == 201
        assert (
            await api.call("POST", f"/api/media/{upload['mediaId']}/complete", subject="alice")
        ).status == 200
        return str(upload["mediaId"])

    async def posted(media_ids: list[str]) -> str:
        r = await api.call(
            "POST", "/api/posts", subject="alice", json_body={"content": "x", "mediaIds": media_ids}
        )
        assert r.status == 201, r
        return str(r.json["id"])

    doomed_post = await posted([await ready() for _ in range(3)])
    kept = [await ready() for _ in range(2)]
    await posted(kept[:1])  # attached to a visible post; kept[1] unattached but young
    expired = [await ready() for _ in range(2)]
    await db.execute(
        "UPDATE media_assets SET ready_at = now() - interval '25 hours' WHERE id = ANY(%s::uuid[])",
        (expired,),
    )
    assert (await api.call("DELETE", f"/api/posts/{doomed_post}", subject="alice")).status == 204
    doomed_rows = await db.rows("SELECT media_id::text FROM post_media WHERE post_id = %s", (doomed_post,))
    doomed = [r[0] for r in doomed_rows] + expired
    # One blob already gone (a sweep that deleted it and crashed before its commit): still purged.
    await container.get_blob_client(f"{alice['id']}/{doomed[0]}").delete_blob()

    async def sweep() -> int:
        return await purge_unreadable_media(
            app_context.pg_pool, app_context.blob_service, container.container_name, timedelta(hours=24)
        )

    first, second = await asyncio.gather(sweep(), sweep())  # two instances at once
    assert first + second == len(doomed)
    assert await sweep() == 0  # a replay finds nothing left
    for media_id in doomed:
        row = await db.row("SELECT purged_at IS NOT NULL FROM media_assets WHERE id = %s", (media_id,))
        assert row == (True,)
        assert not await blob_exists(container, f"{alice['id']}/{media_id}")
    for media_id in kept:
        row = await db.row("SELECT purged_at IS NULL FROM media_assets WHERE id = %s", (media_id,))
        assert row == (True,)
        assert await blob_exists(container, f"{alice['id']}/{media_id}")


# --- the managed identity: user delegation SAS ----------------------------------------------------
# Azurite issues user delegation keys to bearer tokens when started with `--oauth basic`, which
# needs HTTPS. Its "basic" OAuth checks a token's issuer, audience and lifetime, not its
# signature, so an unsigned token from a stand-in credential is accepted.


@dataclasses.dataclass
class OAuthAzurite:
    process: ManagedProcess
    port: int
    ca_file: Path

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/devstoreaccount1"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory: pytest.TempPathFactory, service_log_dir: Path) -> Iterator[OAuthAzurite]:
    from devhost.services.process import free_port, node_bin, port_accepts, start_process

    cert_path, key_path = _self_signed_certificate(tmp_path_factory.mktemp("azurite-tls"))
    port = free_port()
    argv = [
        str(node_bin("azurite-blob")),
        "--silent",
        "--inMemoryPersistence",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--oauth",
        "basic",
        "--cert",
        str(cert_path),
        "--key",
        str(key_path),
    ]
    process = start_process("azurite-oauth", argv, service_log_dir / "azurite-oauth.log")
    try:
        process.wait_until(lambda: port_accepts("127.0.0.1", port), 30)
        yield OAuthAzurite(process, port, cert_path)
    finally:
        process.stop()


class StandInIdentity:
    """An async token credential like the managed identity's, with an unsigned token."""

    def __init__(self) -> None:
        self.requests = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.requests += 1
        now, tenant = int(time.time()), str(uuid.UUID(int=8))

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        claims = {
            "aud": "https://storage.azure.com",
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now - 60,
            "exp": now + 3600,
            "oid": str(uuid.UUID(int=7)),
            "tid": tenant,
        }
        return AccessToken(f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.", now + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> StandInIdentity:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


async def test_with_the_managed_identity_uploads_and_reads_use_user_delegation_sas(
    api: ApiClient,
    chorus: Chorus,
    db: OwnerDb,
    app_context: AppContext,
    oauth_azurite: OAuthAzurite,
    http: aiohttp.ClientSession,
) -> None:
    """The whole flow through the HTTP functions, with the app's blob client on a bearer token
    (as with MediaStorage__blobServiceUri in Azure): no account key anywhere."""
    identity = StandInIdentity()
    blob_service = BlobServiceClient(
        oauth_azurite.endpoint, credential=identity, connection_verify=str(oauth_azurite.ca_file)
    )
    tls = oauth_azurite.ssl_context()
    try:
        container = blob_service.get_container_client(app_context.settings.media_container)
        with contextlib.suppress(ResourceExistsError):
            await container.create_container()
        settings = app_context.settings.model_copy(
            update={"media_storage_connection_string": None, "media_storage_blob_uri": oauth_azurite.endpoint}
        )
        signer = MediaSigner.from_settings(settings, blob_service)
        assert signer.uses_identity
        await signer.warm_up()
        use_app_context(
            dataclasses.replace(
                app_context, settings=settings, blob_service=blob_service, media_urls=MediaUrls(signer)
            )
        )

        await chorus.user("alice")
        upload = (await request_upload(api, "alice")).json
        sas = parse_qs(urlsplit(upload["uploadUrl"]).query)
        assert sas["sp"] == ["c"]
        assert sas["spr"] == ["https"]
        assert sas["skoid"] == [str(uuid.UUID(int=7))]  # signed with a delegation key, not an account key
        assert await put(http, upload["uploadUrl"], PNG, ssl_context=tls) == 201
        status, _, _ = await get(http, upload["uploadUrl"], ssl_context=tls)
        assert status == 403

        r = await api.call("POST", f"/api/media/{upload['mediaId']}/complete", subject="alice")
        assert r.status == 200, r
        assert parse_qs(urlsplit(r.json["url"]).query)["skoid"] == [str(uuid.UUID(int=7))]
        assert await get(http, r.json["url"], ssl_context=tls) == (200, PNG, "image/png")
        post = await api.call(
            "POST",
            "/api/posts",
            subject="alice",
            json_body={"content": "via identity", "mediaIds": [upload["mediaId"]]},
        )
        assert post.status == 201, post
        assert await get(http, post.json["media"][0]["url"], ssl_context=tls) == (200, PNG, "image/png")
        assert await status_of(db, upload["mediaId"]) == ("ready", False)
        assert identity.requests >= 1
    finally:
        use_app_context(app_context)
        await blob_service.close()
