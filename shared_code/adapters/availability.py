"""Telling "the store is away" from an answer, and bounding how long a request waits for a store.

An HTTP request promises an answer within 3 s. Each store call it makes runs under a
`RequestBudget`: one deadline for all of them, past which the request stops waiting. A timeout, a
refused or broken connection, or a "not now" status (408, 429 past the retries, 5xx) becomes a
`StoreUnavailable` (CosmosUnavailable, MediaStorageUnavailable) that the caller answers with a
fallback or a 503 with Retry-After; an answer such as 404 or 409 passes through unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.cosmos import exceptions as cosmos_exceptions


class StoreUnavailable(Exception):
    """A store did not answer within a request's budget (down, hanging, failing or throttling).
    `reason` says which, in words for an operator's log."""

    store = "a store"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CosmosUnavailable(StoreUnavailable):
    store = "Cosmos DB"


class MediaStorageUnavailable(StoreUnavailable):
    store = "Blob storage"


# Answers that mean "not now" rather than "no": request timeout, throttling beyond the retry budget,
# and the server-side failures (500, 502, 503, 504) the SDKs document as transient.
_UNAVAILABLE_STATUSES = {408: "timed out (408)", 429: "throttled (429) beyond the retry budget"}


def unavailability_reason(exc: BaseException) -> str | None:
    """Why `exc` means the store is away right now, or None when it is an answer (404, 409, 412,
    400, 401/403 and the like: a caller's or a configuration's problem, not an outage) or a bug."""
    if isinstance(exc, cosmos_exceptions.CosmosClientTimeoutError | TimeoutError):
        return "no answer within the timeout"
    if isinstance(exc, HttpResponseError):  # CosmosHttpResponseError is one
        status = exc.status_code
        if status is None:
            return "no HTTP answer"
        if status in _UNAVAILABLE_STATUSES:
            return _UNAVAILABLE_STATUSES[status]
        if status >= 500:
            return f"server error ({status})"
        return None
    if isinstance(exc, ServiceRequestError):  # the request never reached the service
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
    """One deadline for every call an HTTP request makes to a store (for Cosmos DB:
    COSMOS_REQUEST_TIMEOUT_SECONDS)."""

    def __init__(self, seconds: float, unavailable: type[StoreUnavailable] = CosmosUnavailable) -> None:
        self.seconds = seconds
        self._unavailable = unavailable
        self._deadline = asyncio.get_running_loop().time() + seconds

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the block before the deadline; raise the budget's StoreUnavailable if the store is away.
        Other errors (a 404, a conflict, a bug) pass through unchanged."""
        try:
            async with asyncio.timeout_at(self._deadline):
                yield
        except StoreUnavailable:
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError):  # the deadline passed (or a socket timed out)
                raise self._unavailable(f"no answer within {self.seconds:g} s") from exc
            reason = unavailability_reason(exc)
            if reason is None:
                raise
            raise self._unavailable(reason) from exc
