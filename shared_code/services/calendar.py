"""Events and RSVPs (docs/api.md "Events and RSVPs"): a user hosts an event; others answer going,
interested or not going; 'going' beyond the capacity waits in line and is promoted when a seat frees.

Every RSVP locks the event's row (FOR UPDATE) before it reads the counts, so concurrent answers take
turns per event: the counts in the row are exact, the waiting order is the order the lock was taken
in, and `events_within_capacity` (a CHECK) makes more going than seats impossible. The decisions
themselves are pure (shared_code/domain/event_rules.py).

Read from PostgreSQL, not a projection (docs/read-costs.md): who may see an event depends on the
reader (the host's privacy rule and the event's own visibility) and the counts must be exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared_code.cursors import CursorCodec
from shared_code.db.rows import fetch_all, fetch_one
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Conflict, Forbidden, Invalid, NotFound
from shared_code.domain.event_rules import (
    Counts,
    RsvpAnswer,
    Seats,
    check_times,
    count_change,
    decide_rsvp,
    may_see_event,
    may_take_part,
    rsvp_status,
    seats_to_promote,
)
from shared_code.domain.events import (
    EventCancelled,
    EventCounts,
    EventCreated,
    EventDetails,
    EventUpdated,
    RsvpRemoved,
    RsvpSet,
)
from shared_code.domain.limits import ERASED_TEXT
from shared_code.schemas.calendar import (
    CreateEvent,
    EditEvent,
    Event,
    EventCountsView,
    MyRsvp,
    Rsvp,
)
from shared_code.schemas.common import Page
from shared_code.schemas.posts import Author, LinkedEvent
from shared_code.services.audience import audience_of
from shared_code.services.author_access import author_visible_sql

NOT_FOUND = "no such event"


@dataclass(frozen=True)
class _EventRow:
    id: UUID
    host_id: UUID
    username: str
    display_name: str
    avatar_url: str | None
    title: str
    description: str
    place: str
    category: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int | None
    visibility: str
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    going: int
    interested: int
    waitlisted: int
    version: int
    counts_version: int
    my_status: str | None
    my_waitlist_position: int | None


# One query shape for every event read: the event, its host, and the viewer's own answer with its
# place in line (counted among those waiting ahead; event_rsvps_waitlist serves it).
_EVENT_COLUMNS = """
    e.id, e.host_id, u.username, pr.display_name, pr.avatar_url, e.title, e.description, e.place,
    e.category, e.starts_at, e.ends_at, e.capacity, e.visibility, e.cancelled_at, e.created_at,
    e.updated_at, e.going, e.interested, e.waitlisted, e.version, e.counts_version,
    my.status AS my_status,
    CASE WHEN my.status = 'waitlisted' THEN
        (SELECT count(*) FROM event_rsvps w WHERE w.event_id = e.id AND w.status = 'waitlisted'
           AND w.waitlist_position <= my.waitlist_position)::int END AS my_waitlist_position
"""
_EVENT_JOINS = """
    JOIN users u ON u.id = e.host_id
    JOIN profiles pr ON pr.user_id = e.host_id
    LEFT JOIN event_rsvps my ON my.event_id = e.id AND my.user_id = %(viewer)s
"""
_BY_ID = f"SELECT {_EVENT_COLUMNS} FROM events e {_EVENT_JOINS} WHERE e.id = %(id)s"  # noqa: S608 (constants)


def _view(row: _EventRow) -> Event:
    seats = Seats(row.capacity, row.going)
    return Event(
        id=row.id,
        host_id=row.host_id,
        host=Author(
            user_id=row.host_id,
            username=row.username,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
        ),
        title=row.title,
        description=row.description,
        place=row.place,
        category=row.category,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        capacity=row.capacity,
        visibility="followers" if row.visibility == "followers" else "public",
        status="cancelled" if row.cancelled_at else "scheduled",
        cancelled_at=row.cancelled_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        counts=EventCountsView(going=row.going, interested=row.interested, waitlisted=row.waitlisted),
        seats_left=seats.free,
        my_rsvp=MyRsvp.model_validate(
            {"status": row.my_status, "waitlist_position": row.my_waitlist_position}
        )
        if row.my_status
        else None,
    )


def _details(row: _EventRow) -> EventDetails:
    return EventDetails(
        title=row.title,
        description=row.description,
        place=row.place,
        category=row.category,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        capacity=row.capacity,
        visibility=row.visibility,
    )


async def _row(uow: UnitOfWork, event_id: UUID, lock: bool = False) -> _EventRow | None:
    """The event as the caller sees it; `lock`: first take the event's row lock. The lock is its own
    statement, so the read after it starts after every answer that held the lock before has committed
    (in READ COMMITTED a locking read re-checks the locked row only, not the caller's joined answer)."""
    if lock:
        await uow.conn.execute("SELECT 1 FROM events WHERE id = %s FOR UPDATE", (event_id,))
    return await fetch_one(uow.conn, _EventRow, _BY_ID, {"id": event_id, "viewer": uow.user_id})


async def _visible_row(uow: UnitOfWork, event_id: UUID, lock: bool = False) -> _EventRow:
    """The event if the caller may see it, else 404 (whoever may not must not learn it exists)."""
    row = await _row(uow, event_id, lock)
    if row is None:
        raise NotFound(NOT_FOUND)
    facts = await audience_of(uow.conn, uow.user_id, (row.host_id,))
    if not may_see_event(uow.user_id, uow.actor.is_moderator, facts.get(row.host_id), row.visibility):
        raise NotFound(NOT_FOUND)
    return row


def _counts(row: _EventRow, counts: Counts, version: int) -> EventCounts:
    return EventCounts(
        event_id=row.id,
        going=counts.going,
        interested=counts.interested,
        waitlisted=counts.waitlisted,
        version=version,
    )


def _require_valid_times(starts_at: datetime, ends_at: datetime, field: str) -> None:
    refused = check_times(starts_at, ends_at)
    if refused:
        raise Invalid(refused, field=field)


async def create_event(uow: UnitOfWork, body: CreateEvent) -> Event:
    me = uow.require_user()
    _require_valid_times(body.starts_at, body.ends_at, "endsAt")
    if body.ends_at <= datetime.now(UTC):
        raise Invalid("this event would have ended already: endsAt must be in the future", field="endsAt")
    await uow.lock_live_users(me)
    cur = await uow.conn.execute(
        """INSERT INTO events (host_id, title, description, place, category, starts_at, ends_at, capacity,
                               visibility)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            me,
            body.title,
            body.description,
            body.place,
            body.category,
            body.starts_at,
            body.ends_at,
            body.capacity,
            body.visibility,
        ),
    )
    created = await cur.fetchone()
    assert created is not None
    row = await _row(uow, created[0])
    assert row is not None
    uow.record(
        EventCreated(event_id=row.id, host_id=me, details=_details(row), created_at=row.created_at),
        row.id,
        row.version,
    )
    return _view(row)


async def get_event(uow: UnitOfWork, event_id: UUID) -> Event:
    uow.require_user()
    return _view(await _visible_row(uow, event_id))


async def _hosted_row(uow: UnitOfWork, event_id: UUID, doing: str) -> _EventRow:
    """The caller's own event, locked: 404 if they may not see it, 403 if it is someone else's."""
    me = uow.require_user()
    row = await _visible_row(uow, event_id, lock=True)
    if row.host_id != me:
        raise Forbidden(f"only the host can {doing} an event")
    await uow.lock_live_users(me)
    return row


async def _attendees(uow: UnitOfWork, event_id: UUID) -> list[UUID]:
    """Who answered going, interested or wait: those a change or cancellation notifies."""
    cur = await uow.conn.execute(
        """SELECT user_id FROM event_rsvps WHERE event_id = %s AND status <> 'not_going'
           ORDER BY user_id""",
        (event_id,),
    )
    return [r[0] for r in await cur.fetchall()]


async def edit_event(uow: UnitOfWork, event_id: UUID, body: EditEvent) -> Event:
    row = await _hosted_row(uow, event_id, "edit")
    if row.cancelled_at is not None:
        raise Conflict("this event is cancelled and cannot be changed")
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    merged = {**_details(row).model_dump(), **changes}
    _require_valid_times(merged["starts_at"], merged["ends_at"], next(iter(sorted(changes)), "endsAt"))
    capacity: int | None = merged["capacity"]
    if capacity is not None and capacity < row.going:
        raise Conflict(f"{row.going} people are going: the capacity cannot go below that", capacity=row.going)
    if merged == _details(row).model_dump():
        return _view(row)  # nothing changes
    cur = await uow.conn.execute(
        """UPDATE events SET title = %(title)s, description = %(description)s, place = %(place)s,
                  category = %(category)s, starts_at = %(starts_at)s, ends_at = %(ends_at)s,
                  capacity = %(capacity)s, visibility = %(visibility)s, version = version + 1,
                  updated_at = now()
           WHERE id = %(id)s RETURNING version""",
        {**merged, "id": event_id},
    )
    assert await cur.fetchone() is not None
    # A larger capacity (or none) frees seats for those waiting.
    await _promote(uow, event_id)
    updated = await _row(uow, event_id)
    assert updated is not None
    uow.record(
        EventUpdated(
            event_id=event_id,
            host_id=row.host_id,
            details=_details(updated),
            updated_at=updated.updated_at,
            notify_user_ids=await _attendees(uow, event_id),
        ),
        event_id,
        updated.version,
    )
    return _view(updated)


async def _cancel(uow: UnitOfWork, row: _EventRow, cause: str) -> None:
    cur = await uow.conn.execute(
        """UPDATE events SET cancelled_at = now(), updated_at = now(), version = version + 1
           WHERE id = %s AND cancelled_at IS NULL RETURNING version, cancelled_at""",
        (row.id,),
    )
    cancelled = await cur.fetchone()
    if cancelled is None:
        return
    version, cancelled_at = cancelled
    uow.record(
        EventCancelled(
            event_id=row.id,
            host_id=row.host_id,
            cancelled_at=cancelled_at,
            cause=cause,
            notify_user_ids=await _attendees(uow, row.id),
        ),
        row.id,
        version,
    )


async def cancel_event(uow: UnitOfWork, event_id: UUID) -> None:
    """The host cancels; cancelling again changes nothing. The event stays readable, as cancelled."""
    row = await _hosted_row(uow, event_id, "cancel")
    await _cancel(uow, row, "host")


@dataclass(frozen=True)
class _Answer:
    id: UUID
    status: str
    version: int
    updated_at: datetime


async def _move_counts(uow: UnitOfWork, event_id: UUID, change: Counts) -> tuple[Counts, int]:
    cur = await uow.conn.execute(
        """UPDATE events SET going = going + %s, interested = interested + %s, waitlisted = waitlisted + %s,
                  counts_version = counts_version + 1
           WHERE id = %s RETURNING going, interested, waitlisted, counts_version""",
        (change.going, change.interested, change.waitlisted, event_id),
    )
    moved = await cur.fetchone()
    assert moved is not None
    return Counts(moved[0], moved[1], moved[2]), moved[3]


@dataclass(frozen=True)
class _Promoted:
    rsvp_id: UUID
    user_id: UUID
    version: int


async def _promote(uow: UnitOfWork, event_id: UUID) -> None:
    """Under the event's lock: move as many waiting answers to 'going' as seats are free, first in
    line first, each with its rsvp.set (cause 'promoted')."""
    cur = await uow.conn.execute(
        "SELECT host_id, capacity, going, waitlisted FROM events WHERE id = %s", (event_id,)
    )
    state = await cur.fetchone()
    assert state is not None
    host_id, capacity, going, waiting = state
    seats = seats_to_promote(Seats(capacity, going), waiting)
    if seats <= 0:
        return
    promoted = await fetch_all(
        uow.conn,
        _Promoted,
        "SELECT rsvp_id, user_id, version FROM chorus_promote_waitlisted(%s, %s)",
        (event_id, seats),
    )
    if not promoted:
        return
    counts, counts_version = await _move_counts(
        uow, event_id, Counts(going=len(promoted), waitlisted=-len(promoted))
    )
    now = datetime.now(UTC)
    for one in promoted:
        uow.record(
            RsvpSet(
                rsvp_id=one.rsvp_id,
                event_id=event_id,
                host_id=host_id,
                user_id=one.user_id,
                status="going",
                previous_status="waitlisted",
                cause="promoted",
                event_counts=EventCounts(
                    event_id=event_id,
                    going=counts.going,
                    interested=counts.interested,
                    waitlisted=counts.waitlisted,
                    version=counts_version,
                ),
                updated_at=now,
            ),
            one.rsvp_id,
            one.version,
        )


async def _rsvp_view(uow: UnitOfWork, event_id: UUID) -> Rsvp:
    row = await _row(uow, event_id)
    assert row is not None
    view = _view(row)
    assert view.my_rsvp is not None
    return Rsvp(
        event_id=event_id,
        status=view.my_rsvp.status,
        waitlist_position=view.my_rsvp.waitlist_position,
        counts=view.counts,
    )


async def _event_to_answer(uow: UnitOfWork, event_id: UUID) -> _EventRow:
    """The event, locked, if the caller may answer it: 404 unless they may see it; 403 across a block;
    409 once cancelled or over."""
    me = uow.require_user()
    row = await _visible_row(uow, event_id, lock=True)
    await uow.lock_live_users(me, row.host_id)
    facts = await audience_of(uow.conn, me, (row.host_id,))
    if not may_take_part(me, facts.get(row.host_id), row.visibility):
        raise Forbidden("you cannot answer this event: you or its host has blocked the other")
    if row.cancelled_at is not None:
        raise Conflict("this event is cancelled")
    if row.ends_at <= datetime.now(UTC):
        raise Conflict("this event is over")
    return row


async def set_rsvp(uow: UnitOfWork, event_id: UUID, wanted: RsvpAnswer) -> Rsvp:
    """The caller's answer; 'going' to a full event waits in line. The same answer again changes
    nothing (a waiting 'going' keeps its place)."""
    me = uow.require_user()
    row = await _event_to_answer(uow, event_id)
    current = rsvp_status(row.my_status) if row.my_status else None
    new = decide_rsvp(Seats(row.capacity, row.going), current, wanted)
    if new == current:
        return await _rsvp_view(uow, event_id)
    answer = await fetch_one(
        uow.conn,
        _Answer,
        """INSERT INTO event_rsvps (event_id, user_id, status, waitlist_position)
           VALUES (%(event)s, %(me)s, %(status)s,
                   CASE WHEN %(status)s = 'waitlisted' THEN nextval('event_waitlist_order') END)
           ON CONFLICT (event_id, user_id) DO UPDATE
               SET status = EXCLUDED.status, waitlist_position = EXCLUDED.waitlist_position,
                   version = event_rsvps.version + 1, updated_at = now()
           RETURNING id, status, version, updated_at""",
        {"event": event_id, "me": me, "status": new},
    )
    assert answer is not None
    counts, counts_version = await _move_counts(uow, event_id, count_change(current, new))
    uow.record(
        RsvpSet(
            rsvp_id=answer.id,
            event_id=event_id,
            host_id=row.host_id,
            user_id=me,
            status=new,
            previous_status=current,
            cause="rsvp",
            event_counts=_counts(row, counts, counts_version),
            updated_at=answer.updated_at,
        ),
        answer.id,
        answer.version,
    )
    if current == "going":
        await _promote(uow, event_id)
    return await _rsvp_view(uow, event_id)


@dataclass(frozen=True)
class _Removed:
    id: UUID
    status: str
    version: int


async def _remove_answer(uow: UnitOfWork, row: _EventRow, user_id: UUID, cause: str) -> bool:
    """Delete `user_id`'s answer (under the event's lock), move the counts, free the seat for the first
    in line (unless the event is cancelled); False when there was none."""
    removed = await fetch_one(
        uow.conn,
        _Removed,
        """DELETE FROM event_rsvps WHERE event_id = %s AND user_id = %s
           RETURNING id, status, version + 1 AS version""",
        (row.id, user_id),
    )
    if removed is None:
        return False
    previous = rsvp_status(removed.status)
    counts, counts_version = await _move_counts(uow, row.id, count_change(previous, None))
    uow.record(
        RsvpRemoved(
            rsvp_id=removed.id,
            event_id=row.id,
            host_id=row.host_id,
            user_id=user_id,
            previous_status=previous,
            cause=cause,
            event_counts=_counts(row, counts, counts_version),
        ),
        removed.id,
        removed.version,
    )
    if previous == "going" and row.cancelled_at is None:
        await _promote(uow, row.id)
    return True


async def withdraw_rsvp(uow: UnitOfWork, event_id: UUID) -> None:
    """Take back the caller's answer, whatever it was; none: nothing changes. A seat it held goes to
    the first in line."""
    me = uow.require_user()
    row = await _row(uow, event_id, lock=True)
    if row is None:
        raise NotFound(NOT_FOUND)
    if row.my_status is None:
        await _visible_row(uow, event_id)  # 404 for an event the caller may not see
        return
    # Their own answer: taken back even from an event they may no longer see (a block since).
    await _remove_answer(uow, row, me, "withdrawn")


@dataclass(frozen=True)
class _Candidate:
    id: UUID


async def list_events(
    uow: UnitOfWork,
    cursors: CursorCodec,
    window: tuple[datetime, datetime],
    limit: int,
    cursor: str | None,
) -> Page[Event]:
    """Events in the window [from, to) (any part of them) that the caller hosts, answered (going,
    interested or waiting), or that the accounts they follow host, soonest first, keyset-paged on
    (startsAt, id). Cancelled events and those the caller may not see are filtered in the query, so a
    page is cut after the filter."""
    me = uow.require_user()
    scope = f"events:{me}"
    start, end = window
    params: dict[str, Any] = {"viewer": me, "from": start, "to": end, "limit": limit + 1}
    after = ""
    position = cursors.time_position(scope, cursor)
    if position:
        params["after_time"], params["after_id"] = position
        after = "AND (e.starts_at, e.id) > (%(after_time)s, %(after_id)s)"
    in_window = "e.cancelled_at IS NULL AND e.ends_at > %(from)s AND e.starts_at < %(to)s"
    rows = await fetch_all(
        uow.conn,
        _EventRow,
        f"""WITH candidates AS (
                SELECT e.id FROM events e WHERE e.host_id = %(viewer)s AND {in_window}
                UNION
                SELECT e.id FROM event_rsvps r JOIN events e ON e.id = r.event_id
                WHERE r.user_id = %(viewer)s AND r.status <> 'not_going' AND {in_window}
                UNION
                SELECT e.id FROM follows f JOIN events e ON e.host_id = f.followee_id
                WHERE f.follower_id = %(viewer)s AND f.deleted_at IS NULL AND {in_window}
            )
            SELECT {_EVENT_COLUMNS} FROM candidates c JOIN events e ON e.id = c.id {_EVENT_JOINS}
            WHERE u.deleted_at IS NULL AND {author_visible_sql("e.host_id")}
              AND (e.visibility = 'public' OR e.host_id = %(viewer)s
                   OR EXISTS (SELECT 1 FROM follows vf WHERE vf.follower_id = %(viewer)s
                                AND vf.followee_id = e.host_id AND vf.deleted_at IS NULL))
              {after}
            ORDER BY e.starts_at, e.id
            LIMIT %(limit)s""",  # noqa: S608 (constants and a fixed keyset clause; values are parameters)
        params,
    )
    page = rows[:limit]
    last = page[-1] if page else None
    next_cursor = cursors.time_cursor(scope, last.starts_at, last.id) if last and len(rows) > limit else None
    return Page[Event](items=[_view(row) for row in page], next_cursor=next_cursor)


# --- events linked from posts ----------------------------------------------------------------------


def unavailable_event(event_id: UUID) -> LinkedEvent:
    return LinkedEvent(
        event_id=event_id, unavailable=True, title=None, starts_at=None, ends_at=None, place=None
    )


async def linked_events(uow: UnitOfWork, event_ids: list[UUID | None]) -> dict[UUID, LinkedEvent]:
    """The events some posts link, as the caller may see them now: unavailable once cancelled or out of
    their reach. One query for the rows and one for the hosts' audience, whatever the page's size."""
    wanted = sorted({e for e in event_ids if e is not None})
    if not wanted:
        return {}
    rows = await fetch_all(
        uow.conn,
        _EventRow,
        f"SELECT {_EVENT_COLUMNS} FROM events e {_EVENT_JOINS} WHERE e.id = ANY(%(ids)s)",  # noqa: S608
        {"ids": wanted, "viewer": uow.user_id},
    )
    facts = await audience_of(uow.conn, uow.user_id, {row.host_id for row in rows})
    shown: dict[UUID, LinkedEvent] = {}
    for row in rows:
        if row.cancelled_at is None and may_see_event(
            uow.user_id, uow.actor.is_moderator, facts.get(row.host_id), row.visibility
        ):
            shown[row.id] = LinkedEvent(
                event_id=row.id,
                unavailable=False,
                title=row.title,
                starts_at=row.starts_at,
                ends_at=row.ends_at,
                place=row.place,
            )
    return {event_id: shown.get(event_id, unavailable_event(event_id)) for event_id in wanted}


async def require_linkable(uow: UnitOfWork, event_id: UUID) -> LinkedEvent:
    """The event a new post links: one the caller may take part in and not cancelled, else 422."""
    me = uow.require_user()
    row = await _row(uow, event_id)
    facts = await audience_of(uow.conn, me, (row.host_id,)) if row else {}
    if (
        row is None
        or row.cancelled_at is not None
        or not may_take_part(me, facts.get(row.host_id), row.visibility)
    ):
        raise Invalid("eventId is not an event you can see", field="eventId")
    return (await linked_events(uow, [event_id]))[event_id]


# --- account erasure -------------------------------------------------------------------------------


async def erase_rsvps_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: up to `limit` of the account's answers go, each as its withdrawal would (counts
    moved, a freed seat to the first in line), with cause 'account_deleted'."""
    cur = await uow.conn.execute(
        "SELECT event_id FROM event_rsvps WHERE user_id = %s ORDER BY event_id LIMIT %s", (user_id, limit)
    )
    erased = 0
    for (event_id,) in await cur.fetchall():
        row = await _row(uow, event_id, lock=True)
        if row is not None and await _remove_answer(uow, row, user_id, "account_deleted"):
            erased += 1
    return erased


async def erase_events_of(uow: UnitOfWork, user_id: UUID, limit: int) -> int:
    """Account erasure: the account's live events are cancelled (attendees notified), then the words of
    its events are blanked (the rows stay: others' answers and posts refer to them)."""
    cur = await uow.conn.execute(
        """SELECT id FROM events WHERE host_id = %s AND cancelled_at IS NULL ORDER BY id LIMIT %s""",
        (user_id, limit),
    )
    live = [event_id for (event_id,) in await cur.fetchall()]
    for event_id in live:
        row = await _row(uow, event_id, lock=True)
        if row is not None:
            await _cancel(uow, row, "account_deleted")
    cur = await uow.conn.execute(
        """UPDATE events SET title = %(erased)s, description = '', place = '', category = NULL
           WHERE id IN (SELECT id FROM events WHERE host_id = %(u)s AND cancelled_at IS NOT NULL
                          AND (title <> %(erased)s OR description <> '' OR place <> '' OR category IS NOT NULL)
                        ORDER BY id LIMIT %(limit)s)""",
        {"erased": ERASED_TEXT, "u": user_id, "limit": limit},
    )
    return len(live) + cur.rowcount
