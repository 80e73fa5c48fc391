"""The relay counts what it publishes (chorus.relay.events_published), and only that."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shared_code import metrics
from shared_code.bootstrap import outbox_relay
from tests.support.metrics import in_memory_metrics, points
from tests.support.pipeline import Owner, People, run_until_idle

if TYPE_CHECKING:
    from shared_code.app_context import AppContext


async def test_the_relay_counts_the_events_it_published(
    app_context: AppContext, people: People, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    await people.join("alice", "bob")
    await people.edge("PUT", "bob", "follow", "alice")
    await people.post("alice", "counted")
    with in_memory_metrics(monkeypatch) as reader:
        published = await run_until_idle(outbox_relay(app_context))
        (point,) = points(reader.get_metrics_data())[metrics.RELAY_EVENTS_PUBLISHED]
        # A second pass finds nothing to publish and adds nothing.
        await run_until_idle(outbox_relay(app_context))
        (again,) = points(reader.get_metrics_data())[metrics.RELAY_EVENTS_PUBLISHED]
    events = await owner.scalar("SELECT count(*) FROM outbox WHERE status = 'published'")
    assert published == events >= 4
    assert point.value == again.value == events
