"""Effect estimators on literal counts, checked against scipy on the expanded data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analyzer.stats.effects import (
    jensen_shannon,
    ordinal_effect,
    pearson_chi2,
    psi,
    quantile,
    quantile_interval,
    rate_difference,
    rescale_counts,
)


def _expand(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(float)


def test_rate_difference_estimate_and_zero_count_baseline() -> None:
    eff = rate_difference(0, 5000, 30, 5000)
    assert float(eff.theta) == pytest.approx(30 / 5000)
    assert math.isfinite(float(eff.z))
    assert float(eff.z) > 4.0  # 30 errors against none is strong evidence
    assert float(eff.neff) == pytest.approx(2500)


def test_rate_difference_with_no_events_at_all_is_neutral() -> None:
    eff = rate_difference(0, 1000, 0, 1000)
    assert float(eff.z) == 0.0


def test_rate_difference_subtracts_the_margin() -> None:
    eff = rate_difference(100, 100_000, 600, 100_000, margin=0.005)
    assert float(eff.theta) == pytest.approx(0.006 - 0.001 - 0.005)


def test_ordinal_effect_agrees_with_scipy_mann_whitney_with_ties() -> None:
    b, c = [30, 50, 15, 5], [20, 45, 25, 10]
    eff = ordinal_effect(b, c)
    res = stats.mannwhitneyu(
        _expand(c), _expand(b), alternative="greater", use_continuity=False, method="asymptotic"
    )
    u = res.statistic
    assert float(eff.theta) == pytest.approx(2 * u / (sum(b) * sum(c)) - 1)
    assert stats.norm.sf(float(eff.z)) == pytest.approx(res.pvalue, rel=1e-6)


def test_ordinal_effect_of_identical_counts_is_zero() -> None:
    eff = ordinal_effect([5, 0, 7], [5, 0, 7])
    assert float(eff.theta) == 0.0
    assert float(ordinal_effect([0, 0, 0], [1, 2, 3]).se) == 0.0


def test_rescale_by_one_is_identity_and_totals_are_kept() -> None:
    bounds = (1.0, 2.0, 4.0, 8.0, math.inf)
    counts = np.array([3.0, 10.0, 5.0, 2.0, 1.0])
    assert rescale_counts(bounds, counts, 1.0) == pytest.approx(counts)
    assert rescale_counts(bounds, counts, 1.3).sum() == pytest.approx(counts.sum())


def test_rescale_by_the_bucket_ratio_moves_mass_down_one_bucket() -> None:
    bounds = (1.0, 2.0, 4.0, 8.0, math.inf)
    out = rescale_counts(bounds, [0.0, 0.0, 10.0, 0.0, 4.0], 2.0)
    # (2, 4] / 2 = (1, 2]; the +Inf bucket stays put (conservative)
    assert out == pytest.approx([0.0, 10.0, 0.0, 0.0, 4.0])


def test_quantile_interpolates_within_buckets_and_handles_edges() -> None:
    bounds = (10.0, 20.0, math.inf)
    assert quantile(bounds, (50, 50, 0), 0.5) == pytest.approx(10.0)
    assert quantile(bounds, (0, 100, 0), 0.5) == pytest.approx(10 * math.sqrt(2))
    assert quantile(bounds, (0, 0, 5), 0.5) == 20.0  # in +Inf: its lower bound
    assert math.isnan(quantile(bounds, (0, 0, 0), 0.5))
    lo, hi = quantile_interval(bounds, (400, 500, 100), 0.5)
    assert lo <= quantile(bounds, (400, 500, 100), 0.5) <= hi


def test_psi_and_jensen_shannon_are_zero_for_identical_mixes_and_positive_otherwise() -> None:
    assert float(psi([90, 7, 3], [90, 7, 3])) == pytest.approx(0.0)
    assert float(jensen_shannon([90, 7, 3], [90, 7, 3])) == pytest.approx(0.0)
    assert float(psi([900, 70, 30], [850, 90, 60])) > 0.02
    assert 0.0 < float(jensen_shannon([900, 70, 30], [850, 90, 60])) < 1.0


def test_pearson_chi2_matches_scipy_and_ignores_empty_categories() -> None:
    b, c = [900, 70, 30, 0], [850, 90, 60, 0]
    expected = stats.chi2_contingency(np.array([b[:3], c[:3]]), correction=False).statistic
    assert float(pearson_chi2(b, c)) == pytest.approx(expected)


def test_rescale_handles_a_zero_first_bound_without_nan() -> None:
    out = rescale_counts((0.0, 1.0, 2.0, math.inf), [1.0, 2.0, 3.0, 4.0], 1.1)
    assert np.all(np.isfinite(out))
    assert out.sum() == pytest.approx(10.0)
    # dividing by 1.1 moves part of (1, 2] below 1; the zeros stay zeros
    assert out[0] == pytest.approx(1.0)
    assert out[2] < 3.0 < out[1] + out[2]
