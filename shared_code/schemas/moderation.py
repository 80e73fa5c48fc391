"""Bodies of the moderation routes (docs/api.md "Moderation")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field

from shared_code.domain.limits import (
    APPEAL_STATEMENT_MAX,
    FLAG_REASON_MAX,
    MODERATION_REASON_MAX,
    AppealDecision,
    ModerationAction,
    Severity,
)
from shared_code.schemas.common import NonBlankText, RequestBody, ResponseBody, Uuid

FlagReason = Annotated[NonBlankText, Field(min_length=1, max_length=FLAG_REASON_MAX)]
DecisionReason = Annotated[NonBlankText, Field(min_length=1, max_length=MODERATION_REASON_MAX)]


class CreateFlag(RequestBody):
    reason: FlagReason
    severity: Severity = "low"


class Flag(ResponseBody):
    id: UUID
    post_id: UUID
    reason: str
    severity: str
    status: str
    created_at: datetime


class PostDecision(RequestBody):
    action: ModerationAction
    reason: DecisionReason


class ModerationOutcome(ResponseBody):
    post_id: UUID
    status: str
    action: str
    changed: bool


class QueueItem(ResponseBody):
    post_id: UUID
    author_id: UUID
    content: str
    status: str
    open_flags: int
    last_action: str | None
    updated_at: datetime


class CreateAppeal(RequestBody):
    post_id: Uuid
    statement: Annotated[NonBlankText, Field(min_length=1, max_length=APPEAL_STATEMENT_MAX)]


class AppealDecisionRequest(RequestBody):
    decision: AppealDecision
    reason: DecisionReason


class Appeal(ResponseBody):
    id: UUID
    post_id: UUID
    status: str
    created_at: datetime
    decided_at: datetime | None = None
    decision_reason: str | None = None
