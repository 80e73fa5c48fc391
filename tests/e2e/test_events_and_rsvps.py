"""Events and RSVPs over real HTTP through the local host, with the relay running (docs/api.md "Events
and RSVPs"): who may see an event (its visibility, blocks, private hosts) on every read, the capacity
held against 100 concurrent RSVPs for the last seat, the waiting list served in order, exact counts
under concurrency, the upcoming-events list, posts that link an event, and the notifications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import psycopg
import pytest

from devhost.host.server import FunctionHost
from tests.support.api import ApiClient
from tests.support.http_client import ApiUser
from tests.support.onboarding import onboard_user
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(600)
# Under load (several helpers on 2 cores) the relay can lag: generous, never a sleep.
SETTLE = 90.0
# 100 requests at once wait for pooled connections and for the event's row lock in turn: the
# request's wait for a connection is raised so a loaded machine answers every one of them.
SETTINGS = {"POSTGRES_REQUEST_WAIT_SECONDS": "30", "POSTGRES_POOL_MAX": "20"}


@pytest.fixture
def app_settings_values(app_settings_values: dict[str, str]) -> dict[str, str]:
    return {**app_settings_values, **SETTINGS}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        yield session


async def _people(
    http: aiohttp.ClientSession, host: FunctionHost, api: ApiClient, prefix: str, names: list[str]
) -> list[ApiUser]:
    gate = asyncio.Semaphore(8)

    async def one(name: str) -> ApiUser:
        async with gate:
            user = ApiUser(http, host.base_url, api.token(f"{prefix}-{name}"))
            return await onboard_user(user, f"{prefix}_{name}", name.title())

    return list(await asyncio.gather(*(one(name) for name in names)))


def _times(days: float = 2, hours: float = 3) -> dict[str, str]:
    start = datetime.now(UTC) + timedelta(days=days)
    return {"startsAt": start.isoformat(), "endsAt": (start + timedelta(hours=hours)).isoformat()}


def _event(title: str, **fields: Any) -> dict[str, Any]:
    return {"title": title, "place": "the park", "category": "food", **_times(), **fields}


async def test_who_sees_an_event_follows_its_visibility_blocks_and_private_hosts(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    host, fan, stranger, blocked, quiet = await _people(
        http, local_host, api, "evv", ["host", "fan", "stranger", "blocked", "quiet"]
    )
    await fan.ok("PUT", f"/api/users/{host.id}/follow")
    await blocked.ok("PUT", f"/api/users/{host.id}/follow")
    public = await host.ok("POST", "/api/events", _event("Open picnic", capacity=10))
    followers = await host.ok("POST", "/api/events", _event("Fans only", visibility="followers"))
    assert (public["status"], public["capacity"], public["seatsLeft"], public["myRsvp"]) == (
        "scheduled",
        10,
        10,
        None,
    )
    assert public["counts"] == {"going": 0, "interested": 0, "waitlisted": 0}
    await host.ok("PUT", f"/api/users/{blocked.id}/block")

    def status(user: ApiUser, event: dict[str, Any]) -> Any:
        return user.call("GET", f"/api/events/{event['id']}")

    assert (await status(fan, followers)).status == 200
    assert (await status(stranger, public)).status == 200
    assert (await status(stranger, followers)).status == 404  # not a follower: it does not exist for them
    assert (await status(blocked, public)).status == 404  # the host blocked them (the follow ended too)
    # Answering follows the same rule, and a block the caller made forbids it too (403, it is visible).
    assert (
        await stranger.call("PUT", f"/api/events/{followers['id']}/rsvp", {"status": "going"})
    ).status == 404
    await quiet.ok("PUT", f"/api/users/{host.id}/block")
    assert (await quiet.call("PUT", f"/api/events/{public['id']}/rsvp", {"status": "going"})).status == 403

    # Only the host changes or cancels it; bad input changes nothing.
    assert (await fan.call("PATCH", f"/api/events/{public['id']}", {"title": "mine now"})).status == 403
    late = {"endsAt": (datetime.now(UTC) + timedelta(days=1)).isoformat()}  # before its start
    refused = await host.call("PATCH", f"/api/events/{public['id']}", late)
    assert refused.status == 422, refused
    assert (await host.call("POST", "/api/events", _event("x" * 201))).status == 422
    assert (await host.call("POST", "/api/events", _event("no seats", capacity=0))).status == 422
    assert (await host.ok("GET", f"/api/events/{public['id']}"))["title"] == "Open picnic"

    # A private host: only approved followers see even a public event.
    await host.ok("PATCH", "/api/users/me", {"visibility": "private"})
    assert (await status(stranger, public)).status == 404
    assert (await status(fan, public)).status == 200
    await host.ok("PATCH", "/api/users/me", {"visibility": "public"})

    # The upcoming list: the caller's own and their followees' events in the window, soonest first.
    listed = await fan.ok("GET", "/api/events?limit=1")
    assert len(listed["items"]) == 1 and listed["nextCursor"]
    second = await fan.ok("GET", f"/api/events?limit=1&cursor={listed['nextCursor']}")
    assert [e["id"] for e in listed["items"] + second["items"]] == [public["id"], followers["id"]]
    assert (await stranger.ok("GET", "/api/events"))["items"] == []  # follows nobody
    far = quote((datetime.now(UTC) + timedelta(days=5)).isoformat())
    assert (await fan.ok("GET", f"/api/events?from={far}"))["items"] == []  # outside the window
    wide = quote((datetime.now(UTC) + timedelta(days=400)).isoformat())
    assert (await fan.call("GET", f"/api/events?to={wide}")).status == 422
    assert (await host.ok("GET", "/api/events"))["items"][0]["id"] == public["id"]

    # A post links an event it can see; it shows unavailable once the event is cancelled.
    post = await fan.ok("POST", "/api/posts", {"content": "see you there", "eventId": public["id"]})
    assert (post["event"]["eventId"], post["event"]["unavailable"], post["event"]["title"]) == (
        public["id"],
        False,
        "Open picnic",
    )
    hidden = await stranger.call("POST", "/api/posts", {"content": "sneaky", "eventId": followers["id"]})
    assert hidden.status == 422, hidden
    await host.ok("DELETE", f"/api/events/{public['id']}")
    await host.ok("DELETE", f"/api/events/{public['id']}")  # again: nothing changes
    assert (await fan.ok("GET", f"/api/posts/{post['id']}"))["event"] == {
        "eventId": public["id"],
        "unavailable": True,
        "title": None,
        "startsAt": None,
        "endsAt": None,
        "place": None,
    }
    cancelled = await fan.ok("GET", f"/api/events/{public['id']}")
    assert cancelled["status"] == "cancelled" and cancelled["cancelledAt"]
    assert (await fan.call("PUT", f"/api/events/{public['id']}/rsvp", {"status": "going"})).status == 409
    assert [e["id"] for e in (await fan.ok("GET", "/api/events"))["items"]] == [followers["id"]]


async def _db_counts(database_url: str, event_id: str) -> tuple[int, int, int, int, int, int]:
    """The event's counts and, counted from the answers themselves, the same three."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            """SELECT e.going, e.interested, e.waitlisted,
                      count(*) FILTER (WHERE r.status = 'going'), count(*) FILTER (WHERE r.status = 'interested'),
                      count(*) FILTER (WHERE r.status = 'waitlisted')
               FROM events e LEFT JOIN event_rsvps r ON r.event_id = e.id WHERE e.id = %s
               GROUP BY e.id""",
            (event_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        return tuple(row)


async def test_a_hundred_concurrent_rsvps_for_the_last_seat_fill_it_once_and_wait_in_order(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    host, first, second = await _people(http, local_host, api, "evc", ["host", "first", "second"])
    crowd = await _people(http, local_host, api, "evc", [f"c{i:03d}" for i in range(100)])
    event = await host.ok("POST", "/api/events", _event("Three seats", capacity=3))
    path = f"/api/events/{event['id']}/rsvp"
    for early in (first, second):
        assert (await early.ok("PUT", path, {"status": "going"}))["status"] == "going"

    answers = await asyncio.gather(
        *(user.call("PUT", path, {"status": "going"}, timeout=120) for user in crowd)
    )
    assert all(a.status == 200 for a in answers), [a for a in answers if a.status != 200][:3]
    statuses = [a.body["status"] for a in answers]
    assert statuses.count("going") == 1 and statuses.count("waitlisted") == 99
    # Each waiting answer learnt its own place: 1 to 99, each once (the order the lock was taken in).
    positions = {
        crowd[i].id: a.body["waitlistPosition"]
        for i, a in enumerate(answers)
        if a.body["status"] == "waitlisted"
    }
    assert sorted(positions.values()) == list(range(1, 100))
    event_now = await host.ok("GET", f"/api/events/{event['id']}")
    assert (event_now["counts"], event_now["seatsLeft"]) == (
        {"going": 3, "interested": 0, "waitlisted": 99},
        0,
    )
    assert await _db_counts(database_url, event["id"]) == (3, 0, 99, 3, 0, 99)

    # Seats free one by one: each goes to the first in line, in order; the others move up.
    in_line = sorted(positions, key=positions.__getitem__)
    by_id = {user.id: user for user in crowd}
    await first.ok("DELETE", path)  # withdraws
    assert (await by_id[in_line[0]].ok("GET", f"/api/events/{event['id']}"))["myRsvp"] == {
        "status": "going",
        "waitlistPosition": None,
    }
    await second.ok("PUT", path, {"status": "not_going"})  # gives the seat up
    assert (await by_id[in_line[1]].ok("GET", f"/api/events/{event['id']}"))["myRsvp"]["status"] == "going"
    third = await by_id[in_line[2]].ok("GET", f"/api/events/{event['id']}")
    assert third["myRsvp"] == {"status": "waitlisted", "waitlistPosition": 1}
    # Asking to go again while waiting keeps the place; the host adding two seats takes the next two.
    again = await by_id[in_line[3]].ok("PUT", path, {"status": "going"})
    assert (again["status"], again["waitlistPosition"]) == ("waitlisted", 2)
    await host.ok("PATCH", f"/api/events/{event['id']}", {"capacity": 5})
    for user_id in in_line[2:4]:
        assert (await by_id[user_id].ok("GET", f"/api/events/{event['id']}"))["myRsvp"]["status"] == "going"
    refused = await host.call("PATCH", f"/api/events/{event['id']}", {"capacity": 2})
    assert refused.status == 409, refused  # five are going
    assert await _db_counts(database_url, event["id"]) == (5, 0, 95, 5, 0, 95)


async def test_going_and_interested_counts_stay_exact_under_concurrent_changes(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    host, *crowd = await _people(http, local_host, api, "evx", ["host"] + [f"x{i:02d}" for i in range(40)])
    event = await host.ok("POST", "/api/events", _event("No limit"))
    path = f"/api/events/{event['id']}/rsvp"
    # Each user answers three times at once with different answers, and half withdraw at the same time.
    moves = [
        user.call("PUT", path, {"status": answer}, timeout=120)
        for user in crowd
        for answer in ("going", "interested", "going")
    ] + [user.call("DELETE", path, timeout=120) for user in crowd[::2]]
    answers = await asyncio.gather(*moves)
    assert all(a.status in (200, 204) for a in answers), [a for a in answers if a.status not in (200, 204)][
        :3
    ]
    going, interested, waitlisted, live_going, live_interested, live_waitlisted = await _db_counts(
        database_url, event["id"]
    )
    assert (going, interested, waitlisted) == (live_going, live_interested, live_waitlisted)
    assert waitlisted == 0 and going + interested <= len(crowd)
    shown = await host.ok("GET", f"/api/events/{event['id']}")
    assert shown["counts"] == {"going": going, "interested": interested, "waitlisted": 0}


async def _notes(user: ApiUser) -> set[tuple[str, str, str]] | None:
    """The caller's notifications as (type, actor, subject); None while Cosmos DB answers 503 (a loaded
    emulator: the poll asks again)."""
    answer = await user.call("GET", "/api/notifications?limit=100")
    if answer.status == 503:
        return None
    assert answer.status == 200, answer
    return {(n["type"], n["actorId"], n["subjectId"]) for n in answer.body["items"]}


async def _settled_notes(user: ApiUser) -> set[tuple[str, str, str]]:
    notes = await eventually(
        lambda: _notes(user), lambda n: n is not None, timeout=SETTLE, what="notifications"
    )
    assert notes is not None
    return notes


async def test_the_host_hears_of_answers_and_attendees_of_changes_promotions_and_cancellation(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession
) -> None:
    host, ann, ben, cat, dan = await _people(
        http, local_host, api, "evn", ["host", "ann", "ben", "cat", "dan"]
    )
    event = await host.ok("POST", "/api/events", _event("Tiny dinner", capacity=1))
    path = f"/api/events/{event['id']}/rsvp"
    await ann.ok("PUT", path, {"status": "going"})
    await ben.ok("PUT", path, {"status": "going"})  # waits
    await cat.ok("PUT", path, {"status": "interested"})
    await dan.ok("PUT", path, {"status": "interested"})
    await cat.ok("PATCH", "/api/users/me/notification-settings", {"event_updated": False})
    eid = event["id"]
    await eventually(
        lambda: _notes(host),
        lambda notes: (
            notes is not None and {("event_rsvp", u.id, eid) for u in (ann, ben, cat, dan)} <= notes
        ),
        timeout=SETTLE,
        what="the host's RSVP notifications",
    )

    await ann.ok("DELETE", path)  # ben is promoted
    await host.ok("PATCH", f"/api/events/{eid}", {"place": "my kitchen"})
    await eventually(
        lambda: _notes(ben),
        lambda notes: (
            notes is not None and {("event_promoted", host.id, eid), ("event_updated", host.id, eid)} <= notes
        ),
        timeout=SETTLE,
        what="ben's promotion and the change",
    )
    await eventually(
        lambda: _notes(dan),
        lambda n: n is not None and ("event_updated", host.id, eid) in n,
        timeout=SETTLE,
        what="dan's",
    )
    # dan blocks the host: no notification about the host's event reaches him any more.
    await dan.ok("PUT", f"/api/users/{host.id}/block")
    await host.ok("DELETE", f"/api/events/{eid}")
    await eventually(
        lambda: _notes(ben),
        lambda n: n is not None and ("event_cancelled", host.id, eid) in n,
        timeout=SETTLE,
        what="ben's",
    )
    await eventually(
        lambda: _notes(cat),
        lambda n: n is not None and ("event_cancelled", host.id, eid) in n,
        timeout=SETTLE,
        what="cat's",
    )
    # cat turned changes off; ann withdrew before the change and the cancellation.
    assert ("event_updated", host.id, eid) not in await _settled_notes(cat)
    assert not {t for t, _, s in await _settled_notes(ann) if s == eid}
    assert not {t for t, _, s in await _settled_notes(dan) if t == "event_cancelled"}


async def test_erasing_an_attendee_frees_their_seat_and_erasing_a_host_cancels_their_events(
    local_host: FunctionHost, api: ApiClient, http: aiohttp.ClientSession, database_url: str
) -> None:
    host, gone, next_up, guest = await _people(
        http, local_host, api, "eve", ["host", "gone", "next", "guest"]
    )
    event = await host.ok("POST", "/api/events", _event("One seat", capacity=1))
    path = f"/api/events/{event['id']}/rsvp"
    await gone.ok("PUT", path, {"status": "going"})
    await next_up.ok("PUT", path, {"status": "going"})
    own = await gone.ok("POST", "/api/events", _event("gone's party"))
    await guest.ok("PUT", f"/api/events/{own['id']}/rsvp", {"status": "going"})
    post = await guest.ok("POST", "/api/posts", {"content": "party!", "eventId": own["id"]})
    export = await gone.ok("GET", "/api/users/me/export")
    assert [e["title"] for e in export["events"]] == ["gone's party"]
    assert [(r["eventId"], r["status"]) for r in export["rsvps"]] == [(event["id"], "going")]

    status = (await gone.call("DELETE", "/api/users/me")).status
    assert status == 202

    async def erased() -> bool:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT completed_at IS NOT NULL FROM account_erasures WHERE user_id = %s", (gone.id,)
            )
            row = await cur.fetchone()
            return bool(row and row[0])

    await eventually(erased, bool, timeout=SETTLE, what="the erasure")
    mine = (await next_up.ok("GET", f"/api/events/{event['id']}"))["myRsvp"]
    assert mine == {"status": "going", "waitlistPosition": None}
    assert (await host.ok("GET", f"/api/events/{event['id']}"))["counts"]["going"] == 1
    assert (await guest.call("GET", f"/api/events/{own['id']}")).status == 404  # its host is gone
    assert (await guest.ok("GET", f"/api/posts/{post['id']}"))["event"]["unavailable"] is True
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM event_rsvps WHERE user_id = %s", (gone.id,))
        assert (await cur.fetchone()) == (0,)
        cur = await conn.execute(
            "SELECT title, description, place, cancelled_at IS NOT NULL FROM events WHERE host_id = %s",
            (gone.id,),
        )
        assert await cur.fetchall() == [("[erased]", "", "", True)]
