"""Rate limits kept in PostgreSQL, so every instance of the app shares them (docs/api.md "Limits").

One parameterized upsert per charge applies the GCRA step of shared_code/domain/rate_limits.py to the
(bucket, key) row: the row lock orders concurrent requests on every instance, and there is no read
before the write to race. A refused request changes nothing else (it is charged before the use case
runs) and gets 429 with Retry-After.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from shared_code.db.rows import fetch_one
from shared_code.domain.errors import RateLimited
from shared_code.domain.rate_limits import Rate, fanout_doublings, gcra_step, retry_after_header

log = logging.getLogger("chorus.limits")

_DOUBLINGS = fanout_doublings()

# The GCRA step (shared_code/domain/rate_limits.py gcra_step) as one statement: a new row is a full
# bucket; an existing one moves its TAT only when the request fits, and says whether it did. A write that
# fans out is weighed in the same statement (one round trip, not two): its cost is 2 ^ (how many of the
# `doublings` its account's followers reach), i.e. domain.rate_limits.fanout_weight; the account is the
# one `fanout_user` names, or the caller's (`fanout_subject`); neither: the cost is `cost`. The increment
# is Rate.increment_seconds: min(max(cost, 1), limit) * period / limit.
_CHARGE_SQL = """-- rate-limit:charge
WITH followers AS (
    SELECT coalesce(
        (SELECT c.followers FROM user_counts c WHERE c.user_id = %(fanout_user)s::uuid),
        (SELECT c.followers FROM users u JOIN user_counts c ON c.user_id = u.id
         WHERE u.auth_subject = %(fanout_subject)s::text AND u.deleted_at IS NULL),
        0) AS n
), step AS (
    SELECT make_interval(secs => least(greatest(
               CASE WHEN %(fanout_user)s::uuid IS NULL AND %(fanout_subject)s::text IS NULL THEN %(cost)s::float8
                    ELSE power(2, (SELECT count(*) FROM unnest(%(doublings)s::bigint[]) AS d(at)
                                   WHERE followers.n >= d.at))
               END, 1), %(limit)s::float8) * %(period)s::float8 / %(limit)s::float8) AS increment,
           make_interval(secs => %(period)s::float8) AS period
    FROM followers
)
INSERT INTO rate_limit_buckets AS b (bucket, key_hash, tat, allowed)
SELECT %(bucket)s, %(key)s, now() + step.increment, true FROM step
ON CONFLICT (bucket, key_hash) DO UPDATE SET
    allowed = greatest(b.tat, now()) + (SELECT increment FROM step) <= now() + (SELECT period FROM step),
    tat = CASE
        WHEN greatest(b.tat, now()) + (SELECT increment FROM step) <= now() + (SELECT period FROM step)
        THEN greatest(b.tat, now()) + (SELECT increment FROM step)
        ELSE b.tat
    END
RETURNING allowed,
          extract(epoch FROM greatest(tat, now()) + (SELECT increment FROM step)
                             - now() - (SELECT period FROM step))::float8 AS retry_after_seconds
"""

# Buckets whose TAT passed this long ago are full again and can go (the longest period is a day).
_PRUNE_SQL = """DELETE FROM rate_limit_buckets WHERE (bucket, key_hash) IN (
                    SELECT bucket, key_hash FROM rate_limit_buckets WHERE tat < now() LIMIT %s)"""


@dataclass(frozen=True)
class Bucket:
    """A named limit: its rate, and how a refusal is explained."""

    name: str
    rate: Rate
    unit: str = "request"


@dataclass(frozen=True)
class Buckets:
    """The limits of this deployment (RATE_LIMIT_* settings)."""

    writes: Bucket
    reads: Bucket
    anonymous: Bucket
    media_bytes: Bucket

    @classmethod
    def of(
        cls,
        *,
        writes_per_minute: int,
        reads_per_minute: int,
        anonymous_per_minute: int,
        media_bytes_per_day: int,
    ) -> Buckets:
        return cls(
            writes=Bucket("writes", Rate(writes_per_minute, 60.0)),
            reads=Bucket("reads", Rate(reads_per_minute, 60.0)),
            anonymous=Bucket("anonymous", Rate(anonymous_per_minute, 60.0)),
            media_bytes=Bucket("media-bytes", Rate(media_bytes_per_day, 86400.0), unit="byte"),
        )


def key_hash(key: str) -> str:
    """The stored key: a digest, so the table holds no readable address or subject."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class FanOut:
    """A write that reaches the followers of an account: the account by id (a follow joins the
    followee's fan-out), or the caller's own, by its token subject (a post, an edit)."""

    user_id: UUID | None = None
    subject: str | None = None


@dataclass(frozen=True)
class _Charged:
    allowed: bool
    retry_after_seconds: float


class RateLimiter:
    def __init__(self, pool: AsyncConnectionPool, wait_seconds: float) -> None:
        self._pool = pool
        self._wait = wait_seconds

    async def charge(self, bucket: Bucket, key: str, cost: int = 1, fanout: FanOut | None = None) -> None:
        """Spend `cost` units of `key`'s `bucket` (or, for a write that fans out, the fan-out's weight,
        looked up in the same statement), or raise RateLimited (nothing spent)."""
        params = {
            "bucket": bucket.name,
            "key": key_hash(key),
            "cost": cost,
            "limit": bucket.rate.limit,
            "period": bucket.rate.period_seconds,
            "fanout_user": fanout.user_id if fanout else None,
            "fanout_subject": fanout.subject if fanout else None,
            "doublings": list(_DOUBLINGS),
        }
        async with self._pool.connection(timeout=self._wait) as conn:
            charged = await fetch_one(conn, _Charged, _CHARGE_SQL, params)
        assert charged is not None  # the upsert always returns its row
        if not charged.allowed:
            seconds = retry_after_header(charged.retry_after_seconds)
            raise RateLimited(
                f"over the {bucket.name} limit of {bucket.rate.limit} {bucket.unit}s per "
                f"{_period(bucket.rate.period_seconds)}; retry in {seconds} s",
                seconds,
                limit=bucket.name,
            )


class LocalRateLimiter:
    """The same GCRA in this process's memory, for the one route that must not touch a dependency
    (the liveness probe, GET /api/health): per instance, which is enough for a route that does no work.
    Holds at most `max_keys` clients; full buckets are dropped first."""

    def __init__(self, bucket: Bucket, max_keys: int = 10_000) -> None:
        self._bucket = bucket
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    def charge(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._tats) >= self._max_keys:
            self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
            if len(self._tats) >= self._max_keys:
                self._tats.clear()  # a flood of addresses: start afresh rather than grow
        decision = gcra_step(self._tats.get(key), now, 1, self._bucket.rate)
        if not decision.allowed:
            seconds = retry_after_header(decision.retry_after_seconds)
            raise RateLimited(
                f"over the {self._bucket.name} limit of {self._bucket.rate.limit} requests per "
                f"{_period(self._bucket.rate.period_seconds)}; retry in {seconds} s",
                seconds,
                limit=self._bucket.name,
            )
        self._tats[key] = decision.tat


async def prune_full_buckets(pool: AsyncConnectionPool, batch: int = 1000) -> int:
    """Delete buckets that are full again (their TAT passed), `batch` rows per transaction."""
    deleted = 0
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(_PRUNE_SQL, (batch,))
        deleted += cur.rowcount
        if cur.rowcount < batch:
            return deleted


def _period(seconds: float) -> str:
    if seconds == 86400:
        return "day"
    if seconds == 60:
        return "minute"
    return f"{seconds:g} s"
