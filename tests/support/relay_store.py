"""A stand-in for the relay's store (shared_code/outbox/store.py) for the relay's unit tests: it answers
the claim with canned events and records every outcome the relay asks it to write, fenced as the SQL is
(only rows still under the last claim's token; `lost` ids act as if another relay had claimed them since).
The store's SQL itself is covered against PostgreSQL in tests/integration/outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from shared_code.domain.stored_event import StoredEvent
from shared_code.outbox.policy import ChargedFailure, ReleasedClaim
from shared_code.outbox.store import Listener, Recorded

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(
    outbox_id: int,
    aggregate: UUID | None = None,
    *,
    attempts: int = 0,
    version: int = 1,
    event_type: str = "post.updated",
    aggregate_type: str = "post",
    payload: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> StoredEvent:
    return StoredEvent(
        id=outbox_id,
        event_id=uuid4(),
        aggregate_type=aggregate_type,
        aggregate_id=aggregate or uuid4(),
        aggregate_version=version,
        event_type=event_type,
        payload=payload or {},
        metadata=metadata or {},
        created_at=NOW,
        attempts=attempts,
    )


@dataclass
class FakeStore:
    """Answers the next claim with `claimable` (once) and records the writes; each call is counted as
    the transaction it is in the real store."""

    claimable: list[StoredEvent]
    lost: set[int] = field(default_factory=set)
    claims: list[dict[str, Any]] = field(default_factory=list)
    published: list[list[int]] = field(default_factory=list)
    projected: list[list[int]] = field(default_factory=list)
    renewed: list[list[int]] = field(default_factory=list)
    failed: list[ChargedFailure] = field(default_factory=list)
    released: list[tuple[int, str]] = field(default_factory=list)
    transactions: int = 0
    token: UUID | None = None

    async def claim(
        self, limit: int, lease_seconds: float, *, project: bool, publish: bool
    ) -> list[StoredEvent]:
        self.transactions += 1
        self.claims.append({"limit": limit, "lease": lease_seconds, "project": project, "publish": publish})
        self.token = uuid4()
        events, self.claimable = self.claimable, []
        return sorted((replace(e, claim_token=self.token) for e in events), key=lambda e: e.id)

    def _held(self, token: UUID | None, event_ids: Sequence[int]) -> list[int]:
        assert token == self.token, "every write is fenced by the claim token"
        return sorted(i for i in event_ids if i not in self.lost)

    async def renew(self, event_ids: Sequence[int], token: UUID | None, lease_seconds: float) -> set[int]:
        self.transactions += 1
        held = self._held(token, event_ids)
        self.renewed.append(held)
        return set(held)

    async def record(
        self,
        token: UUID | None,
        *,
        published: Sequence[int],
        projected: Sequence[int],
        charged: Sequence[ChargedFailure],
        released: Sequence[ReleasedClaim],
    ) -> Recorded:
        self.transactions += 1
        recorded = Recorded()
        if published:
            held = self._held(token, published)
            self.published.append(held)
            recorded.published = len(held)
            recorded.written += len(held)
        if projected:
            held = self._held(token, projected)
            self.projected.append(held)
            recorded.projected = len(held)
            recorded.written += len(held)
        if charged:
            held = self._held(token, [f.event_id for f in charged])
            self.failed.extend(f for f in charged if f.event_id in held)
            recorded.written += len(held)
        if released:
            recorded.written += len(self._held(token, [r.event_id for r in released]))
            self.released.extend((r.event_id, r.note) for r in released)
        return recorded

    async def listen(self) -> Listener | None:
        return None

    @property
    def failed_by_id(self) -> dict[int, tuple[float, str, str]]:
        """outbox id → (delay, status, last_error) of each failure recorded."""
        return {f.event_id: (f.delay_seconds, f.status, f.last_error) for f in self.failed}
