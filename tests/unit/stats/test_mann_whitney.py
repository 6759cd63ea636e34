"""Mann–Whitney / Hodges–Lehmann: R and Kayenta tie-outs, scipy cross-checks, brute force."""

from __future__ import annotations

import json
import math
from itertools import pairwise, product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from analyzer.stats.mann_whitney import (
    _RankSumAtShift,
    cles,
    mean_ratio,
    rank_sum_test,
    shift_interval,
    standardized_rank_sum,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "kayenta_classifier_cases.json"
PARITY: dict[str, Any] = json.loads(DATA.read_text())

# Literal samples: continuous (no ties), heavily tied, and with zeros.
CANARY = [12.1, 9.8, 14.3, 11.0, 13.7, 10.4, 15.2, 12.9, 11.6]
BASELINE = [10.2, 8.9, 11.5, 9.4, 12.0, 10.8, 9.1, 11.9]
TIED_CANARY = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 5.0, 0.0]
TIED_BASELINE = [0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 0.0, 0.0]


def _array(name_or_values: str | list[float]) -> list[float]:
    values = PARITY["arrays"][name_or_values] if isinstance(name_or_values, str) else name_or_values
    return [float(v) for v in values]


def _pairwise(canary: list[float], baseline: list[float]) -> list[float]:
    return sorted(c - b for c, b in product(canary, baseline))


@pytest.mark.parametrize("case", PARITY["mann_whitney_cases"], ids=lambda c: c["name"])
def test_interval_ties_out_with_r_and_kayenta(case: dict[str, Any]) -> None:
    canary, baseline = _array(case["canary"]), _array(case["baseline"])
    interval = shift_interval(canary, baseline, confidence=case["confidence"])
    expected, tol = case["expected"], case["absolute_tolerance"]
    assert interval.lower == pytest.approx(expected["lower"], abs=tol)
    assert interval.upper == pytest.approx(expected["upper"], abs=tol)
    if "estimate" in expected:
        assert interval.estimate == pytest.approx(expected["estimate"], abs=tol)
    if "search_min" in expected:
        assert min(canary) - max(baseline) == pytest.approx(expected["search_min"], abs=tol)
        assert max(canary) - min(baseline) == pytest.approx(expected["search_max"], abs=tol)


@pytest.mark.parametrize(
    ("canary", "baseline"), [(CANARY, BASELINE), (TIED_CANARY, TIED_BASELINE)], ids=["cont", "ties"]
)
def test_rank_sum_test_matches_scipy_asymptotic_with_ties_and_continuity(
    canary: list[float], baseline: list[float]
) -> None:
    ours = rank_sum_test(canary, baseline)
    theirs = mannwhitneyu(canary, baseline, method="asymptotic", use_continuity=True)
    assert ours.u_canary == pytest.approx(float(theirs.statistic))
    assert ours.p_value == pytest.approx(float(theirs.pvalue), rel=1e-12)


@pytest.mark.parametrize("size", [7, 8], ids=["49-odd", "64-even"])
def test_estimate_is_a_zero_of_the_statistic_next_to_the_hodges_lehmann_median(size: int) -> None:
    """R's estimate: a root of the continuity-corrected statistic, not the median itself.

    The correction makes the statistic zero from the difference just below the median(s) to
    the one just above, and Brent's method stops anywhere on that plateau or within its 1e-4
    tolerance of a jump.
    """
    canary, baseline = CANARY[:size], BASELINE[:size]
    differences = _pairwise(canary, baseline)
    median = float(np.median(differences))
    below, above = (
        differences[(len(differences) - 1) // 2 - 1],
        differences[len(differences) // 2 + 1],
    )
    interval = shift_interval(canary, baseline, confidence=0.95)
    assert below - 1e-4 <= interval.estimate <= above + 1e-4
    assert below <= median <= above
    c, b = np.array(canary), np.array(baseline)
    assert standardized_rank_sum(c, b, interval.estimate - 1e-4) >= 0
    assert standardized_rank_sum(c, b, interval.estimate + 1e-4) <= 0


def test_interval_ends_are_pairwise_differences_for_continuous_data() -> None:
    differences = np.array(_pairwise(CANARY, BASELINE))
    interval = shift_interval(CANARY, BASELINE, confidence=0.95)
    assert np.min(np.abs(differences - interval.lower)) < 1e-4
    assert np.min(np.abs(differences - interval.upper)) < 1e-4
    assert interval.lower < interval.estimate < interval.upper
    assert not interval.lower_clamped
    assert not interval.upper_clamped


def test_interval_inverts_the_test_brute_force() -> None:
    """Shifts just inside the interval are not rejected at 95%; shifts just outside are."""
    c, b = np.array(CANARY), np.array(BASELINE)
    interval = shift_interval(CANARY, BASELINE, confidence=0.95)
    z = 1.959963984540054
    assert abs(standardized_rank_sum(c, b, interval.lower + 1e-3)) < z
    assert abs(standardized_rank_sum(c, b, interval.upper - 1e-3)) < z
    assert standardized_rank_sum(c, b, interval.lower - 0.05) > z
    assert standardized_rank_sum(c, b, interval.upper + 0.05) < -z


@pytest.mark.parametrize(
    ("canary", "baseline"),
    [
        (CANARY, BASELINE),
        (TIED_CANARY, TIED_BASELINE),
        ("E_ERR210", "C_ERR210"),
        ([1e16, 1e16 + 2.0, 3.0], [1.0, 2.0, 1e16]),
    ],
    ids=["cont", "ties", "zero-inflated", "rounding"],
)
def test_fast_statistic_is_bit_identical_to_ranking(
    canary: str | list[float], baseline: str | list[float]
) -> None:
    """The root finder's fast path must give exactly the ranked statistic, jumps included."""
    c, b = np.array(_array(canary)), np.array(_array(baseline))
    fast = _RankSumAtShift(c, b)
    jumps = np.unique(np.subtract.outer(c, b))
    between = (jumps[1:] + jumps[:-1]) / 2
    for shift in np.concatenate((jumps, between))[:: max(1, jumps.size // 400)]:
        assert fast(float(shift)) == standardized_rank_sum(c, b, float(shift))


def test_statistic_decreases_with_the_shift() -> None:
    c, b = np.array(TIED_CANARY), np.array(TIED_BASELINE)
    values = [standardized_rank_sum(c, b, d) for d in np.linspace(-6, 6, 97)]
    assert all(later <= earlier for earlier, later in pairwise(values))
    assert values[0] > 0 > values[-1]


def test_tiny_samples_clamp_to_the_search_range_like_kayenta() -> None:
    interval = shift_interval([10.0, 11.0, 12.0], [1.0, 2.0, 3.0], confidence=0.98)
    assert (interval.lower, interval.upper) == (7.0, 11.0)
    assert interval.estimate == pytest.approx(9.0, abs=1e-4)
    assert interval.lower_clamped
    assert interval.upper_clamped


def test_wider_confidence_gives_a_wider_interval() -> None:
    narrow = shift_interval(CANARY, BASELINE, confidence=0.80)
    wide = shift_interval(CANARY, BASELINE, confidence=0.98)
    assert wide.lower < narrow.lower
    assert wide.upper > narrow.upper


def test_result_is_deterministic() -> None:
    first = shift_interval(TIED_CANARY, TIED_BASELINE, confidence=0.98)
    assert all(
        shift_interval(TIED_CANARY, TIED_BASELINE, confidence=0.98) == first for _ in range(3)
    )


def test_cles_matches_brute_force_pair_counting_with_ties() -> None:
    pairs = list(product(TIED_CANARY, TIED_BASELINE))
    brute = sum(1.0 if c > b else 0.5 if c == b else 0.0 for c, b in pairs) / len(pairs)
    assert cles(TIED_CANARY, TIED_BASELINE) == pytest.approx(brute)


def test_cles_kayenta_statistic_suite_values() -> None:
    assert cles([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]) == 0.5
    assert cles([2.3, 2.6, 3.3, 2.9, 1.4], [25.3, 25.2, 24.6, 24.4, 26.4]) == 0.0


def test_mean_ratio_kayenta_statistic_suite_values() -> None:
    assert mean_ratio([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert mean_ratio([10.0, 20.0, 30.0], [1.0, 2.0, 3.0]) == 10.0
    assert mean_ratio([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(0.1)
    assert math.isnan(mean_ratio([1.0, 2.0], [0.0, 0.0]))
    assert math.isnan(mean_ratio([0.0, 0.0], [1.0, 2.0]))


def test_all_tied_values_have_no_interval() -> None:
    with pytest.raises(ValueError, match="tied"):
        standardized_rank_sum(np.array([2.0, 2.0]), np.array([2.0, 2.0, 2.0]), 0.0)


@pytest.mark.parametrize(
    ("canary", "baseline", "confidence", "message"),
    [
        ([], [1.0], 0.95, "non-empty"),
        ([1.0, math.inf], [1.0, 2.0], 0.95, "finite"),
        ([1.0, math.nan], [1.0, 2.0], 0.95, "finite"),
        ([1.0, 2.0], [1.0, 3.0], 1.0, "confidence"),
    ],
)
def test_invalid_input_is_refused(
    canary: list[float], baseline: list[float], confidence: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        shift_interval(canary, baseline, confidence=confidence)
