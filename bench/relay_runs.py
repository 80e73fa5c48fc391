"""When the host's relay timer was NOT running, from the runs it logged.

The timer (schedule "0 * * * * *") drains for OUTBOX_DRAIN_SECONDS and the next run starts on the next
whole minute, so between a run's end and the next minute nothing relays. Each finished run is logged by
the host as `outbox_relay_timer trigger=timerTrigger due=HH:MM:SS duration=Nms` (UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

_RUN = re.compile(r"outbox_relay_timer trigger=timerTrigger due=(\d\d):(\d\d):(\d\d) duration=([\d.]+)ms")


def runs(log_path: Path, around: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """(start, end) of every relay run logged so far; `around` (UTC) dates them."""
    found = []
    for match in _RUN.finditer(log_path.read_text(errors="replace")):
        due = around.replace(hour=int(match[1]), minute=int(match[2]), second=int(match[3]), microsecond=0)
        if due - around > dt.timedelta(hours=12):
            due -= dt.timedelta(days=1)
        elif around - due > dt.timedelta(hours=12):
            due += dt.timedelta(days=1)
        found.append((due, due + dt.timedelta(milliseconds=float(match[4]))))
    return found


def pauses(log_path: Path, around: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """[a run's end, the next whole minute) for every run logged so far: nothing relays in between."""
    return [
        (end, (end + dt.timedelta(minutes=1)).replace(second=0, microsecond=0))
        for _, end in runs(log_path, around)
    ]


def overruns(log_path: Path, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Runs between `start` and `end` that ended after the next scheduled start (hh:mm+1:00), so the timer
    skipped that start: each as a readable line."""
    found = []
    for began, ended in runs(log_path, start):
        scheduled = (began + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        if ended > scheduled and start <= ended <= end + dt.timedelta(minutes=1):
            idle = (
                (ended + dt.timedelta(minutes=1)).replace(second=0, microsecond=0) - ended
            ).total_seconds()
            found.append(
                f"the run started {began:%H:%M:%S} lasted {(ended - began).total_seconds():.1f} s, past "
                f"its next start {scheduled:%H:%M:%S}, so the timer skipped that start and nothing "
                f"relayed for {idle:.0f} s"
            )
    return found


def seconds_paused(
    spans: list[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime
) -> float:
    return sum(max(0.0, (min(b, end) - max(a, start)).total_seconds()) for a, b in spans)


def paused_at(spans: list[tuple[dt.datetime, dt.datetime]], moment: dt.datetime) -> bool:
    return any(a <= moment < b for a, b in spans)


_UNAVAILABLE = re.compile(r"^(\d\d):(\d\d):(\d\d) .*outbox relay: ([\w-]+) is unavailable \((.{0,160})")
_ANSWERS = re.compile(r"^(\d\d):(\d\d):(\d\d) .*outbox relay: ([\w-]+) answers again after ([\d.]+) s")


def sink_outages(log_path: Path, start: dt.datetime, end: dt.datetime) -> list[str]:
    """The relay's sinks (Cosmos DB, Event Hubs) that its breaker found not answering between `start`
    and `end` (UTC), and for how long delivery to them paused: each as a readable line."""

    def at(match: re.Match[str]) -> dt.datetime:
        moment = start.replace(hour=int(match[1]), minute=int(match[2]), second=int(match[3]), microsecond=0)
        return moment + dt.timedelta(days=1) if start - moment > dt.timedelta(hours=12) else moment

    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        for pattern, kind in ((_UNAVAILABLE, "down"), (_ANSWERS, "back")):
            match = pattern.search(line)
            if match and start - dt.timedelta(seconds=1) <= at(match) <= end + dt.timedelta(seconds=5):
                found.append(
                    f"{at(match):%H:%M:%S} {match[4]} did not answer ({match[5].split(';')[0]})"
                    if kind == "down"
                    else f"{at(match):%H:%M:%S} {match[4]} answered again after {match[5]} s"
                )
    return found
