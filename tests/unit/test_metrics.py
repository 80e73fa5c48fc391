"""The instruments of shared_code/metrics.py, read back through the SDK's in-memory reader."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared_code import metrics
from shared_code.observability import metric_lines
from shared_code.services.health import OutboxHealth
from tests.support.metrics import backlog_gauges, in_memory_metrics, points


@pytest.fixture
def reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    with in_memory_metrics(monkeypatch) as reader:
        yield reader


def test_every_name_is_in_the_chorus_namespace() -> None:
    assert len(metrics.METRIC_NAMES) == 7
    assert all(name.startswith("chorus.") for name in metrics.METRIC_NAMES)


def test_events_published_counts_what_the_relay_reports(reader: InMemoryMetricReader) -> None:
    metrics.record_events_published(3)
    metrics.record_events_published(0)
    metrics.record_events_published(2)
    (point,) = points(reader.get_metrics_data())[metrics.RELAY_EVENTS_PUBLISHED]
    assert point.value == 5


def test_degraded_reads_are_counted_per_route(reader: InMemoryMetricReader) -> None:
    metrics.record_degraded_read("feed")
    metrics.record_degraded_read("feed")
    metrics.record_degraded_read("post")
    by_route = {
        p.attributes["route"]: p.value for p in points(reader.get_metrics_data())[metrics.DEGRADED_READS]
    }
    assert by_route == {"feed": 2, "post": 1}


def test_change_feed_lag_is_the_age_of_the_newest_document_per_function(
    reader: InMemoryMetricReader,
) -> None:
    metrics.record_change_feed_lag(
        "fan_out_posts", [{"_ts": 1000}, {"_ts": 1090}, {"id": "no ts"}], now=1100.5
    )
    metrics.record_change_feed_lag("fan_out_posts", [{"_ts": 1100}], now=1100.25)
    metrics.record_change_feed_lag(
        "count_reactions", [{"_ts": 2000}], now=1999.0
    )  # clock skew: never negative
    metrics.record_change_feed_lag("count_reactions", [{"id": "none has _ts"}], now=5000.0)
    by_function = {
        p.attributes["function"]: p for p in points(reader.get_metrics_data())[metrics.CHANGE_FEED_LAG]
    }
    fan_out = by_function["fan_out_posts"]
    assert (fan_out.count, fan_out.min, fan_out.max) == (2, 0.25, 10.5)
    reactions = by_function["count_reactions"]
    assert (reactions.count, reactions.max) == (1, 0.0)


def test_backlog_gauges_report_nothing_until_a_pool_is_watched(reader: InMemoryMetricReader) -> None:
    metrics.record_events_published(1)
    names = set(points(reader.get_metrics_data()))
    assert metrics.RELAY_EVENTS_PUBLISHED in names
    assert not names & {metrics.OUTBOX_PENDING, metrics.OUTBOX_DEAD, metrics.CHANGE_FEED_OPEN_FAILURES}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def worker_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop on its own thread, as in the Functions worker: the exporter collects from another."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def test_backlog_gauges_come_from_one_cached_read(
    reader: InMemoryMetricReader, worker_loop: asyncio.AbstractEventLoop
) -> None:
    snapshots = iter(
        [
            metrics.BacklogSnapshot(OutboxHealth(pending=4, dead=1, oldest_pending_seconds=42.5), 2),
            metrics.BacklogSnapshot(OutboxHealth(pending=0, dead=0, oldest_pending_seconds=None), 0),
        ]
    )
    read_on: list[asyncio.AbstractEventLoop] = []

    async def read() -> metrics.BacklogSnapshot:
        read_on.append(asyncio.get_running_loop())
        return next(snapshots)

    clock = FakeClock()
    cache = metrics.BacklogCache(read, worker_loop, max_age_seconds=15.0, clock=clock)
    metrics._metrics.backlog = cache

    assert backlog_gauges(reader.get_metrics_data()) == {
        metrics.OUTBOX_PENDING: 4,
        metrics.OUTBOX_DEAD: 1,
        metrics.OUTBOX_OLDEST_PENDING_AGE: 42.5,
        metrics.CHANGE_FEED_OPEN_FAILURES: 2,
    }
    assert cache.reads == 1, "four gauges, one read"
    assert read_on == [worker_loop], "the read runs on the loop that owns the pool"

    clock.now += 14.0
    assert backlog_gauges(reader.get_metrics_data())[metrics.OUTBOX_PENDING] == 4
    assert cache.reads == 1, "a fresh snapshot is not read again"

    clock.now += 2.0
    assert backlog_gauges(reader.get_metrics_data()) == {
        metrics.OUTBOX_PENDING: 0,
        metrics.OUTBOX_DEAD: 0,
        metrics.OUTBOX_OLDEST_PENDING_AGE: 0.0,
        metrics.CHANGE_FEED_OPEN_FAILURES: 0,
    }
    assert cache.reads == 2


def test_a_failed_read_reports_nothing_and_is_not_retried_at_once(
    reader: InMemoryMetricReader, worker_loop: asyncio.AbstractEventLoop
) -> None:
    async def read() -> metrics.BacklogSnapshot:
        raise OSError("connection refused")

    clock = FakeClock()
    cache = metrics.BacklogCache(read, worker_loop, clock=clock)
    metrics._metrics.backlog = cache
    assert backlog_gauges(reader.get_metrics_data()) == {}
    assert backlog_gauges(reader.get_metrics_data()) == {}
    assert cache.reads == 1
    clock.now += metrics.BACKLOG_MAX_AGE_SECONDS
    backlog_gauges(reader.get_metrics_data())
    assert cache.reads == 2


def test_a_read_that_hangs_gives_up_after_its_timeout(worker_loop: asyncio.AbstractEventLoop) -> None:
    never = asyncio.Event()

    async def read() -> metrics.BacklogSnapshot:
        await never.wait()
        raise AssertionError("unreachable")

    cache = metrics.BacklogCache(read, worker_loop, timeout_seconds=0.2)
    assert cache.current() is None


async def test_collecting_on_the_loop_itself_does_not_block_it() -> None:
    """Waiting for the loop from the loop would deadlock: the last snapshot stands instead."""
    snapshot = metrics.BacklogSnapshot(OutboxHealth(pending=1, dead=0, oldest_pending_seconds=3.0), 0)

    async def read() -> metrics.BacklogSnapshot:
        return snapshot

    clock = FakeClock()
    cache = metrics.BacklogCache(read, asyncio.get_running_loop(), clock=clock)
    assert cache.current() is None
    assert await cache.refresh() == snapshot
    clock.now += 60
    assert cache.current() == snapshot
    assert cache.reads == 1


def test_console_lines_name_each_point(reader: InMemoryMetricReader) -> None:
    metrics.record_degraded_read("feed")
    metrics.record_change_feed_lag("fan_out_posts", [{"_ts": 10}], now=12.0)
    text = metric_lines(reader.get_metrics_data())  # type: ignore[arg-type]
    assert "metric chorus.reads.degraded{route=feed} 1\n" in text
    assert "metric chorus.change_feed.lag_seconds{function=fan_out_posts} count=1 sum=2 min=2 max=2\n" in text


async def test_a_change_feed_function_records_its_lag_before_handling(
    reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    import azure.functions as func

    from functions import change_feed
    from shared_code.app_context import AppContext
    from shared_code.bootstrap import use_app_context

    handled: list[list[dict[str, Any]]] = []

    async def handler(service: object, items: list[dict[str, Any]]) -> int:
        handled.append(items)
        return len(items)

    written = time.time() - 30
    documents = func.DocumentList(
        [
            func.Document.from_dict({"id": "a", "_ts": written - 100}),
            func.Document.from_dict({"id": "b", "_ts": written}),
        ]
    )
    use_app_context(cast(AppContext, object()))  # the stub handler needs no clients
    monkeypatch.setattr(change_feed, "change_feed_service", lambda ctx: object())
    try:
        await change_feed._handle(
            "fan_out_posts", "posts_v2", documents, cast(func.Context, object()), handler
        )
    finally:
        use_app_context(None)
    assert [d["id"] for d in handled[0]] == ["a", "b"]
    (point,) = points(reader.get_metrics_data())[metrics.CHANGE_FEED_LAG]
    assert point.attributes == {"function": "fan_out_posts"}
    assert point.count == 1
    assert 30 <= point.max < 90  # the newest document's age, generously bounded above
