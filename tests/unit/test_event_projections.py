"""What the events and RSVPs' outbox events project (shared_code/projections/documents.py): nothing
but notifications (events are read from PostgreSQL), each once per cause, to the right person.
`calendar_event_samples` also feeds test_projections.py's checks that run on every event type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared_code.domain.events import (
    EventCancelled,
    EventCounts,
    EventCreated,
    EventDetails,
    EventPayload,
    EventUpdated,
    RsvpRemoved,
    RsvpSet,
)
from shared_code.domain.stored_event import StoredEvent
from shared_code.projections.documents import project
from shared_code.projections.writes import NOTIFICATIONS, CreateOnce

NOW = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
HOST, ANN, BEN = UUID(int=0x4057), UUID(int=0xA22), UUID(int=0xBE2)
EVENT, RSVP = UUID(int=0xE7E27), UUID(int=0x45F9)
CORRELATION = "corr-123"
DETAILS = EventDetails(
    title="Picnic",
    description="bring food",
    place="the park",
    category="food",
    starts_at=NOW,
    ends_at=NOW.replace(hour=20),
    capacity=2,
    visibility="public",
)


def _counts(going: int, version: int) -> EventCounts:
    return EventCounts(event_id=EVENT, going=going, interested=0, waitlisted=0, version=version)


def _stored(payload: EventPayload, aggregate_id: UUID, version: int) -> StoredEvent:
    return StoredEvent(
        id=1,
        event_id=UUID(int=version),
        aggregate_type=payload.aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        event_type=payload.event_type,
        payload=payload.to_json(),
        metadata={"actor": "someone", "correlationId": CORRELATION},
        created_at=NOW,
    )


def _rsvp(user: UUID, status: str, cause: str = "rsvp", version: int = 1) -> StoredEvent:
    return _stored(
        RsvpSet(
            rsvp_id=RSVP,
            event_id=EVENT,
            host_id=HOST,
            user_id=user,
            status=status,
            previous_status=None,
            cause=cause,
            event_counts=_counts(1, 2),
            updated_at=NOW,
        ),
        RSVP,
        version,
    )


def calendar_event_samples() -> dict[str, StoredEvent]:
    events = [
        _stored(EventCreated(event_id=EVENT, host_id=HOST, details=DETAILS, created_at=NOW), EVENT, 1),
        _stored(
            EventUpdated(
                event_id=EVENT, host_id=HOST, details=DETAILS, updated_at=NOW, notify_user_ids=[ANN, BEN]
            ),
            EVENT,
            2,
        ),
        _stored(
            EventCancelled(
                event_id=EVENT, host_id=HOST, cancelled_at=NOW, cause="host", notify_user_ids=[ANN, HOST]
            ),
            EVENT,
            3,
        ),
        _rsvp(ANN, "going"),
        _stored(
            RsvpRemoved(
                rsvp_id=RSVP,
                event_id=EVENT,
                host_id=HOST,
                user_id=ANN,
                previous_status="going",
                cause="withdrawn",
                event_counts=_counts(0, 3),
            ),
            RSVP,
            2,
        ),
    ]
    return {event.event_type: event for event in events}


def _notes(event: StoredEvent) -> list[dict[str, Any]]:
    writes = project(event)
    assert all(isinstance(w, CreateOnce) and w.container == NOTIFICATIONS for w in writes), writes
    return [w.document for w in writes]


def test_an_answer_notifies_the_host_once_per_change_and_not_going_or_the_hosts_own_does_not() -> None:
    (note,) = _notes(_rsvp(ANN, "interested"))
    assert (note["recipientId"], note["type"], note["actorId"], note["subjectId"]) == (
        str(HOST),
        "event_rsvp",
        str(ANN),
        str(EVENT),
    )
    assert note["id"] == f"event_rsvp:{RSVP}:1"
    assert _notes(_rsvp(ANN, "going", version=2))[0]["id"] != note["id"]
    assert _notes(_rsvp(ANN, "not_going")) == []
    assert _notes(_rsvp(HOST, "going")) == []


def test_a_promotion_tells_the_promoted_user() -> None:
    (note,) = _notes(_rsvp(BEN, "going", cause="promoted", version=2))
    assert (note["recipientId"], note["type"], note["actorId"]) == (str(BEN), "event_promoted", str(HOST))


def test_a_change_or_cancellation_notifies_each_attendee_but_the_host() -> None:
    samples = calendar_event_samples()
    updated = _notes(samples["event.updated"])
    assert sorted(n["recipientId"] for n in updated) == sorted([str(ANN), str(BEN)])
    assert {n["type"] for n in updated} == {"event_updated"}
    cancelled = _notes(samples["event.cancelled"])
    assert [(n["recipientId"], n["type"]) for n in cancelled] == [(str(ANN), "event_cancelled")]
    # Ids name the event's version and the recipient: a replay writes the same ids (CreateOnce).
    assert len({n["id"] for n in updated + cancelled}) == 3
    assert _notes(samples["event.created"]) == [] and _notes(samples["rsvp.removed"]) == []
