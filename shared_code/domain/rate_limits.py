"""Rate-limit arithmetic, pure: GCRA (the generic cell rate algorithm, a token bucket kept as one
timestamp), the weight of a fan-out, and which client address a request comes from.

GCRA keeps per (key, bucket) a "theoretical arrival time" (TAT). A rate of `limit` units per
`period` spends `period / limit` seconds of TAT per unit. A request of cost c is allowed iff
max(TAT, now) + c * period / limit <= now + period, i.e. at most `limit` units fit in a burst and they
come back at the steady rate; if allowed, TAT moves to that sum. The store applies exactly this in one
upsert (shared_code/services/rate_limits.py), so instances share the limit without a lock;
`gcra_step` is the reference the tests hold it to.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """`limit` units per `period_seconds`, all of them available at once after a quiet period."""

    limit: int
    period_seconds: float

    def increment_seconds(self, cost: int) -> float:
        """How far one request of `cost` units moves the TAT (cost capped at the limit, so a request
        dearer than the whole bucket is still possible, once, from a full bucket)."""
        return min(max(cost, 1), self.limit) * self.period_seconds / self.limit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    tat: float  # the TAT after this request (unchanged when refused)
    retry_after_seconds: float  # 0 when allowed


def gcra_step(tat: float | None, now: float, cost: int, rate: Rate) -> Decision:
    """One request against a bucket whose TAT is `tat` (None: never used, or expired)."""
    start = now if tat is None else max(tat, now)
    candidate = start + rate.increment_seconds(cost)
    if candidate <= now + rate.period_seconds:
        return Decision(True, candidate, 0.0)
    return Decision(False, start, candidate - now - rate.period_seconds)


def retry_after_header(seconds: float) -> int:
    """Retry-After in whole seconds, rounded up and at least 1 (0 would invite an immediate retry)."""
    return max(1, math.ceil(seconds))


# Fan-out weight: a write that reaches every follower of an account (a post, an edit, a follow's feed
# back-fill of a big account) costs more the more followers that account has: 1 below 1,000 followers,
# then twice as much for every tenfold (2 from 1,000, 4 from 10,000, 8 from 100,000, 16 from 1,000,000).
FANOUT_FREE_BELOW = 1000
FANOUT_WEIGHT_MAX = 16


def fanout_weight(followers: int) -> int:
    weight = 1
    threshold = FANOUT_FREE_BELOW
    while followers >= threshold and weight < FANOUT_WEIGHT_MAX:
        weight *= 2
        threshold *= 10
    return weight


def fanout_doublings() -> tuple[int, ...]:
    """The follower counts at which the fan-out weight doubles (1,000, 10,000, ...), as the store's
    statement takes them: weight = 2 ^ (how many of these the followers reach), the same as
    `fanout_weight`, so the weight is looked up inside the rate-limit upsert, not in a statement of its own."""
    thresholds = []
    weight, threshold = 1, FANOUT_FREE_BELOW
    while weight < FANOUT_WEIGHT_MAX:
        thresholds.append(threshold)
        weight *= 2
        threshold *= 10
    return tuple(thresholds)


UNKNOWN_CLIENT = "unknown"


def client_address(forwarded_for: str | None, trusted_hops: int) -> str:
    """The client address of an anonymous request, from X-Forwarded-For.

    Each proxy appends the address it saw, so only the entries the trusted proxies wrote can be
    believed: the `trusted_hops`-th from the right (1 in Azure Functions: its front end appends the
    peer it accepted the connection from). Entries further left are whatever the client sent, so a
    client cannot pick its own key by sending the header. A port is dropped; an entry that is not an
    address, or a missing header, gives "unknown" (one shared key: such requests share one limit)."""
    entries = [entry.strip() for entry in (forwarded_for or "").split(",") if entry.strip()]
    if trusted_hops < 1 or len(entries) < trusted_hops:
        return UNKNOWN_CLIENT
    entry = entries[-trusted_hops]
    if entry.startswith("["):  # [IPv6]:port
        entry = entry[1:].split("]", 1)[0]
    elif entry.count(":") == 1:  # IPv4:port
        entry = entry.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return UNKNOWN_CLIENT
