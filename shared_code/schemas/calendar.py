"""The event and RSVP routes' bodies (docs/api.md "Events and RSVPs"); limits from
shared_code/domain/event_rules.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, ConfigDict, Field, model_validator

from shared_code.domain.event_rules import (
    EVENT_CATEGORY_MAX,
    EVENT_DESCRIPTION_MAX,
    EVENT_PLACE_MAX,
    EVENT_TITLE_MAX,
    EventVisibility,
    RsvpAnswer,
    RsvpStatus,
)
from shared_code.schemas.common import JSON_INTEGER, NonBlankText, RequestBody, ResponseBody, Text
from shared_code.schemas.posts import Author

# Times are RFC 3339 with an offset, between these years (a bound that keeps every arithmetic on them,
# and PostgreSQL's timestamptz, far from its limits).
EVENT_YEAR_MIN = 2000
EVENT_YEAR_MAX = 2999


def _in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"must be between the years {EVENT_YEAR_MIN} and {EVENT_YEAR_MAX}") from None
    if not EVENT_YEAR_MIN <= utc.year <= EVENT_YEAR_MAX:
        raise ValueError(f"must be between the years {EVENT_YEAR_MIN} and {EVENT_YEAR_MAX}")
    return utc


def _time_string(value: Any) -> Any:
    """A JSON string, as the schema says (pydantic alone would also take a number of seconds)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time with an offset, as a string")
    return value


EventTime = Annotated[
    AwareDatetime,
    BeforeValidator(_time_string),
    AfterValidator(_in_range),
]
EventTitle = Annotated[NonBlankText, Field(min_length=1, max_length=EVENT_TITLE_MAX)]
EventDescription = Annotated[Text, Field(max_length=EVENT_DESCRIPTION_MAX)]
EventPlace = Annotated[Text, Field(max_length=EVENT_PLACE_MAX)]
EventCategory = Annotated[NonBlankText, Field(min_length=1, max_length=EVENT_CATEGORY_MAX)]
# No limit is `null`; a limit is at least one seat (a bound keeps it an int4).
Capacity = Annotated[int, Field(ge=1, le=1_000_000), JSON_INTEGER]


class CreateEvent(RequestBody):
    title: EventTitle
    description: EventDescription = ""
    starts_at: EventTime
    ends_at: EventTime
    place: EventPlace = ""
    category: EventCategory | None = None
    # Seats; null or absent: no limit.
    capacity: Capacity | None = None
    # 'followers': only the host's followers see it (and the host's own audience rule applies anyway).
    visibility: EventVisibility = "public"


def _edit_schema(schema: dict[str, Any]) -> None:
    schema["minProperties"] = 1


class EditEvent(RequestBody):
    """The details to change; those left out stay. `capacity: null` removes the limit."""

    model_config = ConfigDict(json_schema_extra=_edit_schema)

    title: EventTitle | None = None
    description: EventDescription | None = None
    starts_at: EventTime | None = None
    ends_at: EventTime | None = None
    place: EventPlace | None = None
    category: EventCategory | None = None
    capacity: Capacity | None = None
    visibility: EventVisibility | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> EditEvent:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        nulls = sorted(
            name
            for name in self.model_fields_set
            if getattr(self, name) is None and name not in ("capacity", "category")
        )
        if nulls:
            raise ValueError(f"only capacity and category may be null: {', '.join(nulls)}")
        return self


class SetRsvp(RequestBody):
    status: RsvpAnswer


class EventCountsView(ResponseBody):
    going: int
    interested: int
    waitlisted: int


class MyRsvp(ResponseBody):
    status: RsvpStatus
    # 1 for the first in line; null unless waitlisted.
    waitlist_position: int | None


class Event(ResponseBody):
    id: UUID
    host_id: UUID
    host: Author
    title: str
    description: str
    place: str
    category: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int | None
    visibility: EventVisibility
    status: Literal["scheduled", "cancelled"]
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    counts: EventCountsView
    # Null when there is no limit.
    seats_left: int | None
    # The caller's own answer, if any.
    my_rsvp: MyRsvp | None


class Rsvp(ResponseBody):
    event_id: UUID
    status: RsvpStatus
    waitlist_position: int | None
    counts: EventCountsView
