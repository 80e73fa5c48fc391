"""Bodies of the moderation routes (docs/api.md "Moderation")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError

from shared_code.domain.errors import Invalid
from shared_code.domain.limits import (
    APPEAL_STATEMENT_MAX,
    FLAG_REASON_MAX,
    MODERATION_REASON_MAX,
    QUERY_REASON_MAX,
    AppealDecision,
    ModerationAction,
    Severity,
)
from shared_code.schemas.common import NonBlankText, RequestBody, ResponseBody, Uuid

FlagReason = Annotated[NonBlankText, Field(min_length=1, max_length=FLAG_REASON_MAX)]
DecisionReason = Annotated[NonBlankText, Field(min_length=1, max_length=MODERATION_REASON_MAX)]
_QUERY_REASON: TypeAdapter[str] = TypeAdapter(
    Annotated[NonBlankText, Field(min_length=1, max_length=QUERY_REASON_MAX)]
)


def moderation_reason(value: str | None) -> str | None:
    """A `?reason=` query value: a decision's reason, at most QUERY_REASON_MAX characters (422
    otherwise); None if absent."""
    if value is None:
        return None
    try:
        return _QUERY_REASON.validate_python(value)
    except ValidationError:
        raise Invalid(
            f"reason must be 1 to {QUERY_REASON_MAX} characters, not blank, without NUL", field="reason"
        ) from None


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
    # The post's text when it was flagged, kept with the flag whatever happens to the post later.
    flagged_text: str | None = None


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
    # Set to appeal a moderator's delete of one's comment on that post, rather than a decision on the post.
    comment_id: Uuid | None = None


class AppealDecisionRequest(RequestBody):
    decision: AppealDecision
    reason: DecisionReason


class Appeal(ResponseBody):
    id: UUID
    post_id: UUID
    comment_id: UUID | None = None
    status: str
    created_at: datetime
    decided_at: datetime | None = None
    decision_reason: str | None = None
