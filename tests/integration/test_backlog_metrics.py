"""The backlog gauges read real PostgreSQL, as the app login, collected from another thread the way
the exporter collects (the read itself runs on the loop that owns the pool)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from shared_code import metrics
from shared_code.services.health import read_backlog
from tests.support.metrics import backlog_gauges, in_memory_metrics
from tests.support.stack import as_app_login


def seed(database_url: str) -> None:
    """As the owner: 2 pending events (the oldest 90 s old), 1 dead, 1 published, 1 skipped (older than
    every pending one); 2 open change-feed failures and 1 replayed. (status, age in seconds)"""
    events = [("pending", 90), ("pending", 0), ("dead", 3600), ("published", 7200), ("skipped", 9000)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for version, (status, age) in enumerate(events, start=1):
            conn.execute(
                """INSERT INTO outbox (aggregate_type, aggregate_id, aggregate_version, event_type, payload,
                                       status, created_at, published_at,
                                       projected_at, skipped_at, skip_reason)
                   VALUES ('post', %(aggregate)s, %(version)s, 'post.created', '{}', %(status)s,
                           now() - make_interval(secs => %(age)s),
                           CASE WHEN %(status)s = 'published' THEN now() END,
                           CASE WHEN %(status)s = 'published' THEN now() END,
                           CASE WHEN %(status)s = 'skipped' THEN now() END,
                           CASE WHEN %(status)s = 'skipped' THEN 'test: given up' END)""",
                {"aggregate": uuid.uuid4(), "version": version, "status": status, "age": age},
            )
        for replayed in (False, False, True):
            conn.execute(
                """INSERT INTO change_feed_failures (function, container, documents, error, replayed_at)
                   VALUES ('fan_out_posts', 'posts_v2', '[]', 'ServiceRequestError: test',
                           CASE WHEN %s THEN now() END)""",
                (replayed,),
            )


async def test_backlog_gauges_report_what_postgres_holds(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(database_url)
    async with AsyncConnectionPool(
        as_app_login(database_url), min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
    ) as pool:
        with in_memory_metrics(monkeypatch) as reader:
            cache = metrics.watch_backlog(lambda: read_backlog(pool))
            values = backlog_gauges(await asyncio.to_thread(reader.get_metrics_data))
    assert cache.reads == 1
    assert values[metrics.OUTBOX_PENDING] == 2
    assert values[metrics.OUTBOX_DEAD] == 1
    assert values[metrics.CHANGE_FEED_OPEN_FAILURES] == 2
    # Generous upper bound: the test's own time passes between the insert and the read.
    assert 90 <= values[metrics.OUTBOX_OLDEST_PENDING_AGE] < 150
