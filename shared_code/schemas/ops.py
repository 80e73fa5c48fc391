"""Bodies of the operations routes (docs/api.md "Operations")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import Field

from shared_code.domain.limits import BIGINT_MAX, OPERATOR_IDS_MAX, SKIP_REASON_MAX
from shared_code.schemas.common import JSON_INTEGER, NonBlankText, RequestBody, ResponseBody, Uuid

# A change-feed failure's id in a route: digits (a bigint identity); any other value answers 404.
FAILURE_ID_PATTERN: Final = r"^[0-9]{1,19}$"
OutboxId = Annotated[int, Field(ge=1, le=BIGINT_MAX), JSON_INTEGER]  # a PostgreSQL bigint identity


class RequeueRequest(RequestBody):
    event_ids: Annotated[list[OutboxId], Field(max_length=OPERATOR_IDS_MAX)] | None = None


class RequeueResult(ResponseBody):
    requeued: int


class SkipRequest(RequestBody):
    event_ids: Annotated[list[OutboxId], Field(min_length=1, max_length=OPERATOR_IDS_MAX)]
    reason: Annotated[
        NonBlankText,
        Field(
            min_length=1,
            max_length=SKIP_REASON_MAX,
            description="why these events are given up; recorded on each",
        ),
    ]


class SkipResult(ResponseBody):
    skipped: list[int] = Field(description="the dead events skipped; a listed event that was not dead is not")


class ChangeFeedFailure(ResponseBody):
    id: int
    function: str
    container: str
    document_ids: list[str]
    error: str
    correlation_ids: list[str]
    failed_at: datetime


class ChangeFeedFailures(ResponseBody):
    failures: list[ChangeFeedFailure]
    truncated: bool = Field(description="more open failures exist than listed (the oldest are listed)")


class ReplayResult(ResponseBody):
    id: int
    replayed: bool
    documents: int


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


class Liveness(ResponseBody):
    """GET /api/health: this instance is up; it asks no dependency and tells nothing internal."""

    status: Literal["alive"]


class Health(ResponseBody):
    status: str
    components: dict[str, ComponentState]
    outbox: OutboxState | None
    reasons: list[str] | None = None
