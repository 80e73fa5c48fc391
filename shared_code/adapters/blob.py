"""Blob storage for media: a connection string locally, the managed identity in Azure."""

from __future__ import annotations

from azure.storage.blob.aio import BlobServiceClient

from shared_code.adapters.cosmos import direct_transport
from shared_code.settings import Settings


def create_blob_service(settings: Settings) -> BlobServiceClient:
    if settings.media_storage_connection_string is not None:
        return BlobServiceClient.from_connection_string(
            settings.media_storage_connection_string.get_secret_value(), transport=direct_transport()
        )
    from azure.identity.aio import DefaultAzureCredential

    assert settings.media_storage_blob_uri is not None  # guaranteed by Settings validation
    return BlobServiceClient(
        settings.media_storage_blob_uri, credential=DefaultAzureCredential(), transport=direct_transport()
    )
