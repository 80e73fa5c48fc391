"""Events and RSVPs, the pure rules (docs/api.md "Events and RSVPs"): the limits of an event's fields,
what an RSVP becomes given the seats left, what it does to the counts, how many waiting answers a
freed seat promotes, who may see an event, and the window GET /api/events may ask for.

"Event" here is a gathering a user hosts, not a domain event of the outbox (shared_code/domain/events.py).
The database repeats the limits in CHECK constraints (sql/0023_events_and_rsvps.sql).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args
from uuid import UUID

from shared_code.domain.privacy import AuthorAudience, may_see_content, shows_in_listings

EVENT_TITLE_MAX: Final = 200
EVENT_DESCRIPTION_MAX: Final = 5000
EVENT_PLACE_MAX: Final = 300
EVENT_CATEGORY_MAX: Final = 50
# The longest an event may last, and the widest window GET /api/events lists (each bounds a read).
EVENT_DURATION_MAX: Final = timedelta(days=31)
EVENT_WINDOW_MAX: Final = timedelta(days=92)
EVENT_WINDOW_DEFAULT: Final = timedelta(days=30)

EventVisibility = Literal["public", "followers"]
EVENT_VISIBILITIES: Final[tuple[EventVisibility, ...]] = get_args(EventVisibility)
# What a caller asks for; 'waitlisted' is what 'going' becomes when the event is full.
RsvpAnswer = Literal["going", "interested", "not_going"]
RSVP_ANSWERS: Final[tuple[RsvpAnswer, ...]] = get_args(RsvpAnswer)
RsvpStatus = Literal["going", "interested", "not_going", "waitlisted"]
RSVP_STATUSES: Final[tuple[RsvpStatus, ...]] = get_args(RsvpStatus)


def rsvp_status(value: str) -> RsvpStatus:
    """A stored status as its type (the database's CHECK keeps it one of RSVP_STATUSES)."""
    for status in RSVP_STATUSES:
        if value == status:
            return status
    raise ValueError(f"not an RSVP status: {value!r}")


def check_times(starts_at: datetime, ends_at: datetime) -> str | None:
    """Why these times are refused, or None: the end after the start, within EVENT_DURATION_MAX."""
    if ends_at <= starts_at:
        return "endsAt must be after startsAt"
    if ends_at - starts_at > EVENT_DURATION_MAX:
        return f"an event lasts at most {EVENT_DURATION_MAX.days} days"
    return None


@dataclass(frozen=True)
class Seats:
    """An event's capacity (None: no limit) and how many are going now."""

    capacity: int | None
    going: int

    @property
    def free(self) -> int | None:
        return None if self.capacity is None else max(self.capacity - self.going, 0)


def decide_rsvp(seats: Seats, current: RsvpStatus | None, wanted: RsvpAnswer) -> RsvpStatus:
    """What the caller's answer becomes. 'going' takes a seat if one is free (or keeps the one held),
    else waits (keeping its place if it waits already); the other answers are taken as they are."""
    if wanted != "going":
        return wanted
    if current in ("going", "waitlisted"):
        return current
    free = seats.free
    return "going" if free is None or free > 0 else "waitlisted"


@dataclass(frozen=True)
class Counts:
    going: int = 0
    interested: int = 0
    waitlisted: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.going + other.going, self.interested + other.interested, self.waitlisted + other.waitlisted
        )


def _one(status: RsvpStatus | None) -> Counts:
    return Counts(
        going=int(status == "going"),
        interested=int(status == "interested"),
        waitlisted=int(status == "waitlisted"),
    )


def count_change(previous: RsvpStatus | None, new: RsvpStatus | None) -> Counts:
    """How the counts move when one answer goes from `previous` to `new` (None: no answer)."""
    before, after = _one(previous), _one(new)
    return Counts(
        after.going - before.going, after.interested - before.interested, after.waitlisted - before.waitlisted
    )


def seats_to_promote(seats: Seats, waiting: int) -> int:
    """How many waiting answers move to 'going' now: as many as seats are free, at most all who wait.
    (No capacity: nobody waits, but should anyone, all go.)"""
    free = seats.free
    return waiting if free is None else min(free, waiting)


def may_see_event(
    viewer_id: UUID | None,
    viewer_is_moderator: bool,
    host: AuthorAudience | None,
    visibility: str,
) -> bool:
    """Whether the viewer may open an event: the host's content rule (privacy.may_see_content), and a
    'followers' event also needs an approved follow (the host and moderators see it anyway)."""
    if not may_see_content(viewer_id, viewer_is_moderator, host):
        return False
    assert host is not None
    if visibility == "public" or viewer_is_moderator or viewer_id == host.author_id:
        return True
    return host.viewer_follows


def may_take_part(viewer_id: UUID | None, host: AuthorAudience | None, visibility: str) -> bool:
    """Whether the viewer may RSVP (or link the event in a post): may see it, and no block either way
    (privacy.shows_in_listings: a block forbids interactions both ways)."""
    return may_see_event(viewer_id, False, host, visibility) and shows_in_listings(viewer_id, False, host)


def listing_window(
    now: datetime, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime] | str:
    """The [from, to) window GET /api/events lists: from now and EVENT_WINDOW_DEFAULT long unless
    given; at most EVENT_WINDOW_MAX wide. A string says why the asked window is refused."""
    start = start or now
    end = end or start + EVENT_WINDOW_DEFAULT
    if end <= start:
        return "to must be after from"
    if end - start > EVENT_WINDOW_MAX:
        return f"a window is at most {EVENT_WINDOW_MAX.days} days wide"
    return start, end
