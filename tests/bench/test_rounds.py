"""Ratios from alternating rounds (bench/rounds.py): the median and its range, never flattered by a
failed baseline."""

from __future__ import annotations

import pytest

from bench.rounds import Spread, percent, ratios, times


def test_the_median_of_the_rounds_ratios_with_their_range() -> None:
    spread = ratios([50.0, 90.0, 60.0], [100.0, 100.0, 100.0])
    assert spread.median == pytest.approx(0.6)
    assert spread.low == pytest.approx(0.5)
    assert spread.high == pytest.approx(0.9)
    assert spread.text(percent) == "60 % (range 50 %–90 %, 3 rounds)"
    assert spread.as_dict()["rounds"] == [0.5, 0.9, 0.6]


def test_a_round_whose_baseline_measured_nothing_counts_as_zero() -> None:
    assert ratios([10.0, 10.0, 10.0], [0.0, 5.0, 5.0]).values == (0.0, 2.0, 2.0)


def test_app_and_baseline_rounds_must_pair_up() -> None:
    with pytest.raises(ValueError, match="3 app rounds against 2"):
        ratios([1.0, 2.0, 3.0], [1.0, 2.0])


def test_one_round_says_so_and_no_round_is_an_error() -> None:
    assert Spread.of([1.5]).text(times) == "1.50 × (1 round)"
    with pytest.raises(ValueError, match="at least one round"):
        Spread.of([])
