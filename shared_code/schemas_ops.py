"""Bodies of the operations routes (docs/api.md "Operations")."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

from shared_code.schemas import JSON_INTEGER, RequestBody, ResponseBody, Uuid

OutboxId = Annotated[int, Field(ge=1, le=2**63 - 1), JSON_INTEGER]  # a PostgreSQL bigint identity


class RequeueRequest(RequestBody):
    # At most 1000 ids, so that any valid body fits the request size limit (64 KiB by default).
    event_ids: Annotated[list[OutboxId], Field(max_length=1000)] | None = None


class RequeueResult(ResponseBody):
    requeued: int


class ReconcileRequest(RequestBody):
    repair: Annotated[bool, Field(strict=True)] = False
    user_id: Uuid | None = Field(default=None, description="check (and repair) this user's feed")
    feed_sample: Annotated[int, Field(ge=0, le=1000), JSON_INTEGER] = 10


class ReconcileResult(ResponseBody):
    checked: dict[str, int]
    difference_counts: dict[str, int]
    differences: list[dict[str, Any]]
    truncated: bool
    repaired: int


class FeedRebuildResult(ResponseBody):
    user_id: UUID
    written: int
    removed: int


class DriftResult(ResponseBody):
    drifted: bool
    differences: list[dict[str, str]]


class ComponentState(ResponseBody):
    status: str
    latency_ms: float | None = None
    detail: str | None = None


class OutboxState(ResponseBody):
    pending: int
    dead: int
    oldest_pending_seconds: float | None


class Health(ResponseBody):
    status: str
    components: dict[str, ComponentState]
    outbox: OutboxState | None
    reasons: list[str] | None = None
