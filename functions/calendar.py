"""Events and RSVPs (docs/api.md "Events and RSVPs")."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from functions.contract import EVENT_LIST_QUERY, api_route
from functions.http_support import ApiRequest, no_content, ok
from shared_code.db.unit_of_work import UnitOfWork
from shared_code.domain.errors import Invalid
from shared_code.domain.event_rules import listing_window
from shared_code.schemas.calendar import CreateEvent, EditEvent, Event, Rsvp, SetRsvp
from shared_code.schemas.common import Page
from shared_code.services import calendar

bp = func.Blueprint()


def _time_param(api: ApiRequest, name: str) -> datetime | None:
    """`?from=` / `?to=`: an RFC 3339 time with an offset (a '+' sent unencoded arrives as a space)."""
    raw = api.req.params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace(" ", "+"))
        if value.tzinfo is None:
            raise ValueError
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid(
            f"{name} must be a time with an offset, e.g. 2026-12-24T18:00:00Z", field=name
        ) from None


@api_route(
    bp,
    "POST",
    "events",
    summary="Host an event",
    request=CreateEvent,
    response=Event,
    status=201,
    tag="events",
)
async def create_event(api: ApiRequest) -> func.HttpResponse:
    body = api.body(CreateEvent)

    async def create(uow: UnitOfWork) -> tuple[Event, str]:
        event = await calendar.create_event(uow, body)
        return event, f"events/{event.id}"

    return await api.create("create_event", body, create)


@api_route(
    bp,
    "GET",
    "events",
    summary="Upcoming events the caller hosts, answered, or that accounts they follow host, soonest first",
    response=Page[Event],
    query=EVENT_LIST_QUERY,
    tag="events",
)
async def list_events(api: ApiRequest) -> func.HttpResponse:
    window = listing_window(datetime.now(UTC), _time_param(api, "from"), _time_param(api, "to"))
    if isinstance(window, str):
        raise Invalid(window, field="to")
    limit, cursor = api.page()
    return ok(await api.run(lambda uow: calendar.list_events(uow, api.app.cursors, window, limit, cursor)))


@api_route(
    bp, "GET", "events/{eventId:guid}", summary="An event with its counts", response=Event, tag="events"
)
async def get_event(api: ApiRequest) -> func.HttpResponse:
    event_id = api.route_id("eventId")
    return ok(await api.run(lambda uow: calendar.get_event(uow, event_id)))


@api_route(
    bp,
    "PATCH",
    "events/{eventId:guid}",
    summary="Change an event (its host); those who answered are notified",
    request=EditEvent,
    response=Event,
    tag="events",
)
async def edit_event(api: ApiRequest) -> func.HttpResponse:
    event_id = api.route_id("eventId")
    body = api.body(EditEvent)
    return ok(await api.run(lambda uow: calendar.edit_event(uow, event_id, body)))


@api_route(
    bp,
    "DELETE",
    "events/{eventId:guid}",
    summary="Cancel an event (its host; again: nothing changes); those who answered are notified",
    status=204,
    tag="events",
)
async def cancel_event(api: ApiRequest) -> func.HttpResponse:
    event_id = api.route_id("eventId")
    await api.run(lambda uow: calendar.cancel_event(uow, event_id))
    return no_content()


@api_route(
    bp,
    "PUT",
    "events/{eventId:guid}/rsvp",
    summary="Answer an event: going (waitlisted when full), interested or not going",
    request=SetRsvp,
    response=Rsvp,
    tag="events",
)
async def set_rsvp(api: ApiRequest) -> func.HttpResponse:
    event_id = api.route_id("eventId")
    body = api.body(SetRsvp)
    return ok(await api.run(lambda uow: calendar.set_rsvp(uow, event_id, body.status)))


@api_route(
    bp,
    "DELETE",
    "events/{eventId:guid}/rsvp",
    summary="Take back the caller's answer (a seat it held goes to the first in line)",
    status=204,
    tag="events",
)
async def withdraw_rsvp(api: ApiRequest) -> func.HttpResponse:
    event_id = api.route_id("eventId")
    await api.run(lambda uow: calendar.withdraw_rsvp(uow, event_id))
    return no_content()
