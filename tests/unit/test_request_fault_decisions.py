"""Which failures mean "Cosmos DB is away" (answer with a fallback or 503) and which are answers
(404, 409, 412...) or bugs; the request budget; the request client's SDK options; outage logs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos import exceptions as typed_exceptions

from functions.http_support import OutageLog
from shared_code.adapters.availability import CosmosUnavailable, RequestBudget, unavailability_reason
from shared_code.adapters.cosmos import request_client_options
from shared_code.settings import load_settings
from tests.unit.test_settings import VALID


@pytest.fixture
def settings_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    for name in ("COSMOS_REQUEST_TIMEOUT_SECONDS", "POSTGRES_REQUEST_WAIT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# The SDK's exception constructors carry no type hints; build them through Any.
exceptions: Any = typed_exceptions


def http_error(status: int) -> typed_exceptions.CosmosHttpResponseError:
    error: typed_exceptions.CosmosHttpResponseError = exceptions.CosmosHttpResponseError(
        status_code=status, message=f"status {status}"
    )
    return error


@pytest.mark.parametrize(
    "error",
    [
        exceptions.CosmosClientTimeoutError(),
        TimeoutError(),
        ServiceRequestError("Cannot connect to host 127.0.0.1:8081"),
        ServiceResponseError("Timeout on reading data from socket"),
        ConnectionRefusedError(),
        http_error(503),
        http_error(429),
        http_error(408),
        http_error(500),
        http_error(502),
        http_error(504),
    ],
    ids=repr,
)
def test_outages_mean_cosmos_is_away(error: BaseException) -> None:
    assert unavailability_reason(error)


@pytest.mark.parametrize(
    "error",
    [
        exceptions.CosmosResourceNotFoundError(status_code=404, message="gone"),
        exceptions.CosmosResourceExistsError(status_code=409, message="exists"),
        exceptions.CosmosAccessConditionFailedError(status_code=412, message="etag"),
        http_error(400),
        http_error(401),
        http_error(403),
        ValueError("a bug"),
        KeyError("postId"),
    ],
    ids=repr,
)
def test_answers_and_bugs_are_not_outages(error: BaseException) -> None:
    assert unavailability_reason(error) is None


def test_the_reason_names_throttling_for_an_operator() -> None:
    assert "429" in (unavailability_reason(http_error(429)) or "")


async def test_a_call_past_the_budget_is_cosmos_unavailable() -> None:
    budget = RequestBudget(0.05)
    with pytest.raises(CosmosUnavailable, match=r"no answer within 0\.05 s"):
        async with budget.guard():
            await asyncio.sleep(10)


async def test_the_budget_is_shared_by_every_call_of_a_request() -> None:
    budget = RequestBudget(0.05)
    async with budget.guard():
        pass
    await asyncio.sleep(0.06)
    with pytest.raises(CosmosUnavailable):
        async with budget.guard():
            await asyncio.sleep(10)


async def test_an_outage_error_becomes_cosmos_unavailable_and_an_answer_passes_through() -> None:
    budget = RequestBudget(5)
    with pytest.raises(CosmosUnavailable, match="cannot connect") as caught:
        async with budget.guard():
            raise ServiceRequestError("Cannot connect to host")
    assert isinstance(caught.value.__cause__, ServiceRequestError)
    with pytest.raises(typed_exceptions.CosmosResourceNotFoundError):
        async with budget.guard():
            raise exceptions.CosmosResourceNotFoundError(status_code=404, message="gone")


def test_the_request_client_fits_its_budget(settings_environment: pytest.MonkeyPatch) -> None:
    settings_environment.setenv("COSMOS_REQUEST_TIMEOUT_SECONDS", "0.8")
    options = request_client_options(load_settings())
    assert options["timeout"] == 0.8 and options["read_timeout"] == 0.8
    assert options["connection_timeout"] <= 0.8
    assert options["retry_total"] == 2 and options["retry_backoff_max"] <= 1


@pytest.mark.usefixtures("settings_environment")
def test_the_defaults_leave_room_in_a_3_second_answer() -> None:
    settings = load_settings()
    # Cosmos DB's budget, then the PostgreSQL fallback (a connection wait only if the pool is starved).
    assert settings.cosmos_request_timeout_seconds <= 2
    assert settings.postgres_request_wait_seconds < 3


def test_an_outage_is_logged_once_per_period_with_the_count_of_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageLog("%(function)s failed (%(reason)s); %(others)d others in %(every)g s", every=3600)
    caplog.set_level(logging.WARNING, logger="chorus.http")
    for n in range(5):
        outage.warning("get_feed", f"reason {n}", "c0ffee")
    assert [r.getMessage() for r in caplog.records] == ["get_feed failed (reason 0); 0 others in 3600 s"]
    outage.reset()
    outage.warning("get_feed", "again", "c0ffee")
    assert caplog.records[-1].getMessage().endswith("get_feed failed (again); 0 others in 3600 s")


def test_the_openapi_document_declares_the_degraded_header_and_retry_after() -> None:
    import functions.reads  # noqa: F401  (registers the feed route)
    from functions.openapi import build_openapi

    feed = build_openapi()["paths"]["/api/feed"]["get"]["responses"]
    assert "Chorus-Degraded" in feed["200"]["headers"]
    assert "Retry-After" in feed["503"]["headers"]


def test_the_blob_client_waits_briefly_and_retries_once(settings_environment: pytest.MonkeyPatch) -> None:
    from shared_code.adapters.blob import blob_client_options

    settings_environment.setenv("MEDIA_STORAGE_TIMEOUT_SECONDS", "1.5")
    options = blob_client_options(load_settings())
    assert options["retry_policy"].total_retries == 1
    assert options["retry_policy"].backoff == 0
    timeouts = options["transport"].connection_config
    assert (timeouts.timeout, timeouts.read_timeout) == (1.5, 1.5)


async def test_a_media_storage_budget_raises_its_own_error() -> None:
    from shared_code.adapters.availability import MediaStorageUnavailable

    with pytest.raises(MediaStorageUnavailable, match="cannot connect"):
        async with RequestBudget(5, MediaStorageUnavailable).guard():
            raise ServiceRequestError("Cannot connect to host")
