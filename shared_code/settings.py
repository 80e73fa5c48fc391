"""The app's settings: one typed object read from the environment.

`func start` fills the environment from local.settings.json; Azure from app
settings (Key Vault references for secrets). Connection settings follow the
Functions convention so bindings and code share them: `CosmosDB` holds a
connection string locally, `CosmosDB__accountEndpoint` names the account when
the app uses its managed identity in Azure (likewise EventHubs, MediaStorage).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared_code.domain.limits import MEDIA_SIZE_LIMIT


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names it and says where to set it."""


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=True, populate_by_name=True, env_ignore_empty=True
    )

    # PostgreSQL: a libpq URL. In Azure a Key Vault reference holds it.
    postgres_url: SecretStr = Field(validation_alias=_alias("POSTGRES_URL"))
    postgres_pool_min: int = Field(default=1, ge=0, validation_alias=_alias("POSTGRES_POOL_MIN"))
    postgres_pool_max: int = Field(default=10, ge=1, validation_alias=_alias("POSTGRES_POOL_MAX"))
    # An HTTP request waits at most this long for a pooled connection, then answers 503 with
    # Retry-After (background work waits longer). Fits the 3 s answer the API promises.
    postgres_request_wait_seconds: float = Field(
        default=2.5, gt=0, le=30, validation_alias=_alias("POSTGRES_REQUEST_WAIT_SECONDS")
    )
    # A new connection that gets no answer within this long fails (libpq connect_timeout, whole seconds).
    postgres_connect_timeout_seconds: int = Field(
        default=3, ge=2, le=60, validation_alias=_alias("POSTGRES_CONNECT_TIMEOUT_SECONDS")
    )
    # While the server is away the pool retries a connection with doubling delays; after this long it
    # starts again from a short delay, so a returning server is used within seconds, not minutes.
    postgres_reconnect_timeout_seconds: float = Field(
        default=5.0, gt=0, validation_alias=_alias("POSTGRES_RECONNECT_TIMEOUT_SECONDS")
    )

    # Cosmos DB: a connection string (local) or an account endpoint (managed identity).
    cosmos_connection_string: SecretStr | None = Field(default=None, validation_alias=_alias("CosmosDB"))
    cosmos_account_endpoint: str | None = Field(
        default=None, validation_alias=_alias("CosmosDB__accountEndpoint")
    )
    cosmos_database: str = Field(default="chorus", min_length=1, validation_alias=_alias("COSMOS_DATABASE"))
    # Cosmos DB in a request path (projection reads, marking notifications read) goes through its own
    # client with a small budget, so a request answers within 3 s when Cosmos DB is down, hangs or
    # throttles: the home feed then comes from PostgreSQL, other reads answer 503 with Retry-After.
    # The relay and the change-feed functions keep the SDK's patient defaults.
    # Every Cosmos call of one request together, connection and retries included:
    cosmos_request_timeout_seconds: float = Field(
        default=1.5, gt=0, le=30, validation_alias=_alias("COSMOS_REQUEST_TIMEOUT_SECONDS")
    )
    # Opening a connection (TCP and TLS) to the account:
    cosmos_request_connect_timeout_seconds: float = Field(
        default=1.0, gt=0, le=30, validation_alias=_alias("COSMOS_REQUEST_CONNECT_TIMEOUT_SECONDS")
    )
    # Throttled (429) requests are retried after the wait Cosmos DB asks for, at most this many times
    # and this long in all (the SDK's defaults, 9 times and 30 s, suit background work only):
    cosmos_request_throttle_retries: int = Field(
        default=2, ge=0, le=9, validation_alias=_alias("COSMOS_REQUEST_THROTTLE_RETRIES")
    )
    cosmos_request_throttle_wait_seconds: float = Field(
        default=1.0, ge=0, le=30, validation_alias=_alias("COSMOS_REQUEST_THROTTLE_WAIT_SECONDS")
    )

    # Event Hubs: optional. Without it the publisher is off and says so.
    eventhubs_connection_string: SecretStr | None = Field(default=None, validation_alias=_alias("EventHubs"))
    eventhubs_namespace: str | None = Field(
        default=None, validation_alias=_alias("EventHubs__fullyQualifiedNamespace")
    )
    eventhub_name: str = Field(
        default="chorus-events", min_length=1, validation_alias=_alias("EVENTHUB_NAME")
    )

    # Blob storage for media.
    media_storage_connection_string: SecretStr | None = Field(
        default=None, validation_alias=_alias("MediaStorage")
    )
    media_storage_blob_uri: str | None = Field(
        default=None, validation_alias=_alias("MediaStorage__blobServiceUri")
    )
    media_container: str = Field(default="media", min_length=3, validation_alias=_alias("MEDIA_CONTAINER"))
    # Blob calls the app makes (checking a completed upload, deleting a rejected one, a user delegation
    # key): each connects and reads within this long, is retried once at once, and a request waits for
    # them at most this long in all, then answers 503 with Retry-After (the SDK's defaults: 20 s to
    # connect, 60 s to read, 3 retries from 15 s apart).
    media_storage_timeout_seconds: float = Field(
        default=2.0, gt=0, le=30, validation_alias=_alias("MEDIA_STORAGE_TIMEOUT_SECONDS")
    )
    # Media uploads: the largest declared size accepted; how long an upload SAS and a read SAS stay
    # valid (a read SAS must fit inside a 7-day user delegation key, hence at most 120 hours); how
    # old a pending asset gets before the cleanup timer (schedule: %MEDIA_CLEANUP_SCHEDULE%) removes it.
    media_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, le=MEDIA_SIZE_LIMIT, validation_alias=_alias("MEDIA_MAX_BYTES")
    )
    media_upload_sas_minutes: int = Field(
        default=10, ge=1, le=24 * 60, validation_alias=_alias("MEDIA_UPLOAD_SAS_MINUTES")
    )
    media_read_sas_hours: int = Field(
        default=24, ge=1, le=120, validation_alias=_alias("MEDIA_READ_SAS_HOURS")
    )
    media_pending_max_age_minutes: int = Field(
        default=60, ge=5, validation_alias=_alias("MEDIA_PENDING_MAX_AGE_MINUTES")
    )

    # Bearer tokens: issuer and audience always; keys from a JWKS URL or PEM public keys.
    auth_issuer: str = Field(min_length=1, validation_alias=_alias("AUTH_ISSUER"))
    auth_audience: str = Field(min_length=1, validation_alias=_alias("AUTH_AUDIENCE"))
    auth_jwks_url: str | None = Field(default=None, validation_alias=_alias("AUTH_JWKS_URL"))
    auth_public_keys_pem: str | None = Field(default=None, validation_alias=_alias("AUTH_PUBLIC_KEYS_PEM"))
    auth_role_claim: str = Field(default="roles", validation_alias=_alias("AUTH_ROLE_CLAIM"))

    # Signs list cursors so a client cannot forge one.
    cursor_signing_key: SecretStr = Field(min_length=32, validation_alias=_alias("CURSOR_SIGNING_KEY"))

    # HTTP limits.
    max_request_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=64 * 1024, validation_alias=_alias("MAX_REQUEST_BODY_BYTES")
    )

    # Outbox relay: the timer's schedule is the binding's %OUTBOX_RELAY_SCHEDULE%; each run drains until
    # its next run is due (at most this long), waking on NOTIFY, so new events are handled in milliseconds.
    outbox_drain_seconds: float = Field(default=60.0, gt=0, validation_alias=_alias("OUTBOX_DRAIN_SECONDS"))
    outbox_batch_size: int = Field(default=200, ge=1, le=5000, validation_alias=_alias("OUTBOX_BATCH_SIZE"))
    outbox_concurrency: int = Field(default=32, ge=1, le=512, validation_alias=_alias("OUTBOX_CONCURRENCY"))
    outbox_max_attempts: int = Field(default=8, ge=1, validation_alias=_alias("OUTBOX_MAX_ATTEMPTS"))
    outbox_backoff_base_seconds: float = Field(
        default=60.0, gt=0, validation_alias=_alias("OUTBOX_BACKOFF_BASE_SECONDS")
    )
    outbox_claim_lease_seconds: float = Field(
        default=120.0, gt=0, validation_alias=_alias("OUTBOX_CLAIM_LEASE_SECONDS")
    )
    # A projection round (the relay's Cosmos DB writes and feed back-fills, on the patient client) that has
    # not finished in this long fails, and Cosmos DB is probed: no answer is an outage (the circuit breaker
    # pauses projections, no attempt spent), an answer charges the round's events.
    outbox_projection_deadline_seconds: float = Field(
        default=30.0, gt=0, le=600, validation_alias=_alias("OUTBOX_PROJECTION_DEADLINE_SECONDS")
    )
    # While a relay delivery runs, its sink is probed this often; the first probe without an answer gives
    # the round up as an outage at once. So a Cosmos DB or Event Hubs that hangs (connections accepted,
    # nothing answered) pauses delivery within about this plus the probe's 2 s, and projections resume
    # within about a second of its return, instead of waiting out the SDK's 65 s read timeout.
    outbox_sink_watch_seconds: float = Field(
        default=1.0, gt=0, le=60, validation_alias=_alias("OUTBOX_SINK_WATCH_SECONDS")
    )
    # Fan-out: followers are read from PostgreSQL in pages and written with bounded concurrency.
    fanout_page_size: int = Field(default=1000, ge=1, le=10000, validation_alias=_alias("FANOUT_PAGE_SIZE"))
    fanout_concurrency: int = Field(default=64, ge=1, le=1024, validation_alias=_alias("FANOUT_CONCURRENCY"))
    feed_backfill_posts: int = Field(
        default=50, ge=0, le=1000, validation_alias=_alias("FEED_BACKFILL_POSTS")
    )

    # Operations: health turns "degraded" when the oldest pending event is older than this;
    # published events are deleted after the retention, in small batches, by a timer.
    health_outbox_lag_seconds: float = Field(
        default=60.0, gt=0, validation_alias=_alias("HEALTH_OUTBOX_LAG_SECONDS")
    )
    outbox_retention_days: float = Field(default=7.0, gt=0, validation_alias=_alias("OUTBOX_RETENTION_DAYS"))

    # Privacy (docs/privacy.md): account erasure handles this many rows per batch (one transaction and
    # one outbox event each); a username freed by an erasure is held back this many days; stored
    # Idempotency-Key responses are deleted after this many hours by a timer
    # (%IDEMPOTENCY_KEY_EXPIRY_SCHEDULE%); an export of more than this many items is written to a blob
    # by a background job, and its download link stays valid this many minutes.
    erasure_batch_size: int = Field(default=200, ge=1, le=5000, validation_alias=_alias("ERASURE_BATCH_SIZE"))
    erasure_username_hold_days: float = Field(
        default=30.0, ge=0, le=3650, validation_alias=_alias("ERASURE_USERNAME_HOLD_DAYS")
    )
    idempotency_key_ttl_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, validation_alias=_alias("IDEMPOTENCY_KEY_TTL_HOURS")
    )
    export_inline_max_items: int = Field(
        default=1000, ge=0, le=100_000, validation_alias=_alias("EXPORT_INLINE_MAX_ITEMS")
    )
    export_link_minutes: int = Field(
        default=15, ge=1, le=24 * 60, validation_alias=_alias("EXPORT_LINK_MINUTES")
    )

    applicationinsights_connection_string: SecretStr | None = Field(
        default=None, validation_alias=_alias("APPLICATIONINSIGHTS_CONNECTION_STRING")
    )
    log_level: str = Field(
        default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", validation_alias=_alias("LOG_LEVEL")
    )

    @model_validator(mode="after")
    def _one_way_to_each_account(self) -> Settings:
        if self.cosmos_connection_string is None and self.cosmos_account_endpoint is None:
            raise ValueError(
                "set CosmosDB (a connection string) or CosmosDB__accountEndpoint (managed identity)"
            )
        if self.media_storage_connection_string is None and self.media_storage_blob_uri is None:
            raise ValueError(
                "set MediaStorage (a connection string) or MediaStorage__blobServiceUri (managed identity)"
            )
        if self.auth_jwks_url is None and self.auth_public_keys_pem is None:
            raise ValueError("set AUTH_JWKS_URL or AUTH_PUBLIC_KEYS_PEM so bearer tokens can be verified")
        return self

    @property
    def eventhubs_enabled(self) -> bool:
        return self.eventhubs_connection_string is not None or self.eventhubs_namespace is not None


def load_settings() -> Settings:
    """Read and validate the settings, or raise SettingsError naming each bad one."""
    try:
        return Settings()  # type: ignore[call-arg]  # fields come from the environment
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = _setting_name(error.get("loc", ()))
            problems.append(f"{name}: {error['msg']}" if name else error["msg"])
        raise SettingsError(
            "Chorus cannot start: "
            + "; ".join(problems)
            + ". Set them in local.settings.json (func start), the environment, or the app settings in Azure."
        ) from None


def _setting_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return ""
    field = Settings.model_fields.get(str(loc[0]))
    if field is None or field.validation_alias is None:
        return str(loc[0])
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return " or ".join(str(choice) for choice in alias.choices)
    return str(alias)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this worker process, read once."""
    return load_settings()
