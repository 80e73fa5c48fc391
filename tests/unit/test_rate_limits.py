"""The rate-limit arithmetic (shared_code/domain/rate_limits.py): GCRA, fan-out weights, the client
address a request is limited by, and the in-memory limiter of the liveness probe."""

from __future__ import annotations

import pytest

from shared_code.domain.errors import RateLimited
from shared_code.domain.rate_limits import (
    UNKNOWN_CLIENT,
    Rate,
    client_address,
    fanout_doublings,
    fanout_weight,
    gcra_step,
    retry_after_header,
)
from shared_code.services.rate_limits import Bucket, LocalRateLimiter, key_hash

PER_MINUTE_10 = Rate(10, 60.0)  # one unit every 6 s, 10 at once


def burst(rate: Rate, now: float, count: int, cost: int = 1) -> tuple[float | None, list[bool]]:
    tat: float | None = None
    outcomes = []
    for _ in range(count):
        decision = gcra_step(tat, now, cost, rate)
        outcomes.append(decision.allowed)
        tat = decision.tat
    return tat, outcomes


def test_a_quiet_bucket_allows_the_whole_limit_at_once_and_then_refuses() -> None:
    _, outcomes = burst(PER_MINUTE_10, 1000.0, 12)
    assert outcomes == [True] * 10 + [False] * 2


def test_a_refusal_says_when_the_next_unit_is_back_and_changes_nothing() -> None:
    tat, _ = burst(PER_MINUTE_10, 1000.0, 10)
    refused = gcra_step(tat, 1000.0, 1, PER_MINUTE_10)
    assert not refused.allowed
    assert refused.tat == tat  # a refused request spends nothing
    assert refused.retry_after_seconds == pytest.approx(6.0)
    assert not gcra_step(tat, 1005.9, 1, PER_MINUTE_10).allowed
    assert gcra_step(tat, 1006.0, 1, PER_MINUTE_10).allowed


def test_units_come_back_at_the_steady_rate_and_never_beyond_the_limit() -> None:
    tat, _ = burst(PER_MINUTE_10, 1000.0, 10)
    # 30 s later, 5 units are back
    _, outcomes = burst_from(tat, 1030.0, 6)
    assert outcomes == [True] * 5 + [False]
    # an hour later, the bucket is full, not fuller
    _, outcomes = burst_from(tat, 4600.0, 11)
    assert outcomes == [True] * 10 + [False]


def burst_from(tat: float | None, now: float, count: int) -> tuple[float | None, list[bool]]:
    outcomes = []
    for _ in range(count):
        decision = gcra_step(tat, now, 1, PER_MINUTE_10)
        outcomes.append(decision.allowed)
        tat = decision.tat
    return tat, outcomes


def test_a_weighted_request_spends_its_weight() -> None:
    _, outcomes = burst(PER_MINUTE_10, 0.0, 3, cost=4)
    assert outcomes == [True, True, False]  # 4 + 4 fit in 10, a third 4 does not


def test_a_cost_above_the_limit_is_capped_so_a_full_bucket_still_allows_it_once() -> None:
    assert PER_MINUTE_10.increment_seconds(1000) == pytest.approx(60.0)
    assert PER_MINUTE_10.increment_seconds(0) == pytest.approx(6.0)
    _, outcomes = burst(PER_MINUTE_10, 0.0, 2, cost=1000)
    assert outcomes == [True, False]


def test_bytes_per_day_work_as_a_byte_weighted_bucket() -> None:
    gib_per_day = Rate(1024**3, 86400.0)
    tat, outcomes = burst(gib_per_day, 0.0, 2, cost=512 * 1024**2)
    assert outcomes == [True, True]
    refused = gcra_step(tat, 0.0, 1024, gib_per_day)
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(1024 * 86400 / 1024**3)


@pytest.mark.parametrize(
    ("followers", "weight"),
    [(0, 1), (999, 1), (1000, 2), (9999, 2), (10_000, 4), (100_000, 8), (1_000_000, 16), (10**9, 16)],
)
def test_fan_out_weight_doubles_with_every_tenfold_of_followers(followers: int, weight: int) -> None:
    assert fanout_weight(followers) == weight


@pytest.mark.parametrize(
    "followers", [0, 1, 999, 1000, 1001, 9999, 10_000, 99_999, 10**5, 10**6, 10**7, 10**9]
)
def test_the_stores_doublings_give_the_same_weight(followers: int) -> None:
    """The upsert weighs a fan-out as 2 ^ (how many doublings the followers reach)."""
    assert 2 ** sum(followers >= at for at in fanout_doublings()) == fanout_weight(followers)


@pytest.mark.parametrize(
    ("header", "hops", "address"),
    [
        ("203.0.113.7", 1, "203.0.113.7"),
        ("203.0.113.7:51234", 1, "203.0.113.7"),
        ("[2001:db8::1]:443", 1, "2001:db8::1"),
        ("2001:db8::1", 1, "2001:db8::1"),
        # what the client sent comes first; only the front end's own entry (the last) counts
        ("1.1.1.1, 2.2.2.2, 203.0.113.7", 1, "203.0.113.7"),
        # behind one more trusted proxy (e.g. Front Door): the second from the right
        ("1.1.1.1, 203.0.113.7, 10.0.0.4", 2, "203.0.113.7"),
        (None, 1, UNKNOWN_CLIENT),
        ("", 1, UNKNOWN_CLIENT),
        ("203.0.113.7", 2, UNKNOWN_CLIENT),  # fewer entries than trusted hops: no trusted entry
        ("not-an-address", 1, UNKNOWN_CLIENT),
    ],
)
def test_the_client_address_is_the_entry_the_trusted_proxy_wrote(
    header: str | None, hops: int, address: str
) -> None:
    assert client_address(header, hops) == address


def test_retry_after_is_whole_seconds_rounded_up_and_never_zero() -> None:
    assert [retry_after_header(s) for s in (0.0, 0.01, 1.0, 1.2, 59.5)] == [1, 1, 1, 2, 60]


def test_the_liveness_limiter_refuses_over_the_limit_per_client_with_retry_after() -> None:
    limiter = LocalRateLimiter(Bucket("anonymous", Rate(3, 60.0)))
    for _ in range(3):
        limiter.charge("client:a", now=10.0)
    with pytest.raises(RateLimited) as refused:
        limiter.charge("client:a", now=10.0)
    assert refused.value.status == 429 and refused.value.retry_after_seconds == 20
    limiter.charge("client:b", now=10.0)  # another client has its own bucket
    limiter.charge("client:a", now=30.0)  # one unit back after 20 s


def test_the_liveness_limiter_forgets_full_buckets_rather_than_grow() -> None:
    limiter = LocalRateLimiter(Bucket("anonymous", Rate(1, 60.0)), max_keys=2)
    limiter.charge("client:a", now=0.0)
    limiter.charge("client:b", now=0.0)
    limiter.charge("client:c", now=100.0)  # a and b are full again: dropped, c fits
    assert len(limiter._tats) == 1


def test_stored_keys_are_digests() -> None:
    digest = key_hash("client:203.0.113.7")
    assert len(digest) == 64 and "203" not in digest
