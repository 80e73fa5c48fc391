"""Event Hubs producer: a connection string locally, the managed identity in Azure.

Without either setting the publisher is off; start-up and health say so.
"""

from __future__ import annotations

from azure.eventhub.aio import EventHubProducerClient

from shared_code.settings import Settings


def create_producer(settings: Settings) -> EventHubProducerClient | None:
    if settings.eventhubs_connection_string is not None:
        return EventHubProducerClient.from_connection_string(
            settings.eventhubs_connection_string.get_secret_value(),
            eventhub_name=settings.eventhub_name,
            # Bounded so a dead peer fails a publish instead of hanging the relay.
            retry_total=2,
        )
    if settings.eventhubs_namespace is not None:
        from azure.identity.aio import DefaultAzureCredential

        return EventHubProducerClient(
            settings.eventhubs_namespace,
            settings.eventhub_name,
            credential=DefaultAzureCredential(),
            retry_total=2,
        )
    return None
