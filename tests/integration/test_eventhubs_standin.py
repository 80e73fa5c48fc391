"""The Event Hubs stand-in against the real azure-eventhub SDK: producers (sync and async), management
requests, and a send-then-receive round trip with the real consumer.

The stand-in is shared by the whole session, so each test marks its events with a unique prefix and looks
only at those. Every SDK call is bounded: a peer that misbehaves makes the SDK hang for minutes.
"""

from __future__ import annotations

import asyncio
import base64
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient, PartitionContext
from azure.eventhub.aio import EventHubProducerClient as AsyncEventHubProducerClient
from azure.eventhub.exceptions import EventHubError

from devhost.services.eventhubs import EventHubsStandIn, start_eventhubs_standin

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
SDK_TIMEOUT = 15.0


def bounded(call: Callable[[], T], timeout: float = SDK_TIMEOUT) -> T:
    """Runs a blocking SDK call on a daemon thread, so a hang fails the test instead of stalling the run."""
    outcome: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def run() -> None:
        try:
            outcome.put((True, call()))
        except BaseException as exc:
            outcome.put((False, exc))

    threading.Thread(target=run, daemon=True).start()
    try:
        ok, value = outcome.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"SDK call did not finish within {timeout:.0f} s")
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def wait_until(condition: Callable[[], bool], timeout: float = SDK_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout:.0f} s")
        time.sleep(0.05)


def marker() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def mine(standin: EventHubsStandIn, prefix: str) -> list[dict[str, Any]]:
    return [e for e in standin.received(standin.hub_name) if str(e["body"]).startswith(prefix)]


def event(body: str, properties: dict[str | bytes, Any]) -> EventData:
    data = EventData(body)
    data.properties = properties
    return data


def body_bytes(data: EventData) -> bytes:
    return b"".join(cast(Iterable[bytes], data.body))


@pytest.fixture
def producer(eventhubs_standin: EventHubsStandIn) -> Iterator[EventHubProducerClient]:
    client = EventHubProducerClient.from_connection_string(
        eventhubs_standin.connection_string, eventhub_name=eventhubs_standin.hub_name, retry_total=0
    )
    yield client
    bounded(client.close)


def test_batch_with_partition_key_arrives_with_body_key_and_properties(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    key = f"user-{prefix}"
    batch = bounded(lambda: producer.create_batch(partition_key=key))
    for i in range(3):
        data = event(f"{prefix}-{i}", {"kind": "post.created", "n": i})
        data.message_id = f"{prefix}-id-{i}"
        data.content_type = "application/json"
        batch.add(data)
    bounded(lambda: producer.send_batch(batch))

    events = mine(eventhubs_standin, prefix)
    assert [e["body"] for e in events] == [f"{prefix}-0", f"{prefix}-1", f"{prefix}-2"]
    assert {e["partitionKey"] for e in events} == {key}
    assert [e["properties"] for e in events] == [{"kind": "post.created", "n": i} for i in range(3)]
    assert [e["messageId"] for e in events] == [f"{prefix}-id-{i}" for i in range(3)]
    assert {e["contentType"] for e in events} == {"application/json"}
    assert {e["hub"] for e in events} == {eventhubs_standin.hub_name}
    assert len({e["partition"] for e in events}) == 1
    first = events[0]["sequenceNumber"]
    assert [e["sequenceNumber"] for e in events] == [first, first + 1, first + 2]
    offsets = [int(e["offset"]) for e in events]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == 3


def test_the_same_partition_key_always_lands_in_the_same_partition(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    keys = [f"{prefix}-key-{i}" for i in range(8)]
    for round_ in range(2):
        for key in keys:
            bounded(partial(producer.send_batch, [EventData(f"{prefix}|{key}|{round_}")], partition_key=key))

    partitions_by_key: dict[str, set[str]] = {}
    for e in mine(eventhubs_standin, prefix):
        assert e["partitionKey"] == e["body"].split("|")[1]
        partitions_by_key.setdefault(e["partitionKey"], set()).add(e["partition"])
    assert sorted(partitions_by_key) == sorted(keys)
    assert all(len(partitions) == 1 for partitions in partitions_by_key.values())
    # Eight keys over four partitions: a hash that sent everything to one partition would be no routing.
    assert len(set().union(*partitions_by_key.values())) > 1


def test_events_sent_to_an_explicit_partition_land_there(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    batch = bounded(lambda: producer.create_batch(partition_id="2"))
    batch.add(EventData(f"{prefix}-batch"))
    bounded(lambda: producer.send_batch(batch))
    bounded(lambda: producer.send_event(EventData(f"{prefix}-single"), partition_id="3"))

    events = {e["body"]: e for e in mine(eventhubs_standin, prefix)}
    assert events[f"{prefix}-batch"]["partition"] == "2"
    assert events[f"{prefix}-single"]["partition"] == "3"
    assert events[f"{prefix}-single"]["partitionKey"] is None


def test_events_without_key_or_partition_are_spread_round_robin(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    for i in range(eventhubs_standin.partition_count):
        bounded(partial(producer.send_batch, [EventData(f"{prefix}-{i}")]))

    partitions = [e["partition"] for e in mine(eventhubs_standin, prefix)]
    assert sorted(partitions) == [str(p) for p in range(eventhubs_standin.partition_count)]


def test_binary_bodies_are_reported_as_base64(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    binary = b"\xff\xfe" + prefix.encode()
    bounded(lambda: producer.send_batch([EventData(binary), EventData(f"{prefix}-text")]))

    encoded = base64.b64encode(binary).decode()
    events = [
        e
        for e in eventhubs_standin.received(eventhubs_standin.hub_name)
        if e["body"] in (encoded, f"{prefix}-text")
    ]
    assert [(e["body"], e["bodyEncoding"]) for e in events] == [
        (encoded, "base64"),
        (f"{prefix}-text", "utf8"),
    ]


@pytest.mark.asyncio
async def test_async_producer_sends(eventhubs_standin: EventHubsStandIn) -> None:
    prefix = marker()
    client = AsyncEventHubProducerClient.from_connection_string(
        eventhubs_standin.connection_string, eventhub_name=eventhubs_standin.hub_name, retry_total=0
    )
    async with asyncio.timeout(SDK_TIMEOUT), client:
        batch = await client.create_batch(partition_key=f"{prefix}-key")
        batch.add(event(f"{prefix}-0", {"source": "aio"}))
        batch.add(event(f"{prefix}-1", {"source": "aio"}))
        await client.send_batch(batch)
        await client.send_event(EventData(f"{prefix}-2"), partition_id="1")

    events = await asyncio.to_thread(mine, eventhubs_standin, prefix)
    assert [e["body"] for e in events] == [f"{prefix}-0", f"{prefix}-1", f"{prefix}-2"]
    assert [e["partitionKey"] for e in events] == [f"{prefix}-key", f"{prefix}-key", None]
    assert events[0]["properties"] == {"source": "aio"}
    assert events[2]["partition"] == "1"


def test_management_requests_answer(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    expected_ids = [str(p) for p in range(eventhubs_standin.partition_count)]
    hub = bounded(producer.get_eventhub_properties)
    assert hub["eventhub_name"] == eventhubs_standin.hub_name
    assert hub["partition_ids"] == expected_ids
    assert hub["created_at"].year >= 2024
    assert bounded(producer.get_partition_ids) == expected_ids

    bounded(lambda: producer.send_event(EventData(prefix), partition_id="0"))
    sent = mine(eventhubs_standin, prefix)[0]
    partition = bounded(lambda: producer.get_partition_properties("0"))
    assert partition["eventhub_name"] == eventhubs_standin.hub_name
    assert partition["id"] == "0"
    assert partition["is_empty"] is False
    assert partition["beginning_sequence_number"] <= sent["sequenceNumber"]
    assert partition["last_enqueued_sequence_number"] >= sent["sequenceNumber"]
    assert int(partition["last_enqueued_offset"]) >= int(sent["offset"])


def test_unknown_hub_fails_fast(eventhubs_standin: EventHubsStandIn) -> None:
    client = EventHubProducerClient.from_connection_string(
        eventhubs_standin.connection_string, eventhub_name="no-such-hub", retry_total=0
    )
    try:
        with pytest.raises(EventHubError, match="404"):
            bounded(client.get_eventhub_properties)
    finally:
        bounded(client.close)


def receive(
    standin: EventHubsStandIn, partition_id: str, prefix: str, expected: int, **starting: Any
) -> list[EventData]:
    """Runs the real sync consumer on a worker thread until `expected` events carrying `prefix` arrived."""
    consumer = EventHubConsumerClient.from_connection_string(
        standin.connection_string, consumer_group="$Default", eventhub_name=standin.hub_name, retry_total=0
    )
    received: list[EventData] = []

    def on_event(_context: PartitionContext, data: EventData | None) -> None:
        if data is not None and body_bytes(data).startswith(prefix.encode()):
            received.append(data)

    worker = threading.Thread(
        target=consumer.receive,
        kwargs={"on_event": on_event, "partition_id": partition_id, **starting},
        daemon=True,
    )
    worker.start()
    try:
        wait_until(lambda: len(received) >= expected)
    finally:
        bounded(consumer.close)
        worker.join(SDK_TIMEOUT)
    assert not worker.is_alive(), "the consumer did not stop after close()"
    return received


def test_consumer_reads_back_exactly_the_events_sent_to_a_partition(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    key = f"{prefix}-key"
    batch = bounded(lambda: producer.create_batch(partition_key=key))
    for i in range(5):
        batch.add(event(f"{prefix}-{i}", {"n": i}))
    bounded(lambda: producer.send_batch(batch))
    stored = mine(eventhubs_standin, prefix)
    partition = stored[0]["partition"]

    events = receive(eventhubs_standin, partition, prefix, expected=5, starting_position="-1")

    assert [e.body_as_str() for e in events] == [f"{prefix}-{i}" for i in range(5)]
    assert [e.sequence_number for e in events] == [s["sequenceNumber"] for s in stored]
    assert [e.offset for e in events] == [s["offset"] for s in stored]
    assert {e.partition_key for e in events} == {key.encode()}
    assert [e.properties for e in events] == [{b"n": i} for i in range(5)]
    assert all(e.enqueued_time is not None for e in events)


def test_consumer_starts_at_a_sequence_number(
    eventhubs_standin: EventHubsStandIn, producer: EventHubProducerClient
) -> None:
    prefix = marker()
    bounded(lambda: producer.send_batch([EventData(f"{prefix}-{i}") for i in range(4)], partition_id="3"))
    third = mine(eventhubs_standin, prefix)[2]["sequenceNumber"]

    events = receive(
        eventhubs_standin, "3", prefix, expected=2, starting_position=third, starting_position_inclusive=True
    )

    assert [e.body_as_str() for e in events] == [f"{prefix}-2", f"{prefix}-3"]


def test_a_private_standin_serves_its_hub_and_clears(tmp_path: Path) -> None:
    standin = start_eventhubs_standin(tmp_path, hub_name="other-events", partitions=2)
    try:
        client = EventHubProducerClient.from_connection_string(
            standin.connection_string, eventhub_name="other-events", retry_total=0
        )
        try:
            assert bounded(client.get_partition_ids) == ["0", "1"]
            bounded(lambda: client.send_event(EventData("one"), partition_id="1"))
            assert [e["body"] for e in standin.received()] == ["one"]
            standin.clear()
            assert standin.received() == []
            bounded(lambda: client.send_event(EventData("two"), partition_id="1"))
        finally:
            bounded(client.close)
        # Clearing is like retention expiring events: numbering carries on.
        assert [(e["body"], e["sequenceNumber"]) for e in standin.received("other-events")] == [("two", 1)]
    finally:
        standin.stop()
    assert not standin.process.alive()
