"""Signed URLs for the private media container.

Two kinds, each for one blob only:

- an upload URL: create-only (`sp=c`), short-lived. It cannot read, list, delete or
  overwrite: once the blob exists a second PUT is refused, so the bytes `complete`
  checked are the bytes that stay.
- a read URL: read-only (`sp=r`), signed at each read for MEDIA_READ_URL_TTL_SECONDS (minutes),
  so media of a deleted or hidden post stops being reachable soon after: nothing stores a read URL
  (posts, events and Cosmos DB documents carry the blob path, and readers sign when they serve).
  Its expiry is rounded up to the minute, so the same blob gets the same URL for up to a minute and
  caches still work. It carries the server's response headers (rsct, rscd, rscc): the type and
  disposition the server decided at completion, and a cache lifetime no longer than the URL's.

Locally (a connection string with an AccountKey, e.g. Azurite) the SAS is signed with the
account key. In Azure (`MediaStorage__blobServiceUri`, managed identity) it is a user
delegation SAS: the key comes from `get_user_delegation_key`, is cached, and is refreshed
well before a SAS made from it could outlive it. Signing itself never does I/O; only
`refresh()` does, and it is awaited when the cached key is missing or getting old (or run
in the background when a synchronous read finds the key getting old).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from azure.storage.blob import BlobSasPermissions, UserDelegationKey, generate_blob_sas
from azure.storage.blob.aio import BlobServiceClient

from shared_code.domain.errors import DomainError
from shared_code.domain.events import MediaRef
from shared_code.domain.media_rules import served_as
from shared_code.settings import Settings

log = logging.getLogger("chorus.media")

# A user delegation key may live at most 7 days; ask for a little less, starting a little in the
# past so a clock that runs slightly ahead of the service's does not make it "not yet valid".
DELEGATION_KEY_LIFETIME = timedelta(days=7) - timedelta(minutes=30)
DELEGATION_KEY_BACKDATE = timedelta(minutes=5)
# A key is used only while every SAS made from it expires this long before the key does...
KEY_SAFETY_MARGIN = timedelta(minutes=5)
# ...and a new key is fetched this long before the current one stops being usable.
KEY_REFRESH_AHEAD = timedelta(hours=12)
# Read URLs expire on a minute boundary: stable for up to this long.
READ_EXPIRY_GRANULARITY = timedelta(minutes=1)
# How long start-up (and a background refresh) waits for a delegation key.
WARM_UP_TIMEOUT_SECONDS = 10

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class MediaSigningUnavailable(DomainError):
    """No usable user delegation key: media URLs cannot be signed right now."""

    status, slug, title = 503, "unavailable", "Service unavailable"


# Fetches a user delegation key valid from start to expiry: the app's
# `azure.storage.blob.aio.BlobServiceClient.get_user_delegation_key`.
DelegationKeySource = Callable[[datetime, datetime], Awaitable[UserDelegationKey]]


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: datetime


class MediaSigner:
    """Signs upload and read URLs for single blobs of one container."""

    def __init__(
        self,
        *,
        account_name: str,
        blob_endpoint: str,
        container: str,
        upload_ttl: timedelta,
        read_ttl: timedelta,
        account_key: str | None = None,
        key_source: DelegationKeySource | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if (account_key is None) == (key_source is None):
            raise ValueError("a MediaSigner signs with an account key or with user delegation keys, not both")
        self.account_name = account_name
        self.container = container
        self.upload_ttl = upload_ttl
        self.read_ttl = read_ttl
        self._base = f"{blob_endpoint.rstrip('/')}/{container}"
        # Over HTTPS (Azure) the SAS says so, so it is refused over plain HTTP; Azurite serves HTTP.
        self._protocol = "https" if blob_endpoint.lower().startswith("https://") else None
        self._account_key = account_key
        self._key_source = key_source
        self._clock = clock
        self._key: UserDelegationKey | None = None
        self._key_expiry: datetime | None = None
        self._refresh_lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, blob_service: BlobServiceClient, clock: Clock = utc_now
    ) -> MediaSigner:
        """The app's signer: the account key of a MediaStorage connection string, or the managed
        identity's user delegation keys with MediaStorage__blobServiceUri."""
        account_key: str | None = None
        key_source: DelegationKeySource | None = None
        if settings.media_storage_connection_string is None:
            key_source = blob_service.get_user_delegation_key
        else:
            # A client built from a connection string with an AccountKey (UseDevelopmentStorage=true
            # too) authenticates with a shared-key policy that carries the key.
            found = getattr(blob_service.credential, "account_key", None)
            if not isinstance(found, str) or not found:
                raise ValueError(
                    "MediaStorage must be a connection string with an AccountKey (to sign upload and read "
                    "URLs), or set MediaStorage__blobServiceUri to use the managed identity"
                )
            account_key = found
        return cls(
            account_name=blob_service.account_name or "",
            blob_endpoint=blob_service.url,
            container=settings.media_container,
            upload_ttl=timedelta(minutes=settings.media_upload_sas_minutes),
            read_ttl=timedelta(seconds=settings.media_read_url_ttl_seconds),
            account_key=account_key,
            key_source=key_source,
            clock=clock,
        )

    # --- signing (no I/O) ----------------------------------------------------------------------

    @property
    def uses_identity(self) -> bool:
        return self._key_source is not None

    @property
    def longest_sas(self) -> timedelta:
        """The longest a SAS this signer makes can live: what a delegation key must outlast."""
        return max(self.upload_ttl, self.read_ttl + READ_EXPIRY_GRANULARITY)

    def upload_url(self, blob_path: str) -> SignedUrl:
        """Create-only for one blob that does not exist yet: one PUT, no reads, no overwrite."""
        expires_at = (self._clock() + self.upload_ttl).replace(microsecond=0)
        return SignedUrl(self._signed(blob_path, BlobSasPermissions(create=True), expires_at), expires_at)

    def read_url(self, ref: MediaRef) -> SignedUrl:
        """Read-only for one blob, served with the server's type and disposition; the same URL for
        the same blob within a minute, valid for read_ttl plus at most that minute."""
        now = self._clock()
        minute = now.replace(second=0, microsecond=0)
        expires_at = minute + self.read_ttl + READ_EXPIRY_GRANULARITY
        served = served_as(ref.media_id, ref.content_type)
        url = self._signed(
            ref.blob_path,
            BlobSasPermissions(read=True),
            expires_at,
            content_type=served.content_type,
            content_disposition=served.content_disposition,
            # A cache keeps the bytes no longer than the URL lives.
            cache_control=f"private, max-age={int(self.read_ttl.total_seconds())}",
        )
        return SignedUrl(url, expires_at)

    def _signed(
        self,
        blob_path: str,
        permission: BlobSasPermissions,
        expires_at: datetime,
        *,
        content_type: str | None = None,
        content_disposition: str | None = None,
        cache_control: str | None = None,
    ) -> str:
        sas = generate_blob_sas(
            self.account_name,
            self.container,
            blob_path,
            account_key=self._account_key,
            user_delegation_key=None if self._account_key is not None else self._usable_key(),
            permission=permission,
            expiry=expires_at,
            protocol=self._protocol,
            content_type=content_type,
            content_disposition=content_disposition,
            cache_control=cache_control,
        )
        return f"{self._base}/{quote(blob_path, safe='/')}?{sas}"

    def _usable_key(self) -> UserDelegationKey:
        now = self._clock()
        if self._refresh_due(now):
            self._refresh_in_background()
        if self._key is None or self._key_expiry is None or not self._key_usable(now):
            raise MediaSigningUnavailable(
                "media links cannot be signed right now (no storage delegation key); retry shortly"
            )
        return self._key

    # --- the delegation key --------------------------------------------------------------------

    def _key_usable(self, now: datetime) -> bool:
        return self._key_expiry is not None and self._key_expiry - now >= self.longest_sas + KEY_SAFETY_MARGIN

    def _refresh_due(self, now: datetime) -> bool:
        if self._key_source is None:
            return False
        return self._key_expiry is None or (
            self._key_expiry - now < self.longest_sas + KEY_SAFETY_MARGIN + KEY_REFRESH_AHEAD
        )

    async def refresh(self) -> None:
        """Fetch a new user delegation key (no-op with an account key). Raises what the fetch raises."""
        if self._key_source is None:
            return
        async with self._refresh_lock:
            now = self._clock()
            if not self._refresh_due(now):
                return  # another caller refreshed it while this one waited
            start = now - DELEGATION_KEY_BACKDATE
            expiry = now + DELEGATION_KEY_LIFETIME
            key = await self._key_source(start, expiry)
            self._key, self._key_expiry = key, expiry
            log.info("media signing: new user delegation key, valid until %s", expiry.isoformat())

    async def ensure_fresh(self) -> None:
        """Before signing in a request: refresh when due. A failed refresh is tolerated while the
        current key is still usable; without a usable key it is a 503."""
        now = self._clock()
        if not self._refresh_due(now):
            return
        try:
            await self.refresh()
        except Exception:
            if self._key_usable(self._clock()):
                log.warning(
                    "media signing: refreshing the user delegation key failed; using the current one",
                    exc_info=True,
                )
                return
            log.exception(
                "media signing: no user delegation key (does the app's identity have the "
                "Storage Blob Delegator role on the account?)"
            )
            raise MediaSigningUnavailable(
                "media links cannot be signed right now (no storage delegation key); retry shortly"
            ) from None

    async def warm_up(self) -> None:
        """At start-up: fetch the first key if one is needed. A failure or a slow identity endpoint
        is logged, not raised; the next media request (or a read needing a URL) tries again."""
        try:
            async with asyncio.timeout(WARM_UP_TIMEOUT_SECONDS):
                await self.ensure_fresh()
        except MediaSigningUnavailable:
            pass  # logged by ensure_fresh
        except TimeoutError:
            log.warning(
                "media signing: no user delegation key after %d s; trying again on the next request",
                WARM_UP_TIMEOUT_SECONDS,
            )

    def _refresh_in_background(self) -> None:
        """From synchronous signing: start one refresh on the running loop, if there is one."""
        if self._background is not None and not self._background.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._background = loop.create_task(self.warm_up())

    def download_url(self, container: str, blob_path: str, ttl: timedelta) -> SignedUrl:
        """Read-only for one blob of another container of this account (an account export), valid for
        exactly `ttl`: a short-lived download link, signed with the same key as media URLs."""
        expires_at = (self._clock() + ttl).replace(microsecond=0)
        sas = generate_blob_sas(
            self.account_name,
            container,
            blob_path,
            account_key=self._account_key,
            user_delegation_key=None if self._account_key is not None else self._usable_key(),
            permission=BlobSasPermissions(read=True),
            expiry=expires_at,
            protocol=self._protocol,
            cache_control="no-store",
        )
        endpoint = self._base.rsplit("/", 1)[0]
        return SignedUrl(f"{endpoint}/{container}/{quote(blob_path, safe='/')}?{sas}", expires_at)


class MediaUrls:
    """Turns a post's media reference into a URL a client can read: a short-lived read-only SAS
    for that one blob, signed when the post is served (never stored).

    Synchronous and without I/O, so posts and feeds can call it per item.
    """

    def __init__(self, signer: MediaSigner, unattached_ttl: timedelta = timedelta(hours=24)) -> None:
        self.signer = signer
        # MEDIA_UNATTACHED_TTL_HOURS: a ready asset older than this can no longer be attached.
        self.unattached_ttl = unattached_ttl

    def url(self, ref: MediaRef) -> str:
        return self.signer.read_url(ref).url
