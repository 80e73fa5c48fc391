"""Cosmos DB clients: a connection string locally, the managed identity in Azure.

Two clients share an account: the background one (outbox relay, change-feed functions, operations)
keeps the SDK's patient timeouts and throttling retries; the request one, used while an HTTP
request waits, has a budget that fits a 3 s answer (COSMOS_REQUEST_* settings). `RequestBudget`
bounds every Cosmos call of one request together and turns "Cosmos DB is away" into
`CosmosUnavailable`, which callers answer with a fallback or a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos import exceptions
from azure.cosmos.aio import CosmosClient

from shared_code.settings import Settings

# Answers that mean "not now" rather than "no": request timeout, throttling beyond the retry budget,
# and the server-side failures (500, 502, 503, 504) the SDK documents as transient.
_UNAVAILABLE_STATUSES = {408: "timed out (408)", 429: "throttled (429) beyond the retry budget"}


class CosmosUnavailable(Exception):
    """Cosmos DB did not answer within a request's budget (down, hanging, failing or throttling).
    `reason` says which, in words for an operator's log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unavailability_reason(exc: BaseException) -> str | None:
    """Why `exc` means Cosmos DB is away right now, or None when it is an answer (404, 409, 412,
    400, 401/403 and the like: a caller's or a configuration's problem, not an outage)."""
    if isinstance(exc, exceptions.CosmosClientTimeoutError | TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, exceptions.CosmosHttpResponseError):
        status = exc.status_code
        if status is None:
            return "no HTTP answer"
        if status in _UNAVAILABLE_STATUSES:
            return _UNAVAILABLE_STATUSES[status]
        if status >= 500:
            return f"server error ({status})"
        return None
    if isinstance(exc, ServiceRequestError):  # the request never reached the account
        return f"cannot connect ({_first_line(exc)})"
    if isinstance(exc, ServiceResponseError):  # the connection broke or timed out before an answer
        return f"connection lost or timed out ({_first_line(exc)})"
    if isinstance(exc, ConnectionError):
        return f"cannot connect ({type(exc).__name__})"
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:160] if lines else type(exc).__name__


class RequestBudget:
    """One deadline for every Cosmos call an HTTP request makes (COSMOS_REQUEST_TIMEOUT_SECONDS)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = asyncio.get_running_loop().time() + seconds

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the block before the deadline; raise CosmosUnavailable if Cosmos DB is away. Other
        errors (a 404, a conflict, a bug) pass through unchanged."""
        try:
            async with asyncio.timeout_at(self._deadline):
                yield
        except CosmosUnavailable:
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError):  # the deadline passed (or a socket timed out)
                raise CosmosUnavailable(f"no answer within {self.seconds:g} s") from exc
            reason = unavailability_reason(exc)
            if reason is None:
                raise
            raise CosmosUnavailable(reason) from exc


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """`AccountEndpoint=…;AccountKey=…;` → {"AccountEndpoint": …, "AccountKey": …}."""
    parts = {}
    for part in connection_string.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            parts[key.strip()] = value.strip()
    return parts


def direct_transport() -> AioHttpTransport:
    """An HTTP transport that does not consult proxy environment variables and ~/.netrc on every
    request (aiohttp's trust_env): measured at about half the client CPU of a point write. The app
    talks to Azure services directly; it has no proxy to honour."""
    return AioHttpTransport(use_env_settings=False)


def request_client_options(settings: Settings) -> dict[str, Any]:
    """The SDK's knobs for the request client (azure-cosmos CosmosClient keywords): connecting is
    bounded, a read gets the request's whole budget, throttling (429) is retried after the wait
    Cosmos DB asks for but only a little, and a refused or dropped connection is retried once."""
    budget = settings.cosmos_request_timeout_seconds
    return {
        "connection_timeout": min(settings.cosmos_request_connect_timeout_seconds, budget),
        "read_timeout": budget,
        "timeout": budget,
        "retry_total": settings.cosmos_request_throttle_retries,
        "retry_backoff_max": settings.cosmos_request_throttle_wait_seconds,
        "retry_connect": 1,
        "retry_read": 1,
        "retry_backoff_factor": 0.1,
    }


def create_cosmos_client(settings: Settings, **options: Any) -> CosmosClient:
    """The background client (SDK defaults), or with `options` (see `request_client_options`)."""
    if settings.cosmos_connection_string is not None:
        parts = parse_connection_string(settings.cosmos_connection_string.get_secret_value())
        return CosmosClient(
            parts["AccountEndpoint"], credential=parts["AccountKey"], transport=direct_transport(), **options
        )
    from azure.identity.aio import DefaultAzureCredential

    assert settings.cosmos_account_endpoint is not None  # guaranteed by Settings validation
    return CosmosClient(
        settings.cosmos_account_endpoint,
        credential=DefaultAzureCredential(),
        transport=direct_transport(),
        **options,
    )


def create_request_cosmos_client(settings: Settings) -> CosmosClient:
    return create_cosmos_client(settings, **request_client_options(settings))
