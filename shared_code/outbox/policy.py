"""The relay's policy, pure: how long a failed event waits, when it goes dead, how long a drain lasts and
what a round's outcomes are. No I/O and no clock of its own; the loop (relay.py) applies it and the
store (store.py) writes what it decides. The sinks' circuit breaker is pure policy too (breaker.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Backoff never waits longer than this, however many attempts failed.
BACKOFF_CAP_SECONDS = 6 * 3600
# Publishing a batch takes milliseconds; one that has not finished in this long is an outage.
PUBLISH_DEADLINE_SECONDS = 5.0
# While idle, look again at least this often: backed-off events and expired claims
# become claimable without anyone notifying.
IDLE_RECHECK_SECONDS = 5.0
LAST_ERROR_MAX = 2000
# A drain stops claiming this long before the timer's next run is due, so the next run starts about on
# time (the rounds in flight when the budget ends still complete; see OutboxRelay.drain). Short: an event
# committed between two runs waits for the next one, and this is most of that gap.
NEXT_RUN_MARGIN_SECONDS = 0.2


@dataclass(frozen=True)
class RelayPolicy:
    batch_size: int = 200
    # The relay's window: how many claimed batches may be in flight at once. A drain claims the next batch
    # while the earlier ones are still being delivered (a stream, not rounds that wait for their slowest
    # event); the handlers' concurrency is shared by all of them, so this bounds what is claimed and held,
    # not how hard the sinks are driven.
    rounds_in_flight: int = 3
    claim_lease_seconds: float = 120.0
    max_attempts: int = 8
    backoff_base_seconds: float = 60.0
    # A projection round (Cosmos DB writes, feed back-fills) not finished in this long fails and its sink
    # is probed: no answer is an outage (no attempt spent), an answer charges the events. Generous: a
    # round that is merely slow should finish; a hang is caught sooner by the watch below.
    projection_deadline_seconds: float = 30.0
    # A delivery still running after this long has its sink probed, and again every this long; the first
    # probe that gets no answer gives the delivery up as an outage at once. So a sink that stops answering
    # mid-round (a paused or hung Cosmos DB, Event Hubs) costs about this plus the probe's timeout, not
    # the SDK's own timeouts, and the breaker takes over.
    sink_watch_seconds: float = 1.0


def retry_delay_seconds(attempts_before: int, base_seconds: float) -> float:
    """How long an event waits after its (attempts_before + 1)-th failure: base · 2^attempts_before."""
    return float(min(BACKOFF_CAP_SECONDS, base_seconds * 2 ** min(attempts_before, 32)))


def becomes_dead(attempts_before: int, max_attempts: int) -> bool:
    return attempts_before + 1 >= max_attempts


def drain_budget_seconds(next_run: datetime | None, now: datetime, cap_seconds: float) -> float:
    """How long one timer run drains: until just before the next scheduled run (so the outbox is
    watched without a gap), never longer than the configured cap, and at least a moment."""
    if next_run is None:
        return cap_seconds
    until_next = (next_run - now).total_seconds() - NEXT_RUN_MARGIN_SECONDS
    return max(1.0, min(cap_seconds, until_next))


def probe_due_before_deadline(elapsed: float, deadline: float | None, watch: float) -> bool:
    """Whether a delivery running for `elapsed` seconds gets its sink probed once more (`watch` seconds
    from now) before its deadline ends it anyway."""
    return deadline is None or elapsed + watch < deadline


@dataclass(frozen=True)
class ChargedFailure:
    """A failure that was the event's own, as recorded: it backs off, or goes dead on its last attempt."""

    event_id: int  # the outbox row
    delay_seconds: float
    status: str  # 'pending' (to be retried) or 'dead'
    last_error: str

    @property
    def dead(self) -> bool:
        return self.status == "dead"


@dataclass(frozen=True)
class ReleasedClaim:
    """A failure while its sink was away: the claim goes back, no attempt spent; the note says why."""

    event_id: int
    note: str


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def charge(event_id: int, attempts_before: int, error: BaseException, policy: RelayPolicy) -> ChargedFailure:
    """What an event's own failure costs it under the policy."""
    return ChargedFailure(
        event_id=event_id,
        delay_seconds=retry_delay_seconds(attempts_before, policy.backoff_base_seconds),
        status="dead" if becomes_dead(attempts_before, policy.max_attempts) else "pending",
        last_error=describe_error(error)[:LAST_ERROR_MAX],
    )


def release(event_id: int, sink: str, error: BaseException) -> ReleasedClaim:
    return ReleasedClaim(
        event_id, f"waiting for {sink} to answer (no attempt spent): {describe_error(error)}"[:LAST_ERROR_MAX]
    )


@dataclass
class RoundReport:
    claimed: int = 0
    published: int = 0  # both stages done
    failed: int = 0  # a handler failed (charged or not)
    dead: int = 0
    projected: int = 0  # projected in this round, publishing still to do (its sink paused or failing)
    released: int = 0  # failed while their sink was away: claims released, no attempt spent
    fenced: int = 0  # outcomes not recorded: another relay had claimed the event since


@dataclass
class DrainReport:
    rounds: int = 0
    published: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    fenced: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def add(self, round_report: RoundReport) -> None:
        self.rounds += 1
        self.published += round_report.published
        self.failed += round_report.failed
        self.dead += round_report.dead
        self.released += round_report.released
        self.fenced += round_report.fenced


def may_claim(rounds_in_flight: int, window: int, seconds_left: float) -> bool:
    """Whether a streaming drain claims another batch now: the window has room and the budget is not
    over. A batch claimed just before the end is still delivered (the drain ends when its rounds do), so
    a run overruns its budget by at most one round; the timer's next run then fires as soon as it ends
    (a missed occurrence runs at once), instead of the outbox going unwatched for a pacing margin."""
    return rounds_in_flight < window and seconds_left > 0


def claims_again_at_once(claimed: int, limit: int) -> bool:
    """After a claim: a full batch says more may be waiting, so claim again without waiting for a
    notification; a short one says the backlog was taken (what is left waits for earlier events of its
    aggregate, or was not committed yet)."""
    return claimed >= limit


def claims_again_after(report: RoundReport) -> bool:
    """After a round ends: its recorded events unblock the next events of their aggregates (and free room
    in the window), so claim again at once, unless every event it claimed was released to a paused sink
    (then the next claim waits for the sink's probe, or a notification)."""
    return report.claimed > report.released
