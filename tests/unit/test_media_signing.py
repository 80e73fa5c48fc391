"""Media signing without storage: what the SAS query strings allow, for which blob and how long;
the user delegation key's caching and refresh; the upload request's allow-list and bounds."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.storage.blob import UserDelegationKey
from pydantic import ValidationError

from shared_code.adapters.media_signing import (
    DELEGATION_KEY_LIFETIME,
    MediaSigner,
    MediaSigningUnavailable,
    MediaUrls,
)
from shared_code.domain.events import MediaRef
from shared_code.domain.limits import ALLOWED_MEDIA_TYPES, MEDIA_SIZE_LIMIT
from shared_code.schemas.media import RequestUpload

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key: public, not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LOCAL_ENDPOINT = f"http://127.0.0.1:10000/{ACCOUNT}/"
PATH = f"{uuid.UUID(int=1)}/{uuid.UUID(int=2)}"


def ref(path: str = PATH, content_type: str = "image/png") -> MediaRef:
    return MediaRef(
        media_id=uuid.UUID(path.rsplit("/", 1)[-1]) if "-" in path else uuid.UUID(int=9),
        content_type=content_type,
        blob_path=path,
    )


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def key_signer(clock: Clock, endpoint: str = LOCAL_ENDPOINT) -> MediaSigner:
    return MediaSigner(
        account_name=ACCOUNT,
        blob_endpoint=endpoint,
        container="media",
        upload_ttl=timedelta(minutes=10),
        read_ttl=timedelta(minutes=5),
        account_key=KEY,
        clock=clock,
    )


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC)


def test_an_upload_url_may_only_create_that_one_blob_for_a_few_minutes() -> None:
    clock = Clock(at("2026-03-01T10:17:42.123456"))
    upload = key_signer(clock).upload_url(PATH)
    parts = urlsplit(upload.url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://127.0.0.1:10000"
    assert parts.path == f"/{ACCOUNT}/media/{PATH}"
    sas = query(upload.url)
    assert sas["sp"] == "c"  # create only: no read, write (overwrite), delete or list
    assert sas["sr"] == "b"  # one blob, not the container
    assert sas["se"] == "2026-03-01T10:27:42Z"
    assert upload.expires_at == at("2026-03-01T10:27:42")
    assert "spr" not in sas  # Azurite speaks plain HTTP
    assert sas["sig"]


def test_a_read_url_is_read_only_for_one_blob_for_minutes_and_stable_within_the_minute() -> None:
    clock = Clock(at("2026-03-01T10:17:42"))
    signer = key_signer(clock)
    read = signer.read_url(ref())
    sas = query(read.url)
    assert sas["sp"] == "r"
    assert sas["sr"] == "b"
    assert urlsplit(read.url).path == f"/{ACCOUNT}/media/{PATH}"
    # The configured 5 minutes, rounded up to a minute boundary: never a day.
    assert read.expires_at == at("2026-03-01T10:23:00")
    assert sas["se"] == "2026-03-01T10:23:00Z"
    clock.now = at("2026-03-01T10:17:59")
    assert signer.read_url(ref()).url == read.url
    assert MediaUrls(signer).url(ref()) == read.url
    clock.now = at("2026-03-01T10:18:00")
    assert signer.read_url(ref()).url != read.url
    assert signer.read_url(ref(f"{uuid.UUID(int=1)}/{uuid.UUID(int=3)}")).url != read.url


def test_a_read_url_serves_the_type_and_disposition_the_server_decided() -> None:
    signer = key_signer(Clock(at("2026-03-01T10:17:42")))
    sas = query(signer.read_url(ref(content_type="video/mp4")).url)
    assert sas["rsct"] == "video/mp4"
    assert sas["rscd"] == f'inline; filename="{uuid.UUID(int=2)}.mp4"'
    assert sas["rscc"] == "private, max-age=300"  # no cache keeps it longer than the URL lives


def test_over_https_the_sas_refuses_plain_http() -> None:
    signer = key_signer(Clock(at("2026-03-01T10:00:00")), endpoint="https://chorus.blob.core.windows.net/")
    assert query(signer.upload_url(PATH).url)["spr"] == "https"
    assert signer.read_url(ref()).url.startswith(f"https://chorus.blob.core.windows.net/media/{PATH}?")


def test_a_signer_takes_exactly_one_way_to_sign() -> None:
    common = {
        "account_name": ACCOUNT,
        "blob_endpoint": LOCAL_ENDPOINT,
        "container": "media",
        "upload_ttl": timedelta(minutes=10),
        "read_ttl": timedelta(hours=1),
    }

    async def source(start: datetime, expiry: datetime) -> UserDelegationKey:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="not both"):
        MediaSigner(**common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        MediaSigner(**common, account_key=KEY, key_source=source)  # type: ignore[arg-type]


# --- user delegation keys (the managed identity in Azure) ---------------------------------------


class KeySource:
    """Stands in for BlobServiceClient.get_user_delegation_key; counts calls, can fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[datetime, datetime]] = []
        self.fail = False

    async def __call__(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        self.calls.append((start, expiry))
        if self.fail:
            raise OSError("identity endpoint unreachable")
        key = UserDelegationKey()  # type: ignore[no-untyped-call]
        key.signed_oid, key.signed_tid = str(uuid.UUID(int=7)), str(uuid.UUID(int=8))
        key.signed_start = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_expiry = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = base64.b64encode(f"key-{len(self.calls)}".encode()).decode()
        return key


def identity_signer(clock: Clock, source: KeySource) -> MediaSigner:
    return MediaSigner(
        account_name="chorus",
        blob_endpoint="https://chorus.blob.core.windows.net/",
        container="media",
        upload_ttl=timedelta(minutes=10),
        read_ttl=timedelta(hours=24),
        key_source=source,
        clock=clock,
    )


async def test_a_delegation_key_is_fetched_once_and_signs_without_io() -> None:
    clock, source = Clock(at("2026-03-01T10:00:00")), KeySource()
    signer = identity_signer(clock, source)
    await signer.warm_up()
    assert len(source.calls) == 1
    start, expiry = source.calls[0]
    assert start <= clock.now
    assert expiry - clock.now == DELEGATION_KEY_LIFETIME <= timedelta(days=7)
    urls = {signer.read_url(ref(f"{n}/x")).url for n in range(100)} | {signer.upload_url("a/b").url}
    await signer.ensure_fresh()
    assert len(urls) == 101
    assert len(source.calls) == 1
    sas = query(signer.read_url(ref()).url)
    assert sas["sp"] == "r"
    assert sas["skoid"] == str(uuid.UUID(int=7))
    assert sas["sktid"] == str(uuid.UUID(int=8))
    assert sas["spr"] == "https"


async def test_a_delegation_key_is_refreshed_well_before_a_sas_could_outlive_it() -> None:
    clock, source = Clock(at("2026-03-01T10:00:00")), KeySource()
    signer = identity_signer(clock, source)
    await signer.ensure_fresh()
    key_expiry = source.calls[0][1]
    # Two days before the key expires nothing happens...
    clock.now = key_expiry - timedelta(days=2)
    await signer.ensure_fresh()
    assert len(source.calls) == 1
    # ...but a day before (less than the longest read SAS plus the margins) a new key is fetched.
    clock.now = key_expiry - timedelta(hours=26)
    await signer.ensure_fresh()
    assert len(source.calls) == 2
    assert query(signer.read_url(ref()).url)["ske"] == source.calls[1][1].strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_failed_refresh_keeps_a_usable_key_and_is_a_503_without_one() -> None:
    clock, source = Clock(at("2026-03-01T10:00:00")), KeySource()
    signer = identity_signer(clock, source)
    source.fail = True
    await signer.warm_up()  # logged, not raised: the app still starts
    with pytest.raises(MediaSigningUnavailable):
        await signer.ensure_fresh()
    with pytest.raises(MediaSigningUnavailable):
        signer.read_url(ref())
    source.fail = False
    await signer.ensure_fresh()
    first = signer.read_url(ref()).url
    key_expiry = source.calls[-1][1]
    source.fail = True
    clock.now = key_expiry - timedelta(hours=30)  # refresh due, current key still usable
    await signer.ensure_fresh()
    assert query(signer.read_url(ref()).url)["skoid"] == query(first)["skoid"]
    clock.now = key_expiry - timedelta(hours=20)  # a 25-hour read SAS would outlive the key
    with pytest.raises(MediaSigningUnavailable):
        await signer.ensure_fresh()


async def test_reading_with_an_ageing_key_refreshes_it_in_the_background() -> None:
    clock, source = Clock(at("2026-03-01T10:00:00")), KeySource()
    signer = identity_signer(clock, source)
    await signer.ensure_fresh()
    clock.now = source.calls[0][1] - timedelta(hours=30)
    old = signer.read_url(ref()).url  # still signs with the current key, starts one refresh
    signer.read_url(ref())
    background = signer._background
    assert background is not None
    await asyncio.wait_for(background, timeout=5)
    assert len(source.calls) == 2
    assert query(signer.read_url(ref()).url)["sig"] != query(old)["sig"]


# --- the upload request ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(ALLOWED_MEDIA_TYPES))
def test_every_allowed_type_is_accepted(content_type: str) -> None:
    body = RequestUpload.model_validate({"contentType": content_type.upper(), "sizeBytes": 1})
    assert body.content_type == content_type


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contentType": "image/svg+xml", "sizeBytes": 10}, "contentType"),
        ({"contentType": "text/html", "sizeBytes": 10}, "contentType"),
        ({"contentType": "application/octet-stream", "sizeBytes": 10}, "contentType"),
        ({"contentType": "image/png; charset=utf-8", "sizeBytes": 10}, "contentType"),
        ({"contentType": "", "sizeBytes": 10}, "contentType"),
        ({"contentType": "image/png", "sizeBytes": 0}, "sizeBytes"),
        ({"contentType": "image/png", "sizeBytes": -1}, "sizeBytes"),
        ({"contentType": "image/png", "sizeBytes": "10"}, "sizeBytes"),
        ({"contentType": "image/png", "sizeBytes": 1.5}, "sizeBytes"),
        ({"contentType": "image/png", "sizeBytes": True}, "sizeBytes"),
        ({"contentType": "image/png", "sizeBytes": MEDIA_SIZE_LIMIT + 1}, "sizeBytes"),
        ({"contentType": "image/png"}, "sizeBytes"),
        ({"contentType": "image/png", "sizeBytes": 10, "blobPath": "x"}, "blobPath"),
    ],
)
def test_upload_requests_outside_the_contract_are_refused(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RequestUpload.model_validate(body)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}
