"""Blob storage for media: a connection string locally, the managed identity in Azure.

The app's own Blob calls are small (an upload's properties, deleting a rejected upload, a user
delegation key) and some run while an HTTP request waits, so the client connects and reads within
MEDIA_STORAGE_TIMEOUT_SECONDS and retries once, at once, instead of the SDK's 20 s/60 s timeouts and
three retries from 15 s apart. Clients upload and download through signed URLs, not through the app."""

from __future__ import annotations

from typing import Any

from azure.storage.blob.aio import BlobServiceClient, LinearRetry

from shared_code.adapters.cosmos import direct_transport
from shared_code.settings import Settings


def blob_client_options(settings: Settings) -> dict[str, Any]:
    seconds = settings.media_storage_timeout_seconds
    return {
        "transport": direct_transport(connection_timeout=seconds, read_timeout=seconds),
        # One immediate retry: enough for a kept-alive connection the server had closed.
        "retry_policy": LinearRetry(backoff=0, retry_total=1, random_jitter_range=0),
    }


def create_blob_service(settings: Settings) -> BlobServiceClient:
    if settings.media_storage_connection_string is not None:
        return BlobServiceClient.from_connection_string(
            settings.media_storage_connection_string.get_secret_value(), **blob_client_options(settings)
        )
    from azure.identity.aio import DefaultAzureCredential

    assert settings.media_storage_blob_uri is not None  # guaranteed by Settings validation
    return BlobServiceClient(
        settings.media_storage_blob_uri, credential=DefaultAzureCredential(), **blob_client_options(settings)
    )
