"""An event as the outbox stores it (and its envelope for other systems), and what the pure
projections need of an event: its type, the version of the row it carries, its payload and the
correlation id of the request behind it (`ProjectableEvent`). The outbox relay hands projections
stored events; reconcile hands them `ImpliedEvent`s, the events that current rows imply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID


@dataclass(frozen=True)
class StoredEvent:
    id: int  # the outbox row: claim order
    event_id: UUID  # what consumers de-duplicate on
    aggregate_type: str
    aggregate_id: UUID
    aggregate_version: int
    event_type: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    attempts: int = 0
    # The projections took it already; only publishing is left (see relay.py, the two stages).
    projected: bool = False
    # The token of the claim this copy was handed out under (fencing; None outside the relay).
    claim_token: UUID | None = None

    @property
    def aggregate_key(self) -> tuple[str, UUID]:
        return self.aggregate_type, self.aggregate_id

    @property
    def correlation_id(self) -> str | None:
        value = self.metadata.get("correlationId")
        return str(value) if value else None

    def envelope(self) -> dict[str, Any]:
        """The body published to Event Hubs (docs/events.md "The envelope": id, type, aggregate, version, occurredAt, payload,
        metadata)."""
        return {
            "id": str(self.event_id),
            "type": self.event_type,
            "aggregate": {"type": self.aggregate_type, "id": str(self.aggregate_id)},
            "version": self.aggregate_version,
            "occurredAt": self.created_at.isoformat(),
            "payload": self.payload,
            "metadata": self.metadata,
        }


class ProjectableEvent(Protocol):
    """What a projection reads of an event."""

    @property
    def event_type(self) -> str: ...

    @property
    def aggregate_version(self) -> int: ...

    @property
    def payload(self) -> Mapping[str, Any]: ...

    @property
    def correlation_id(self) -> str | None: ...


@dataclass(frozen=True)
class ImpliedEvent:
    """The event that would leave a row as it is now: reconcile projects these to know what Cosmos DB
    should hold, without an outbox row behind them."""

    event_type: str
    aggregate_version: int
    payload: Mapping[str, Any]
    correlation_id: str | None = None
