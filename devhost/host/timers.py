"""Timer functions on their NCRONTAB (seconds first, UTC) or TimeSpan schedules.

A timer never overlaps itself: the next occurrence is computed after a run ends,
and a run that started late is marked past due, as the host does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta

from azure.functions import meta
from croniter import croniter

from devhost.host.app_index import AppIndexError, FunctionSpec, resolve_setting_refs, timespan_seconds
from devhost.host.retries import invoke_with_retries

log = logging.getLogger("devhost.timers")

# A run this late counts as past due.
PAST_DUE_AFTER = timedelta(seconds=1)


class Schedule:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        fields = expression.split()
        if len(fields) == 6:
            if not croniter.is_valid(expression, second_at_beginning=True):
                raise AppIndexError(f"timer schedule {expression!r} is not a valid NCRONTAB expression")
            self._interval: timedelta | None = None
        elif len(fields) == 1 and ":" in expression:
            self._interval = timedelta(seconds=timespan_seconds(expression))
            if self._interval <= timedelta(0):
                raise AppIndexError(f"timer schedule {expression!r} must be a positive interval")
        else:
            raise AppIndexError(
                f"timer schedule {expression!r}: use six NCRONTAB fields (seconds first) or hh:mm:ss"
            )

    def next_after(self, moment: datetime) -> datetime:
        if self._interval is not None:
            return moment + self._interval
        result: datetime = croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)
        return result


def next_due(schedule: Schedule, ran: datetime, now: datetime) -> datetime:
    """The occurrence to run after the one due at `ran`: the next one, or, if several have passed
    while it ran, the latest of those (run at once, past due)."""
    due = schedule.next_after(ran)
    while schedule.next_after(due) <= now:
        due = schedule.next_after(due)
    return due


def timer_request(last: datetime | None, due: datetime, following: datetime, past_due: bool) -> object:
    payload = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": {
            "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": following.isoformat(),
            "LastUpdated": due.isoformat(),
        },
        "IsPastDue": past_due,
    }
    return (
        meta.get_binding_registry()
        .get("timerTrigger")
        .decode(meta.Datum(json.dumps(payload), "json"), trigger_metadata={})
    )


async def run_timer(spec: FunctionSpec, invoke: object, stop: asyncio.Event | None = None) -> None:
    """Fire `spec` on its schedule until cancelled, or until `stop` is set (the singleton lock was
    lost: a run under way finishes, no new one starts). As the host does with a monitored schedule, an
    occurrence missed while a run was still going fires as soon as that run ends, marked past due
    (several missed occurrences fire once). runOnStartup fires when the listener starts, i.e. when
    this worker takes the timer's lock."""
    trigger = spec.trigger
    schedule = Schedule(resolve_setting_refs(str(trigger["schedule"])))
    stop = stop or asyncio.Event()
    last: datetime | None = None
    due = schedule.next_after(datetime.now(UTC))
    if trigger.get("runOnStartup"):
        now = datetime.now(UTC)
        await _fire(spec, invoke, last, now, due, past_due=False)
        last = now
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, (due - datetime.now(UTC)).total_seconds())):
                await stop.wait()
        if stop.is_set():
            return
        started = datetime.now(UTC)
        following = schedule.next_after(due)
        await _fire(spec, invoke, last, due, following, past_due=started - due > PAST_DUE_AFTER)
        last = due
        due = next_due(schedule, due, datetime.now(UTC))


async def _fire(
    spec: FunctionSpec,
    invoke: object,
    last: datetime | None,
    due: datetime,
    following: datetime,
    past_due: bool,
) -> None:
    request = timer_request(last, due, following, past_due)
    try:
        await invoke_with_retries(spec, request, invoke, summary=f"due={due:%H:%M:%S}")  # type: ignore[arg-type]
    except Exception:
        # The host logs a failed timer run and keeps the schedule.
        log.exception("timer %s failed after its retries; the next run stays on schedule", spec.name)
