"""`python -m devhost stack --keep-data` keeps every service's data across a restart of the stack:
PostgreSQL rows, Cosmos documents (with their TTL clocks and change-feed positions, so a
continuation taken before the restart resumes exactly after it), Azurite blobs and the Event Hubs
stand-in's events. Without --keep-data every service starts empty."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from azure.cosmos import ContainerProxy, CosmosClient, PartitionKey
from azure.cosmos.exceptions import CosmosResourceNotFoundError
from azure.eventhub import EventData, EventHubProducerClient
from azure.storage.blob import BlobServiceClient

from tests.support.stack_process import StackProcess

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

CONTAINER = "kept"


def cosmos_container(stack: StackProcess) -> tuple[CosmosClient, ContainerProxy]:
    described = stack.described
    client = CosmosClient(described["cosmos"]["endpoint"], credential=stack.cosmos_key)
    database = client.get_database_client(described["appSettings"]["COSMOS_DATABASE"])
    return client, database.get_container_client(CONTAINER)


def events(stack: StackProcess) -> list[dict[str, Any]]:
    with urllib.request.urlopen(stack.described["eventHubs"]["inspectUrl"], timeout=10) as response:
        result: list[dict[str, Any]] = json.load(response)
        return result


def write_everything(stack: StackProcess, marker: str) -> str:
    """One thing in each service; returns a change-feed continuation taken after the Cosmos write."""
    described = stack.described
    with psycopg.connect(described["postgres"]["adminUrl"], autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (marker text)")
        conn.execute("INSERT INTO kept VALUES (%s)", (marker,))

    client, _ = cosmos_container(stack)
    with client:
        database = client.get_database_client(described["appSettings"]["COSMOS_DATABASE"])
        container = database.create_container(CONTAINER, partition_key=PartitionKey("/pk"), default_ttl=-1)
        container.upsert_item({"id": "forever", "pk": marker})
        container.upsert_item({"id": "an-hour", "pk": marker, "ttl": 3600})
        assert len(list(container.query_items_change_feed(start_time="Beginning"))) == 2
        continuation = container.client_connection.last_response_headers["etag"]

    with BlobServiceClient.from_connection_string(described["azurite"]["connectionString"]) as blobs:
        blobs.get_container_client(described["appSettings"]["MEDIA_CONTAINER"]).upload_blob(
            f"{marker}.txt", marker.encode()
        )

    producer = EventHubProducerClient.from_connection_string(
        described["eventHubs"]["connectionString"], eventhub_name=described["eventHubs"]["hub"]
    )
    with producer:
        batch = producer.create_batch(partition_key=marker)
        batch.add(EventData(marker))
        producer.send_batch(batch, timeout=15)
    return str(continuation)


def test_keep_data_keeps_every_services_data_and_the_default_starts_empty(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    stack = StackProcess(tmp_path / "state")
    try:
        stack.start()
        continuation = write_everything(stack, marker)
        client, container = cosmos_container(stack)
        with client:
            an_hour_before = container.read_item("an-hour", partition_key=marker)
        stack.stop()

        described = stack.start(keep_data=True)
        with psycopg.connect(described["postgres"]["adminUrl"]) as conn:
            assert conn.execute("SELECT marker FROM kept").fetchall() == [(marker,)]
        client, container = cosmos_container(stack)
        with client:
            an_hour = container.read_item("an-hour", partition_key=marker)
            # Same version, same modification time: its TTL clock carries on from where it was.
            assert (an_hour["_etag"], an_hour["_ts"]) == (an_hour_before["_etag"], an_hour_before["_ts"])
            assert container.read_item("forever", partition_key=marker)["id"] == "forever"
            # A change-feed position from before the restart resumes exactly after it.
            assert list(container.query_items_change_feed(continuation=continuation)) == []
            container.upsert_item({"id": "after", "pk": marker})
            assert [i["id"] for i in container.query_items_change_feed(continuation=continuation)] == [
                "after"
            ]
        with BlobServiceClient.from_connection_string(described["azurite"]["connectionString"]) as blobs:
            media = blobs.get_container_client(described["appSettings"]["MEDIA_CONTAINER"])
            assert media.download_blob(f"{marker}.txt").readall() == marker.encode()
        kept_events = [e for e in events(stack) if e["partitionKey"] == marker]
        assert [e["body"] for e in kept_events] == [marker]
        assert kept_events[0]["sequenceNumber"] == 0
        stack.stop()

        # The default: fresh.
        described = stack.start()
        with psycopg.connect(described["postgres"]["adminUrl"]) as conn:
            assert conn.execute("SELECT to_regclass('kept')").fetchone() == (None,)
        client, container = cosmos_container(stack)
        with client, pytest.raises(CosmosResourceNotFoundError):
            container.read_item("forever", partition_key=marker)
        with BlobServiceClient.from_connection_string(described["azurite"]["connectionString"]) as blobs:
            media = blobs.get_container_client(described["appSettings"]["MEDIA_CONTAINER"])
            assert [b.name for b in media.list_blobs()] == []
        assert events(stack) == []
    finally:
        stack.stop()
