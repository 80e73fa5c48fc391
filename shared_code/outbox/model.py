"""An event as the outbox stores it, and its envelope for other systems."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
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
