"""Conformance of the local Cosmos emulator (devhost/node/cosmos-emulator.js) with what the app needs,
driven through the official azure-cosmos SDK, sync and aio. Every test works in a database of its own.

Waiting is always a poll against a deadline on an observable condition, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy, PartitionKey, exceptions
from azure.cosmos.aio import ContainerProxy as AioContainerProxy
from azure.cosmos.aio import CosmosClient as AioCosmosClient
from azure.cosmos.aio import DatabaseProxy as AioDatabaseProxy

from devhost.services.cosmos import CosmosEmulator, start_cosmos_emulator

pytestmark = [
    # The emulator's certificate is self-signed; the SDK turns verification off for 127.0.0.1 on purpose.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
    pytest.mark.timeout(60),
]

Item = dict[str, Any]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


async def async_wait_for(condition: Callable[[], Awaitable[bool]], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(cosmos_emulator: CosmosEmulator) -> Iterator[CosmosClient]:
    with CosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as cosmos:
        yield cosmos


@pytest.fixture
def database(client: CosmosClient) -> Iterator[DatabaseProxy]:
    db = client.create_database(unique_name("test"))
    yield db
    client.delete_database(db.id)


@pytest.fixture
async def aio_database(cosmos_emulator: CosmosEmulator) -> AsyncIterator[AioDatabaseProxy]:
    # No connection_verify: the aio SDK also skips certificate checks for 127.0.0.1 by itself.
    async with AioCosmosClient(cosmos_emulator.endpoint, credential=cosmos_emulator.key) as cosmos:
        db = await cosmos.create_database(unique_name("test"))
        yield db
        await cosmos.delete_database(db.id)


def make_container(database: DatabaseProxy, **options: Any) -> ContainerProxy:
    container: ContainerProxy = database.create_container(
        unique_name("c"), partition_key=PartitionKey(path="/pk"), **options
    )
    return container


def ids(items: Iterable[Item]) -> list[str]:
    return [item["id"] for item in items]


def page_token(pages: object) -> str:
    """The continuation token of a `by_page()` iterator after a non-empty page."""
    token = getattr(pages, "continuation_token", None)
    assert token, "the page carried no continuation token"
    return str(token)


def feed_continuation(container: ContainerProxy | AioContainerProxy) -> str:
    """Where a change feed read left off, even after an empty page: the SDK rewrites the `etag` of the
    client's last response into its resumable (base64) continuation."""
    etag = container.client_connection.last_response_headers.get("etag")
    assert etag, "the change feed response carried no continuation"
    return str(etag)


# --- service lifecycle ---


def test_emulator_starts_on_an_os_chosen_port_and_stops_cleanly(tmp_path: Path) -> None:
    emulator = start_cosmos_emulator(tmp_path, timeout=30)
    try:
        assert emulator.port > 0
        assert emulator.endpoint == f"https://127.0.0.1:{emulator.port}/"
        assert emulator.connection_string == f"AccountEndpoint={emulator.endpoint};AccountKey={emulator.key};"
        with CosmosClient(emulator.endpoint, credential=emulator.key) as cosmos:
            assert list(cosmos.list_databases()) == []
    finally:
        emulator.stop()
    assert emulator.process.popen.returncode == 0
    ready_line = json.dumps({"ready": True, "port": emulator.port}, separators=(",", ":"))
    assert ready_line in emulator.process.log_path.read_text().splitlines()


# --- databases, containers, items ---


def test_create_if_not_exists_keeps_container_settings(client: CosmosClient) -> None:
    name = unique_name("test")
    indexing_policy = {
        "indexingMode": "consistent",
        "includedPaths": [{"path": "/*"}],
        "compositeIndexes": [[{"path": "/a", "order": "ascending"}, {"path": "/b", "order": "descending"}]],
    }
    unique_key_policy = {"uniqueKeys": [{"paths": ["/email"]}]}
    try:
        db = client.create_database_if_not_exists(name)
        assert client.create_database_if_not_exists(name).id == name
        for _ in range(2):
            container = db.create_container_if_not_exists(
                "things",
                partition_key=PartitionKey(path="/pk"),
                indexing_policy=indexing_policy,
                default_ttl=3600,
                unique_key_policy=unique_key_policy,
            )
        props = container.read()
        assert props["partitionKey"]["paths"] == ["/pk"]
        assert props["defaultTtl"] == 3600
        assert props["uniqueKeyPolicy"] == unique_key_policy
        assert props["indexingPolicy"]["compositeIndexes"] == indexing_policy["compositeIndexes"]
    finally:
        client.delete_database(name)


def test_item_crud_with_cosmos_status_codes(database: DatabaseProxy) -> None:
    container = make_container(database)
    created = container.create_item({"id": "a", "pk": "p", "n": 1})
    assert created["_etag"]
    assert created["_rid"]
    assert isinstance(created["_ts"], int)
    with pytest.raises(exceptions.CosmosResourceExistsError) as conflict:
        container.create_item({"id": "a", "pk": "p", "n": 2})
    assert conflict.value.status_code == 409
    # Same id in another logical partition is a different item.
    container.create_item({"id": "a", "pk": "q", "n": 3})

    assert container.read_item("a", partition_key="p")["n"] == 1
    assert container.replace_item("a", {"id": "a", "pk": "p", "n": 4})["n"] == 4
    assert container.upsert_item({"id": "a", "pk": "p", "n": 5})["n"] == 5
    assert container.upsert_item({"id": "b", "pk": "p", "n": 6})["n"] == 6
    container.delete_item("a", partition_key="p")
    assert container.read_item("a", partition_key="q")["n"] == 3

    for attempt in (
        lambda: container.read_item("a", partition_key="p"),
        lambda: container.replace_item("a", {"id": "a", "pk": "p"}),
        lambda: container.patch_item("a", "p", [{"op": "set", "path": "/n", "value": 1}]),
        lambda: container.delete_item("a", partition_key="p"),
        lambda: database.get_container_client("missing").read_item("a", partition_key="p"),
        # Straight to the item route of a missing database, past the SDK's container lookup.
        lambda: database.client_connection.ReadItem(
            f"dbs/{unique_name('none')}/colls/x/docs/a", {"partitionKey": "p"}
        ),
    ):
        with pytest.raises(exceptions.CosmosResourceNotFoundError) as missing:
            attempt()
        assert missing.value.status_code == 404
        assert "NotFound" in str(missing.value)


def test_etag_match_conditions(database: DatabaseProxy) -> None:
    container = make_container(database)
    first = container.create_item({"id": "a", "pk": "p", "v": 1})
    second = container.replace_item("a", {"id": "a", "pk": "p", "v": 2})
    assert second["_etag"] != first["_etag"]

    stale = {"etag": first["_etag"], "match_condition": MatchConditions.IfNotModified}
    with pytest.raises(exceptions.CosmosAccessConditionFailedError) as failed:
        container.replace_item("a", {"id": "a", "pk": "p", "v": 3}, **stale)
    assert failed.value.status_code == 412
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        container.upsert_item({"id": "a", "pk": "p", "v": 3}, **stale)
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        container.delete_item("a", partition_key="p", **stale)
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        container.patch_item("a", "p", [{"op": "set", "path": "/v", "value": 9}], **stale)
    assert container.read_item("a", partition_key="p")["v"] == 2

    current = {"etag": second["_etag"], "match_condition": MatchConditions.IfNotModified}
    assert container.replace_item("a", {"id": "a", "pk": "p", "v": 3}, **current)["v"] == 3


def test_unique_keys_are_enforced_per_logical_partition(database: DatabaseProxy) -> None:
    container = make_container(database, unique_key_policy={"uniqueKeys": [{"paths": ["/email"]}]})
    container.create_item({"id": "1", "pk": "p", "email": "x@example.com"})
    with pytest.raises(exceptions.CosmosResourceExistsError):
        container.create_item({"id": "2", "pk": "p", "email": "x@example.com"})
    container.create_item({"id": "2", "pk": "q", "email": "x@example.com"})
    # Changing the value frees it.
    container.upsert_item({"id": "1", "pk": "p", "email": "y@example.com"})
    container.create_item({"id": "3", "pk": "p", "email": "x@example.com"})


def test_patch_operations_and_filter_predicate(database: DatabaseProxy) -> None:
    container = make_container(database)
    container.create_item({"id": "a", "pk": "p", "likes": 1, "tags": ["x"], "old": True, "status": "open"})
    patched = container.patch_item(
        "a",
        "p",
        [
            {"op": "incr", "path": "/likes", "value": 2},
            {"op": "add", "path": "/tags/-", "value": "y"},
            {"op": "set", "path": "/title", "value": "t"},
            {"op": "remove", "path": "/old"},
        ],
    )
    assert patched["likes"] == 3
    assert patched["tags"] == ["x", "y"]
    assert patched["title"] == "t"
    assert "old" not in patched

    ok = container.patch_item(
        "a",
        "p",
        [{"op": "incr", "path": "/likes", "value": 1}],
        filter_predicate="FROM c WHERE c.status = 'open'",
    )
    assert ok["likes"] == 4
    with pytest.raises(exceptions.CosmosAccessConditionFailedError) as failed:
        container.patch_item(
            "a",
            "p",
            [{"op": "incr", "path": "/likes", "value": 1}],
            filter_predicate="FROM c WHERE c.status = 'x'",
        )
    assert failed.value.status_code == 412
    with pytest.raises(exceptions.CosmosHttpResponseError) as bad:
        container.patch_item("a", "p", [{"op": "replace", "path": "/nope/deeper", "value": 1}])
    assert bad.value.status_code == 400
    assert container.read_item("a", partition_key="p")["likes"] == 4


# --- queries ---


def test_queries_are_scoped_by_the_partition_key_option(database: DatabaseProxy) -> None:
    container = make_container(database)
    for pk in ("p", "q"):
        for i in range(3):
            container.create_item({"id": f"{pk}{i}", "pk": pk, "kind": "post", "n": i})

    scoped = list(container.query_items("SELECT * FROM c WHERE c.kind = 'post'", partition_key="p"))
    assert sorted(ids(scoped)) == ["p0", "p1", "p2"]
    assert sorted(ids(container.query_items("SELECT * FROM c", partition_key="q"))) == ["q0", "q1", "q2"]
    # The option is the scope even when WHERE names another partition.
    assert list(container.query_items("SELECT * FROM c WHERE c.pk = 'q'", partition_key="p")) == []
    parameterized = container.query_items(
        "SELECT VALUE c.id FROM c WHERE c.pk = @pk AND c.n IN (0, 2)",
        parameters=[{"name": "@pk", "value": "q"}],
        partition_key="q",
    )
    assert sorted(str(value) for value in parameterized) == ["q0", "q2"]

    everything = container.query_items("SELECT * FROM c", enable_cross_partition_query=True)
    assert len(list(everything)) == 6
    count: list[Any] = list(
        container.query_items("SELECT VALUE COUNT(1) FROM c", enable_cross_partition_query=True)
    )
    assert count == [6]


def test_order_by_on_a_composite_index_pages_with_continuation_tokens(database: DatabaseProxy) -> None:
    container = make_container(
        database,
        indexing_policy={
            "compositeIndexes": [
                [{"path": "/pk", "order": "ascending"}, {"path": "/score", "order": "descending"}],
            ]
        },
    )
    for i in range(10):
        container.create_item({"id": f"i{i}", "pk": "p", "score": i % 4})
    container.create_item({"id": "other", "pk": "q", "score": 99})
    query = "SELECT * FROM c ORDER BY c.pk ASC, c.score DESC"
    expected = ids(list(container.query_items(query, partition_key="p")))
    assert [s["score"] for s in container.query_items(query, partition_key="p")] == sorted(
        [i % 4 for i in range(10)], reverse=True
    )

    pages = container.query_items(query, partition_key="p", max_item_count=3).by_page()
    first = list(next(pages))
    token = page_token(pages)
    assert len(first) == 3
    # Resume from the token with a fresh iterator, as a stateless API handler would.
    rest: list[Item] = []
    for page in container.query_items(query, partition_key="p", max_item_count=3).by_page(token):
        rest.extend(page)
    assert ids(first) + ids(rest) == expected

    with pytest.raises(exceptions.CosmosHttpResponseError) as no_index:
        list(container.query_items("SELECT * FROM c ORDER BY c.score ASC, c.id ASC", partition_key="p"))
    assert no_index.value.status_code == 400


def test_read_items_returns_the_found_items(database: DatabaseProxy) -> None:
    container = make_container(database)
    for pk, item_id in (("p", "a"), ("p", "b"), ("q", "c")):
        container.create_item({"id": item_id, "pk": pk})
    found = container.read_items([("a", "p"), ("c", "q"), ("missing", "p"), ("b", "q")])
    assert sorted(ids(found)) == ["a", "c"]
    assert ids(container.read_items([("b", "p")])) == ["b"]


# --- TTL ---


def test_ttl_expires_items_everywhere_and_only_when_enabled(database: DatabaseProxy) -> None:
    ttl_on = make_container(database, default_ttl=-1)  # on, no default expiry
    ttl_default = make_container(database, default_ttl=1)
    ttl_off = make_container(database)
    ttl_on.create_item({"id": "short", "pk": "p", "ttl": 1})
    ttl_on.create_item({"id": "forever", "pk": "p"})
    ttl_default.create_item({"id": "default", "pk": "p"})
    ttl_default.create_item({"id": "pinned", "pk": "p", "ttl": -1})
    ttl_off.create_item({"id": "ignored", "pk": "p", "ttl": 1})
    assert ttl_on.read_item("short", partition_key="p")["ttl"] == 1

    def gone(container: ContainerProxy, item_id: str) -> bool:
        try:
            container.read_item(item_id, partition_key="p")
        except exceptions.CosmosResourceNotFoundError:
            return True
        return False

    wait_for(lambda: gone(ttl_on, "short") and gone(ttl_default, "default"), "items with a 1 s TTL to expire")
    assert ids(ttl_on.query_items("SELECT * FROM c", partition_key="p")) == ["forever"]
    assert ids(ttl_on.query_items_change_feed(start_time="Beginning")) == ["forever"]
    assert ids(ttl_default.query_items("SELECT * FROM c", enable_cross_partition_query=True)) == ["pinned"]
    assert ids(ttl_default.query_items_change_feed(start_time="Beginning")) == ["pinned"]
    # The TTL-off container ignores the item's ttl although it is past.
    assert ttl_off.read_item("ignored", partition_key="p")["id"] == "ignored"
    # An expired id is free again.
    assert ttl_on.create_item({"id": "short", "pk": "p"})["id"] == "short"


# --- transactional batch ---


def test_batch_runs_every_operation_type(database: DatabaseProxy) -> None:
    container = make_container(database)
    existing = container.create_item({"id": "e", "pk": "p", "n": 1})
    container.create_item({"id": "gone", "pk": "p"})
    results = container.execute_item_batch(
        [
            ("create", ({"id": "c", "pk": "p"},)),
            ("upsert", ({"id": "u", "pk": "p", "n": 2},)),
            ("replace", ("e", {"id": "e", "pk": "p", "n": 3}), {"if_match_etag": existing["_etag"]}),
            ("read", ("e",)),
            ("delete", ("gone",)),
            (
                "patch",
                ("u", [{"op": "incr", "path": "/n", "value": 5}]),
                {"filter_predicate": "FROM c WHERE c.n = 2"},
            ),
        ],
        partition_key="p",
    )
    assert [r["statusCode"] for r in results] == [201, 201, 200, 200, 204, 200]
    assert results[3]["resourceBody"]["n"] == 3
    assert results[5]["resourceBody"]["n"] == 7
    assert sorted(ids(container.query_items("SELECT * FROM c", partition_key="p"))) == ["c", "e", "u"]


def test_failed_batch_applies_nothing(database: DatabaseProxy) -> None:
    container = make_container(database)
    container.create_item({"id": "e", "pk": "p", "n": 1})
    container.create_item({"id": "keep", "pk": "p"})
    with pytest.raises(exceptions.CosmosBatchOperationError) as failed:
        container.execute_item_batch(
            [
                ("create", ({"id": "new", "pk": "p"},)),
                ("upsert", ({"id": "e", "pk": "p", "n": 2},)),
                ("delete", ("keep",)),
                ("create", ({"id": "e", "pk": "p"},)),  # conflict
                ("create", ({"id": "later", "pk": "p"},)),
            ],
            partition_key="p",
        )
    assert failed.value.error_index == 3
    assert failed.value.status_code == 409
    assert [r["statusCode"] for r in failed.value.operation_responses] == [424, 424, 424, 409, 424]
    assert sorted(ids(container.query_items("SELECT * FROM c", partition_key="p"))) == ["e", "keep"]
    assert container.read_item("e", partition_key="p")["n"] == 1

    stale = [("replace", ("e", {"id": "e", "pk": "p", "n": 5}), {"if_match_etag": '"stale"'})]
    with pytest.raises(exceptions.CosmosBatchOperationError) as precondition:
        container.execute_item_batch(stale, partition_key="p")
    assert precondition.value.status_code == 412
    with pytest.raises(exceptions.CosmosBatchOperationError) as wrong_partition:
        container.execute_item_batch([("create", ({"id": "x", "pk": "other"},))], partition_key="p")
    assert wrong_partition.value.status_code == 400
    # A failed batch does not advance the change feed either.
    assert ids(container.query_items_change_feed(start_time="Beginning")) == ["e", "keep"]


def test_delete_all_items_by_partition_key(database: DatabaseProxy) -> None:
    container = make_container(database)
    for pk in ("p", "q"):
        for i in range(3):
            container.create_item({"id": f"{pk}{i}", "pk": pk})
    container.delete_all_items_by_partition_key("p")
    assert sorted(ids(container.query_items("SELECT * FROM c", enable_cross_partition_query=True))) == [
        "q0",
        "q1",
        "q2",
    ]


# --- change feed (latest version) ---


def test_change_feed_from_beginning_has_each_item_once_at_its_latest_change(database: DatabaseProxy) -> None:
    container = make_container(database)
    for item_id in ("a", "b", "c", "d"):
        container.create_item({"id": item_id, "pk": "p", "v": 1})
    container.upsert_item({"id": "a", "pk": "p", "v": 2})
    container.delete_item("b", partition_key="p")
    container.patch_item("c", "p", [{"op": "set", "path": "/v", "value": 3}])

    feed = list(container.query_items_change_feed(start_time="Beginning"))
    assert ids(feed) == ["d", "a", "c"]
    assert [item["v"] for item in feed] == [1, 2, 3]
    lsns = [item["_lsn"] for item in feed]
    assert lsns == sorted(lsns)
    assert len(set(lsns)) == 3


def test_change_feed_pages_and_resumes_from_continuations(database: DatabaseProxy) -> None:
    container = make_container(database)
    for i in range(7):
        container.create_item({"id": f"i{i}", "pk": f"p{i % 2}"})

    pages = container.query_items_change_feed(start_time="Beginning", max_item_count=3).by_page()
    first = list(next(pages))
    token = page_token(pages)
    assert ids(first) == ["i0", "i1", "i2"]
    container.upsert_item({"id": "i0", "pk": "p0", "v": 2})  # moves to the end

    seen: list[str] = []
    resumed = container.query_items_change_feed(continuation=token, max_item_count=3).by_page()
    for page in resumed:
        chunk = ids(list(page))
        assert 0 < len(chunk) <= 3
        seen.extend(chunk)
    assert seen == ["i3", "i4", "i5", "i6", "i0"]

    # Drained: an empty page (HTTP 304) still leaves a continuation that resumes exactly there.
    token = feed_continuation(container)
    assert list(container.query_items_change_feed(continuation=token)) == []
    token = feed_continuation(container)
    container.create_item({"id": "new", "pk": "p1"})
    assert ids(container.query_items_change_feed(continuation=token)) == ["new"]


def test_change_feed_from_now(database: DatabaseProxy) -> None:
    container = make_container(database)
    container.create_item({"id": "before", "pk": "p"})
    # A "Now" read with nothing new returns no items; the position it established is only in the
    # client's last response (by_page().continuation_token stays None on an empty page).
    assert list(container.query_items_change_feed(start_time="Now")) == []
    token = feed_continuation(container)
    container.create_item({"id": "after", "pk": "p"})
    container.upsert_item({"id": "before", "pk": "p", "v": 2})
    assert ids(container.query_items_change_feed(continuation=token)) == ["after", "before"]


def test_change_feed_from_a_point_in_time(database: DatabaseProxy) -> None:
    container = make_container(database)
    earlier = container.create_item({"id": "earlier", "pk": "p"})
    # The start time travels in whole seconds (If-Modified-Since), so start at the next second.
    wait_for(lambda: time.time() >= earlier["_ts"] + 1, "the clock to pass the first item's second")
    start = datetime.now(UTC)
    container.create_item({"id": "later", "pk": "p"})
    assert ids(container.query_items_change_feed(start_time=start)) == ["later"]
    assert ids(container.query_items_change_feed(start_time=datetime(2000, 1, 1, tzinfo=UTC))) == [
        "earlier",
        "later",
    ]


def test_a_partitions_change_feed_follows_rewrites_and_deletes_after_its_first_read(
    database: DatabaseProxy,
) -> None:
    # The emulator builds a partition's own feed log on the first read scoped to it; the writes after
    # that must move, add and drop its items exactly as before the first read.
    container = make_container(database)
    for i in range(4):
        container.create_item({"id": f"i{i}", "pk": "p"})
    container.upsert_item({"id": "i0", "pk": "p", "v": 2})
    assert ids(container.query_items_change_feed(start_time="Beginning", partition_key="p")) == [
        "i1",
        "i2",
        "i3",
        "i0",
    ]
    container.upsert_item({"id": "i1", "pk": "p", "v": 2})
    container.delete_item("i2", partition_key="p")
    container.create_item({"id": "i4", "pk": "p"})
    feed = list(container.query_items_change_feed(start_time="Beginning", partition_key="p"))
    assert ids(feed) == ["i3", "i0", "i1", "i4"]
    assert [item.get("v") for item in feed] == [None, 2, 2, None]


def test_change_feed_per_partition_key_and_feed_range(database: DatabaseProxy) -> None:
    container = make_container(database)
    for i in range(6):
        container.create_item({"id": f"i{i}", "pk": f"p{i % 3}"})

    assert ids(container.query_items_change_feed(start_time="Beginning", partition_key="p1")) == ["i1", "i4"]
    pages = container.query_items_change_feed(
        start_time="Beginning", partition_key="p2", max_item_count=1
    ).by_page()
    assert ids(list(next(pages))) == ["i2"]
    token = page_token(pages)
    container.create_item({"id": "x", "pk": "p0"})
    container.create_item({"id": "y", "pk": "p2"})
    assert ids(container.query_items_change_feed(continuation=token)) == ["i5", "y"]

    ranges = list(container.read_feed_ranges())
    assert len(ranges) == 1  # one physical partition: its range covers every item
    whole = ids(container.query_items_change_feed(start_time="Beginning", feed_range=ranges[0]))
    assert whole == ["i0", "i1", "i2", "i3", "i4", "i5", "x", "y"]
    one = container.feed_range_from_partition_key("p0")
    assert container.is_feed_range_subset(ranges[0], one)
    assert ids(container.query_items_change_feed(start_time="Beginning", feed_range=one)) == ["i0", "i3", "x"]


# --- aio client ---


@pytest.mark.asyncio
async def test_aio_items_queries_and_errors(aio_database: AioDatabaseProxy) -> None:
    composite: dict[str, Any] = {
        "compositeIndexes": [[{"path": "/pk", "order": "ascending"}, {"path": "/n", "order": "descending"}]]
    }
    container = await aio_database.create_container_if_not_exists(
        unique_name("c"), partition_key=PartitionKey(path="/pk"), indexing_policy=composite
    )
    for i in range(5):
        await container.create_item({"id": f"i{i}", "pk": "p", "n": i})
    await container.create_item({"id": "o", "pk": "q", "n": 9})
    with pytest.raises(exceptions.CosmosResourceExistsError):
        await container.create_item({"id": "i0", "pk": "p"})
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        await container.read_item("nope", partition_key="p")
    item = await container.read_item("i1", partition_key="p")
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        await container.replace_item(
            "i1",
            {"id": "i1", "pk": "p", "n": 1},
            etag='"stale"',
            match_condition=MatchConditions.IfNotModified,
        )
    await container.replace_item(
        "i1",
        {"id": "i1", "pk": "p", "n": 1},
        etag=item["_etag"],
        match_condition=MatchConditions.IfNotModified,
    )
    patched = await container.patch_item("i1", "p", [{"op": "incr", "path": "/n", "value": 10}])
    assert patched["n"] == 11

    query = "SELECT * FROM c ORDER BY c.pk ASC, c.n DESC"
    pages = container.query_items(query, partition_key="p", max_item_count=2).by_page()
    first = [i async for i in await pages.__anext__()]
    token = page_token(pages)
    resumed = container.query_items(query, partition_key="p", max_item_count=2).by_page(token)
    rest = [i async for page in resumed async for i in page]
    assert ids(first) + ids(rest) == ["i1", "i4", "i3", "i2", "i0"]
    everything = [i async for i in container.query_items("SELECT * FROM c")]
    assert len(everything) == 6


@pytest.mark.asyncio
async def test_aio_batch_and_ttl(aio_database: AioDatabaseProxy) -> None:
    container = await aio_database.create_container(
        unique_name("c"), partition_key=PartitionKey(path="/pk"), default_ttl=-1
    )
    results = await container.execute_item_batch(
        [("create", ({"id": "a", "pk": "p", "ttl": 1},)), ("create", ({"id": "b", "pk": "p"},))],
        partition_key="p",
    )
    assert [r["statusCode"] for r in results] == [201, 201]
    with pytest.raises(exceptions.CosmosBatchOperationError) as failed:
        await container.execute_item_batch(
            [("upsert", ({"id": "c", "pk": "p"},)), ("read", ("missing",))], partition_key="p"
        )
    assert [r["statusCode"] for r in failed.value.operation_responses] == [424, 404]

    async def expired() -> bool:
        return [i["id"] async for i in container.query_items("SELECT * FROM c", partition_key="p")] == ["b"]

    await async_wait_for(expired, "the 1 s TTL item to expire")
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        await container.read_item("a", partition_key="p")


@pytest.mark.asyncio
async def test_aio_change_feed(aio_database: AioDatabaseProxy) -> None:
    container = await aio_database.create_container(unique_name("c"), partition_key=PartitionKey(path="/pk"))
    for i in range(4):
        await container.create_item({"id": f"i{i}", "pk": f"p{i % 2}"})
    await container.upsert_item({"id": "i0", "pk": "p0", "v": 2})

    assert [i["id"] async for i in container.query_items_change_feed(start_time="Beginning")] == [
        "i1",
        "i2",
        "i3",
        "i0",
    ]
    by_key = container.query_items_change_feed(start_time="Beginning", partition_key="p1")
    assert [i["id"] async for i in by_key] == ["i1", "i3"]
    ranges = [r async for r in container.read_feed_ranges()]
    whole = container.query_items_change_feed(start_time="Beginning", feed_range=ranges[0])
    assert len([i async for i in whole]) == 4

    # Paging plus resuming from a page's continuation token.
    pages = container.query_items_change_feed(start_time="Beginning", max_item_count=3).by_page()
    first = [i["id"] async for i in await pages.__anext__()]
    token = page_token(pages)
    assert first == ["i1", "i2", "i3"]
    assert [i["id"] async for i in container.query_items_change_feed(continuation=token)] == ["i0"]

    # "Now": the position of an empty read is in the client's last response.
    assert [i async for i in container.query_items_change_feed(start_time="Now")] == []
    now_token = feed_continuation(container)
    await container.create_item({"id": "fresh", "pk": "p0"})
    assert [i["id"] async for i in container.query_items_change_feed(continuation=now_token)] == ["fresh"]


def test_provisioning_brings_a_kept_containers_composite_indexes_and_ttl_up_to_the_files(
    database: DatabaseProxy, client: CosmosClient
) -> None:
    """Data kept from an older version (`make run ARGS=--keep-data`): userFeed made without the keyset's
    composite index and without TTL gets both, so the feed's keyset query works and items expire."""
    from devhost.cosmos_provisioning import COSMOS_INDEXES_DIR, provision

    database.create_container(
        id="userFeed",
        partition_key=PartitionKey(path="/recipientId"),
        indexing_policy={"indexingMode": "consistent", "automatic": True, "includedPaths": [{"path": "/*"}]},
    )
    provision(client, database.id)
    wanted = json.loads((COSMOS_INDEXES_DIR / "userFeed.json").read_text())
    properties = database.get_container_client("userFeed").read()
    assert properties["indexingPolicy"]["compositeIndexes"] == wanted["indexingPolicy"]["compositeIndexes"]
    assert properties["defaultTtl"] == wanted["defaultTtl"]
    feed = database.get_container_client("userFeed")
    feed.create_item({"id": "r:p", "recipientId": "r", "postId": "p", "createdAt": "2026-12-03T00:00:00Z"})
    query = "SELECT c.postId FROM c WHERE c.recipientId = @r ORDER BY c.createdAt DESC, c.postId DESC"
    found = feed.query_items(query, parameters=[{"name": "@r", "value": "r"}], partition_key="r")
    assert [item["postId"] for item in found] == ["p"]
