"""Telling a sink outage from a poison event: the relay's circuit breaker, as pure policy.

A sink is one place the relay delivers to: the projections (Cosmos DB, with the
feed maintenance and the moderators' mirror) or the Event Hubs publisher. When a
round's deliveries to a sink fail, the relay asks the sink itself whether it is
up (a probe that involves no event):

- the probe fails: the sink is away. The breaker opens: the failures are not
  charged to their events (no attempt spent, no backoff), their claims are
  released, and the relay claims nothing for that sink until a probe, one every
  `probe_interval_seconds`, answers. Then it closes and delivery resumes at once.
- the probe answers: the sink is fine and the failures are the events' own
  (a poison event, a bug, a conflict). They are charged: the event backs off
  (base · 2^attempts) and, after its last attempt, goes dead.

So an outage, however long, spends no attempts and costs at most one probe
interval after the sink returns; an event that fails while the sink answers
still backs off and dies alone. Pure: no I/O, the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# How often an open breaker asks its sink whether it is back.
PROBE_INTERVAL_SECONDS = 1.0
# A probe that has not answered within this long counts as failed.
PROBE_TIMEOUT_SECONDS = 2.0


class BreakerState(StrEnum):
    CLOSED = "closed"  # delivering
    OPEN = "open"  # the sink is away: probing, not delivering


class FailureVerdict(StrEnum):
    NONE = "none"  # nothing failed
    CHARGE = "charge"  # the events' own failures: spend an attempt, back off
    RELEASE = "release"  # the sink is away: release the claims, spend nothing


@dataclass
class SinkBreaker:
    """One sink's breaker. `now` is a monotonic clock reading in seconds."""

    sink: str
    probe_interval_seconds: float = PROBE_INTERVAL_SECONDS
    state: BreakerState = BreakerState.CLOSED
    opened_at: float | None = None
    next_probe_at: float = 0.0
    last_error: str | None = None

    @property
    def delivers(self) -> bool:
        """Whether the relay should claim events for this sink now."""
        return self.state is BreakerState.CLOSED

    def needs_probe_after(self, failed: int) -> bool:
        """After a round: did any delivery fail, so that the sink must be asked whether it is up?"""
        return failed > 0

    def after_round(
        self, failed: int, probe_answered: bool | None, now: float, error: str | None
    ) -> FailureVerdict:
        """The verdict on a round's failures, given the probe's answer (None when no probe was needed)."""
        if failed == 0:
            return FailureVerdict.NONE
        if probe_answered is None:
            raise ValueError("a round with failures needs the sink's probe answer")
        if probe_answered:
            return FailureVerdict.CHARGE
        self._open(now, error)
        return FailureVerdict.RELEASE

    def probe_due(self, now: float) -> bool:
        return self.state is BreakerState.OPEN and now >= self.next_probe_at

    def after_probe(self, answered: bool, now: float, error: str | None = None) -> bool:
        """An open breaker's probe came back; returns True when the breaker closed (delivery resumes)."""
        if answered:
            self.state = BreakerState.CLOSED
            self.opened_at = None
            self.last_error = None
            return True
        self._open(now, error)
        return False

    def seconds_until_probe(self, now: float) -> float | None:
        """How long until the next probe is due (None while closed): the relay sleeps no longer."""
        if self.state is BreakerState.CLOSED:
            return None
        return max(0.0, self.next_probe_at - now)

    def _open(self, now: float, error: str | None) -> None:
        if self.state is BreakerState.CLOSED:
            self.opened_at = now
        self.state = BreakerState.OPEN
        self.next_probe_at = now + self.probe_interval_seconds
        self.last_error = error
