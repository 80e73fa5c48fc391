"""The app's settings: one typed object read from the environment.

`func start` fills the environment from local.settings.json; Azure from app
settings (Key Vault references for secrets). Connection settings follow the
Functions convention so bindings and code share them: `CosmosDB` holds a
connection string locally, `CosmosDB__accountEndpoint` names the account when
the app uses its managed identity in Azure (likewise EventHubs, MediaStorage).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared_code.auth import LOCAL_SIGNING_KEY_MARK
from shared_code.domain.limits import MEDIA_SIZE_LIMIT


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message names it and says where to set it."""


# What the local host (devhost/) runs with, and what must therefore never run in Azure: its token
# issuer (devhost signs tokens with a key it makes on the developer's machine, under this issuer)
# and the example cursor key of local.settings.example.json. tests/unit/test_hardening_rules.py
# checks these match the example file.
LOCAL_AUTH_ISSUER = "https://chorus.local/devhost"
EXAMPLE_CURSOR_SIGNING_KEY = "local-only-cursor-signing-key-replace-in-azure"


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
    # A statement of the app's that runs longer is cancelled by the server: the request answers 503 and
    # its connection and locks are freed. Generous: every request's statements take milliseconds.
    postgres_statement_timeout_ms: int = Field(
        default=15000, ge=100, le=600_000, validation_alias=_alias("POSTGRES_STATEMENT_TIMEOUT_MS")
    )
    # In Azure the app logs in with its managed identity: the password of each new connection is a
    # Microsoft Entra access token (POSTGRES_URL then holds no password).
    postgres_entra_auth: bool = Field(default=False, validation_alias=_alias("POSTGRES_ENTRA_AUTH"))
    # The CA certificate that sslmode=verify-full checks the server against (libpq sslrootcert).
    postgres_ssl_root_cert: str | None = Field(
        default=None, validation_alias=_alias("POSTGRES_SSL_ROOT_CERT")
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
    # valid (a read URL is signed at each read, so a deleted or hidden post's media stops being
    # reachable within minutes); how old a pending asset gets before the cleanup timer (schedule:
    # %MEDIA_CLEANUP_SCHEDULE%) removes it, and how long a ready asset may stay unattached before
    # the same timer's sweep purges it.
    media_max_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, le=MEDIA_SIZE_LIMIT, validation_alias=_alias("MEDIA_MAX_BYTES")
    )
    media_upload_sas_minutes: int = Field(
        default=10, ge=1, le=24 * 60, validation_alias=_alias("MEDIA_UPLOAD_SAS_MINUTES")
    )
    media_read_url_ttl_seconds: int = Field(
        default=300, ge=30, le=3600, validation_alias=_alias("MEDIA_READ_URL_TTL_SECONDS")
    )
    media_pending_max_age_minutes: int = Field(
        default=60, ge=5, validation_alias=_alias("MEDIA_PENDING_MAX_AGE_MINUTES")
    )
    media_unattached_ttl_hours: float = Field(
        default=24.0, gt=0, le=24 * 30, validation_alias=_alias("MEDIA_UNATTACHED_TTL_HOURS")
    )

    # Bearer tokens: issuer and audience always; keys from a JWKS URL or PEM public keys.
    auth_issuer: str = Field(min_length=1, validation_alias=_alias("AUTH_ISSUER"))
    auth_audience: str = Field(min_length=1, validation_alias=_alias("AUTH_AUDIENCE"))
    auth_jwks_url: str | None = Field(default=None, validation_alias=_alias("AUTH_JWKS_URL"))
    auth_public_keys_pem: str | None = Field(default=None, validation_alias=_alias("AUTH_PUBLIC_KEYS_PEM"))
    auth_role_claim: str = Field(default="roles", validation_alias=_alias("AUTH_ROLE_CLAIM"))
    # The longest a token may live (exp - iat); longer ones are refused (401). Entra ID's access
    # tokens live 60-90 minutes, up to 28 hours where continuous access evaluation is on.
    auth_max_token_lifetime_seconds: int = Field(
        default=28 * 3600, ge=60, le=7 * 24 * 3600, validation_alias=_alias("AUTH_MAX_TOKEN_LIFETIME_SECONDS")
    )

    # Where the app runs: "azure" refuses the local host's issuer, keys and example secrets at
    # start-up. Azure itself sets WEBSITE_INSTANCE_ID on every instance, so a deployment that
    # forgets CHORUS_ENVIRONMENT is still recognised.
    chorus_environment: Literal["local", "azure"] = Field(
        default="local", validation_alias=_alias("CHORUS_ENVIRONMENT")
    )
    azure_instance_id: str | None = Field(default=None, validation_alias=_alias("WEBSITE_INSTANCE_ID"))

    # Signs list cursors so a client cannot forge one.
    cursor_signing_key: SecretStr = Field(min_length=32, validation_alias=_alias("CURSOR_SIGNING_KEY"))

    # HTTP limits.
    max_request_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=64 * 1024, validation_alias=_alias("MAX_REQUEST_BODY_BYTES")
    )

    # Rate limits (docs/api.md "Limits"): GCRA buckets in PostgreSQL, shared by every instance. Each is
    # "so many units per period", all available at once after a quiet spell; a write costs its weight
    # (fan-out writes more, docs/api.md). Load generators (bench/, the contract run) raise them explicitly.
    rate_limit_writes_per_minute: int = Field(
        default=60, ge=1, validation_alias=_alias("RATE_LIMIT_WRITES_PER_MINUTE")
    )
    rate_limit_reads_per_minute: int = Field(
        default=600, ge=1, validation_alias=_alias("RATE_LIMIT_READS_PER_MINUTE")
    )
    # Per client address, for routes without a user (health, the OpenAPI document, the docs page).
    rate_limit_anonymous_per_minute: int = Field(
        default=120, ge=1, validation_alias=_alias("RATE_LIMIT_ANONYMOUS_PER_MINUTE")
    )
    # Media: bytes a user may declare for upload per day (a request costs its sizeBytes), and how many
    # uploads may be pending (requested, not completed) at once.
    rate_limit_media_bytes_per_day: int = Field(
        default=1024 * 1024 * 1024, ge=1, validation_alias=_alias("RATE_LIMIT_MEDIA_BYTES_PER_DAY")
    )
    rate_limit_media_pending_max: int = Field(
        default=20, ge=1, validation_alias=_alias("RATE_LIMIT_MEDIA_PENDING_MAX")
    )
    # Post search (GET /api/search/posts): the PostgreSQL text-search configuration posts are indexed and
    # queried with ('simple': no stemming, any language; 'english', 'german', ...: that language's
    # stemming and stop words). A post keeps the one it was written under (docs/api.md "Search").
    search_text_config: str = Field(
        default="simple", pattern=r"^[a-z_][a-z0-9_]{0,62}$", validation_alias=_alias("SEARCH_TEXT_CONFIG")
    )
    # Direct messages (docs/api.md "Conversations and messages"): a group conversation holds at most this
    # many members (its owner included); a message can be edited this many minutes after it was sent.
    messaging_group_max_members: int = Field(
        default=50, ge=3, le=1000, validation_alias=_alias("MESSAGING_GROUP_MAX_MEMBERS")
    )
    messaging_edit_window_minutes: float = Field(
        default=15.0, ge=0, le=7 * 24 * 60, validation_alias=_alias("MESSAGING_EDIT_WINDOW_MINUTES")
    )
    # Which X-Forwarded-For entry, counted from the right, is the client's address: the proxies in front
    # of the app append what they saw, so only their entries are trusted (1: the Functions front end).
    rate_limit_trusted_proxy_hops: int = Field(
        default=1, ge=1, le=10, validation_alias=_alias("RATE_LIMIT_TRUSTED_PROXY_HOPS")
    )
    # The operators' readiness report (GET /api/admin/health) is computed at most this often per instance.
    health_report_cache_seconds: float = Field(
        default=5.0, ge=0, le=300, validation_alias=_alias("HEALTH_REPORT_CACHE_SECONDS")
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
    # Hybrid fan-out (docs/architecture.md "Home feeds at any audience size"): an author with more
    # followers than this is not fanned out; followers' feed reads pull the author's posts instead.
    fanout_max_followers: int = Field(default=10_000, ge=0, validation_alias=_alias("FANOUT_MAX_FOLLOWERS"))
    # Bounded feeds: a feed item expires this long after its post was created, and a feed keeps about
    # this many items (the oldest beyond are trimmed); older pages come from PostgreSQL. At most 90
    # days: the authorPosts container, which pulled reads use, keeps posts that long.
    feed_item_ttl_days: float = Field(
        default=30.0, gt=0, le=90, validation_alias=_alias("FEED_ITEM_TTL_DAYS")
    )
    feed_max_items: int = Field(default=1000, ge=1, le=100_000, validation_alias=_alias("FEED_MAX_ITEMS"))

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
        if self.auth_jwks_url is not None and not self.auth_jwks_url.lower().startswith("https://"):
            # Keys fetched over plain HTTP can be swapped by anyone on the path: forged tokens.
            raise ValueError("AUTH_JWKS_URL must be an https:// URL (the keys must come over TLS)")
        if self.in_azure:
            self._refuse_local_secrets()
        return self

    def _refuse_local_secrets(self) -> None:
        """In Azure, the local host's issuer, signing key and example cursor key are refused, each
        named: with them anyone holding a developer's machine (or this repository) could sign in."""
        if self.auth_issuer.rstrip("/") == LOCAL_AUTH_ISSUER:
            raise ValueError(
                f"AUTH_ISSUER is the local host's issuer ({LOCAL_AUTH_ISSUER}), refused in Azure: "
                "set the identity provider's issuer (e.g. https://login.microsoftonline.com/<tenant>/v2.0)"
            )
        if self.auth_public_keys_pem is not None and LOCAL_SIGNING_KEY_MARK in self.auth_public_keys_pem:
            raise ValueError(
                "AUTH_PUBLIC_KEYS_PEM holds the local host's signing key, refused in Azure: "
                "set AUTH_JWKS_URL to the identity provider's keys"
            )
        if self.cursor_signing_key.get_secret_value() == EXAMPLE_CURSOR_SIGNING_KEY:
            raise ValueError(
                "CURSOR_SIGNING_KEY is the example key from local.settings.example.json, refused in "
                "Azure: store a random key of 32 characters or more in Key Vault"
            )

    @property
    def in_azure(self) -> bool:
        return self.chorus_environment == "azure" or self.azure_instance_id is not None

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
