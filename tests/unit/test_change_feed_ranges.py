"""The local host's change-feed leases cut the effective-partition-key space into contiguous ranges."""

from __future__ import annotations

import itertools

import pytest

from devhost.host.change_feed import feed_ranges


@pytest.mark.parametrize("count", [1, 2, 3, 4, 8])
def test_feed_ranges_cover_every_key_once(count: int) -> None:
    ranges = [r["Range"] for r in feed_ranges(count)]
    assert len(ranges) == count
    assert ranges[0]["min"] == "" and ranges[-1]["max"] == "FF"
    assert all(a["max"] == b["min"] for a, b in itertools.pairwise(ranges))
    assert all(r["isMinInclusive"] and not r["isMaxInclusive"] for r in ranges)
    assert [r["min"] for r in ranges] == sorted(r["min"] for r in ranges)


def test_hash_v2_keys_are_spread_over_the_ranges() -> None:
    # hash-v2 effective partition keys lie below "40": each range but the last gets an equal slice of it
    assert [r["Range"]["min"] for r in feed_ranges(4)] == ["", "10", "20", "30"]
