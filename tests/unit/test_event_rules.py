"""The pure rules of events and RSVPs (shared_code/domain/event_rules.py): what an answer becomes
given the seats, how the counts move, how many a freed seat promotes, who may see an event, the
listing window, and the request bodies' validation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared_code.domain.event_rules import (
    EVENT_CATEGORY_MAX,
    EVENT_DESCRIPTION_MAX,
    EVENT_PLACE_MAX,
    EVENT_TITLE_MAX,
    EVENT_VISIBILITIES,
    EVENT_WINDOW_DEFAULT,
    EVENT_WINDOW_MAX,
    RSVP_ANSWERS,
    RSVP_STATUSES,
    Counts,
    RsvpAnswer,
    RsvpStatus,
    Seats,
    check_times,
    count_change,
    decide_rsvp,
    listing_window,
    may_see_event,
    may_take_part,
    rsvp_status,
    seats_to_promote,
)
from shared_code.domain.privacy import AuthorAudience
from shared_code.schemas.calendar import CreateEvent, EditEvent, SetRsvp

NOW = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)


def test_going_takes_a_free_seat_and_waits_when_the_event_is_full() -> None:
    assert decide_rsvp(Seats(capacity=2, going=1), None, "going") == "going"
    assert decide_rsvp(Seats(capacity=2, going=2), None, "going") == "waitlisted"
    assert decide_rsvp(Seats(capacity=2, going=2), "interested", "going") == "waitlisted"
    assert decide_rsvp(Seats(capacity=None, going=10_000), None, "going") == "going"


def test_asking_to_go_again_keeps_the_seat_or_the_place_in_line() -> None:
    assert decide_rsvp(Seats(capacity=1, going=1), "going", "going") == "going"
    # A seat may have freed meanwhile: the promotion gives it to the first in line, not to a repeat.
    assert decide_rsvp(Seats(capacity=3, going=1), "waitlisted", "going") == "waitlisted"


@pytest.mark.parametrize("current", [None, *RSVP_STATUSES])
def test_interested_and_not_going_are_taken_as_they_are(current: RsvpStatus | None) -> None:
    wanted: RsvpAnswer
    for wanted in ("interested", "not_going"):
        assert decide_rsvp(Seats(capacity=1, going=1), current, wanted) == wanted


@pytest.mark.parametrize(("previous", "new"), list(product([None, *RSVP_STATUSES], repeat=2)))
def test_each_answer_counts_once_in_its_own_column(
    previous: RsvpStatus | None, new: RsvpStatus | None
) -> None:
    start = Counts(going=5, interested=5, waitlisted=5)
    ones = {"going": Counts(going=1), "interested": Counts(interested=1), "waitlisted": Counts(waitlisted=1)}
    after = start + count_change(previous, new)
    # Taking the answer away again gets back to where it started: changes never drift the counts.
    assert after + count_change(new, previous) == start
    expected = start
    if previous in ones:
        expected = expected + Counts(
            -ones[previous].going, -ones[previous].interested, -ones[previous].waitlisted
        )
    if new in ones:
        expected = expected + ones[new]
    assert after == expected


def test_a_freed_seat_promotes_at_most_as_many_as_wait() -> None:
    assert seats_to_promote(Seats(capacity=10, going=9), waiting=3) == 1
    assert seats_to_promote(Seats(capacity=10, going=5), waiting=3) == 3
    assert seats_to_promote(Seats(capacity=10, going=10), waiting=3) == 0
    assert seats_to_promote(Seats(capacity=None, going=10), waiting=2) == 2
    assert seats_to_promote(Seats(capacity=10, going=9), waiting=0) == 0


def test_a_full_event_with_a_waiting_list_never_ends_up_over_capacity() -> None:
    """Simulated: any sequence of answers against the rules keeps going <= capacity, and the waiting
    list is served first in, first out."""
    seats = 3
    going: list[str] = []
    waiting: list[str] = []
    arrivals = [f"u{i}" for i in range(8)]
    for user in arrivals:
        status = decide_rsvp(Seats(seats, len(going)), None, "going")
        (going if status == "going" else waiting).append(user)
    assert going == arrivals[:3] and waiting == arrivals[3:]
    for leaver in ("u0", "u2"):
        going.remove(leaver)
        promoted = seats_to_promote(Seats(seats, len(going)), len(waiting))
        going += waiting[:promoted]
        del waiting[:promoted]
        assert len(going) <= seats
    assert going == ["u1", "u3", "u4"] and waiting == ["u5", "u6", "u7"]


def test_stored_statuses_are_read_back_and_anything_else_is_refused() -> None:
    assert [rsvp_status(s) for s in RSVP_STATUSES] == list(RSVP_STATUSES)
    with pytest.raises(ValueError, match="not an RSVP status"):
        rsvp_status("maybe")
    assert set(RSVP_ANSWERS) < set(RSVP_STATUSES)


def test_an_event_ends_after_it_starts_and_lasts_a_bounded_time() -> None:
    assert check_times(NOW, NOW + timedelta(hours=2)) is None
    assert check_times(NOW, NOW) == "endsAt must be after startsAt"
    assert check_times(NOW, NOW - timedelta(minutes=1)) == "endsAt must be after startsAt"
    assert "at most" in (check_times(NOW, NOW + timedelta(days=40)) or "")


def _audience(**facts: object) -> AuthorAudience:
    base: dict[str, object] = {
        "author_id": uuid4(),
        "visibility": "public",
        "viewer_follows": False,
        "author_blocked_viewer": False,
        "viewer_blocked_author": False,
    }
    return AuthorAudience(**{**base, **facts})  # type: ignore[arg-type]


def test_who_may_see_an_event_follows_the_hosts_rule_and_the_events_visibility() -> None:
    viewer = uuid4()
    public_host = _audience()
    assert may_see_event(viewer, False, public_host, "public")
    assert not may_see_event(viewer, False, public_host, "followers")
    assert may_see_event(viewer, False, _audience(viewer_follows=True), "followers")
    # A private host: only approved followers, whatever the event's visibility.
    assert not may_see_event(viewer, False, _audience(visibility="private"), "public")
    assert may_see_event(viewer, False, _audience(visibility="private", viewer_follows=True), "public")
    # A host who blocked the viewer hides it; the host and moderators always see it; nobody sees the
    # event of an account that is gone.
    assert not may_see_event(
        viewer, False, _audience(author_blocked_viewer=True, viewer_follows=True), "public"
    )
    assert may_see_event(public_host.author_id, False, public_host, "followers")
    assert may_see_event(viewer, True, _audience(visibility="private"), "followers")
    assert not may_see_event(viewer, False, None, "public")


def test_a_block_either_way_forbids_answering_an_event() -> None:
    viewer = uuid4()
    assert may_take_part(viewer, _audience(), "public")
    assert not may_take_part(viewer, _audience(viewer_blocked_author=True), "public")
    assert not may_take_part(viewer, _audience(author_blocked_viewer=True), "public")
    assert not may_take_part(viewer, _audience(), "followers")


def test_the_listing_window_defaults_from_now_and_is_bounded() -> None:
    assert listing_window(NOW, None, None) == (NOW, NOW + EVENT_WINDOW_DEFAULT)
    later = NOW + timedelta(days=3)
    assert listing_window(NOW, later, None) == (later, later + EVENT_WINDOW_DEFAULT)
    assert listing_window(NOW, NOW, NOW + EVENT_WINDOW_MAX) == (NOW, NOW + EVENT_WINDOW_MAX)
    assert isinstance(listing_window(NOW, NOW, NOW + EVENT_WINDOW_MAX + timedelta(seconds=1)), str)
    assert listing_window(NOW, later, NOW) == "to must be after from"


def _event(**fields: object) -> dict[str, object]:
    return {
        "title": "Picnic",
        "startsAt": "2027-06-01T12:00:00Z",
        "endsAt": "2027-06-01T15:00:00+02:00",
        **fields,
    }


def test_an_event_body_is_checked_before_anything_is_written() -> None:
    body = CreateEvent.model_validate(_event(capacity=20, visibility="followers", category="food"))
    assert (body.capacity, body.visibility, body.starts_at.tzinfo) == (20, "followers", UTC)
    assert CreateEvent.model_validate(_event()).capacity is None
    for bad in (
        {"title": "x" * 201},
        {"title": "   "},
        {"capacity": 0},
        {"capacity": 2.5},
        {"capacity": True},
        {"visibility": "private"},
        {"startsAt": "2027-06-01T12:00:00"},  # no offset
        {"startsAt": "1999-12-31T23:00:00Z"},
        {"startsAt": "2000-01-01T00:30:00+01:00"},  # 1999 in UTC
        {"startsAt": 1_800_000_000},  # seconds: the schema says a string
        {"place": "a\x00b"},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            CreateEvent.model_validate(_event(**bad))
    with pytest.raises(ValidationError):
        CreateEvent.model_validate({"title": "no times"})


def test_an_edit_changes_at_least_one_field_and_only_capacity_and_category_may_be_null() -> None:
    assert EditEvent.model_validate({"capacity": None}).model_fields_set == {"capacity"}
    with pytest.raises(ValidationError):
        EditEvent.model_validate({})
    with pytest.raises(ValidationError):
        EditEvent.model_validate({"title": None})


def test_an_rsvp_is_one_of_the_three_answers() -> None:
    assert SetRsvp.model_validate({"status": "interested"}).status == "interested"
    for bad in ("waitlisted", "maybe", None):
        with pytest.raises(ValidationError):
            SetRsvp.model_validate({"status": bad})


# --- the database's CHECK constraints say the same (sql/0023_events_and_rsvps.sql) --------------------

SNAPSHOT = Path(__file__).resolve().parents[2] / "sql" / "schema.snapshot.json"


def _constraint(name: str) -> str:
    constraints: dict[str, str] = json.loads(SNAPSHOT.read_text())["constraints"]
    return constraints[name]


@pytest.mark.parametrize(
    ("constraint", "low", "high"),
    [
        ("events.events_title_check", 1, EVENT_TITLE_MAX),
        ("events.events_description_check", None, EVENT_DESCRIPTION_MAX),
        ("events.events_place_check", None, EVENT_PLACE_MAX),
        ("events.events_category_check", 1, EVENT_CATEGORY_MAX),
    ],
)
def test_each_length_limit_is_the_one_the_database_checks(
    constraint: str, low: int | None, high: int
) -> None:
    check = _constraint(constraint)
    assert f"char_length({constraint.split('_')[1]}) <= {high}" in check
    assert (f"char_length({constraint.split('_')[1]}) >= {low}" in check) == (low is not None)


def test_each_vocabulary_is_the_one_the_database_accepts() -> None:
    def listed(name: str) -> tuple[str, ...]:
        return tuple(re.findall(r"'([^']*)'::text", _constraint(name)))

    assert listed("events.events_visibility_check") == EVENT_VISIBILITIES
    assert listed("event_rsvps.event_rsvps_status_check") == RSVP_STATUSES
    # And more going than seats is refused by the database itself, whatever a use case does.
    assert (
        _constraint("events.events_within_capacity") == "CHECK (((capacity IS NULL) OR (going <= capacity)))"
    )
