"""Cosmos DB clients: a connection string locally, the managed identity in Azure.

Two clients share an account: the background one (outbox relay, change-feed functions, operations)
keeps the SDK's patient timeouts and throttling retries; the request one, used while an HTTP
request waits, has a budget that fits a 3 s answer (COSMOS_REQUEST_* settings). `RequestBudget`
(shared_code/adapters/availability.py) bounds every Cosmos call of one request together and turns
"Cosmos DB is away" into `CosmosUnavailable`, which callers answer with a fallback or a 503.
"""

from __future__ import annotations

from typing import Any

from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos.aio import CosmosClient

from shared_code.settings import Settings


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """`AccountEndpoint=…;AccountKey=…;` → {"AccountEndpoint": …, "AccountKey": …}."""
    parts = {}
    for part in connection_string.split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            parts[key.strip()] = value.strip()
    return parts


def direct_transport(**timeouts: float) -> AioHttpTransport:
    """An HTTP transport that does not consult proxy environment variables and ~/.netrc on every
    request (aiohttp's trust_env): measured at about half the client CPU of a point write. The app
    talks to Azure services directly; it has no proxy to honour. `timeouts`: connection_timeout and
    read_timeout for every request (azure-core's defaults are 300 s each)."""
    return AioHttpTransport(use_env_settings=False, **timeouts)


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
