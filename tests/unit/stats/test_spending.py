"""Lan-DeMets boundaries computed look by look on a lattice."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from analyzer.stats.spending import BoundaryState, SpendingFunction, boundaries, next_boundary

FIVE = [0.2, 0.4, 0.6, 0.8, 1.0]


def test_obrien_fleming_type_matches_published_boundaries() -> None:
    # Lan-DeMets O'Brien-Fleming-type, 5 equally spaced looks, one-sided 0.025 (Jennison &
    # Turnbull 2000, table 7.6 / gsDesign): 4.877, 3.357, 2.680, 2.290, 2.031
    got = boundaries(FIVE, FIVE, 0.025, SpendingFunction.parse("obrien-fleming"))
    assert got == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=0.01)


def test_pocock_type_matches_published_boundaries() -> None:
    got = boundaries(FIVE, FIVE, 0.025, SpendingFunction.parse("pocock"))
    assert got == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=0.01)


def test_single_look_at_the_horizon_is_the_fixed_sample_test() -> None:
    got = boundaries([1.0], [1.0], 0.05, SpendingFunction.parse("hsd:1"))
    assert got[0] == pytest.approx(stats.norm.isf(0.05), abs=0.005)


def test_irregular_looks_keep_the_crossing_probability_at_alpha() -> None:
    rng = np.random.default_rng(11)
    infos = [0.03, 0.05, 0.2, 0.21, 0.5, 0.55, 0.9, 1.0, 1.3]
    fracs = [min(i, 1.0) for i in infos]
    crit = np.array(boundaries(infos, fracs, 0.05, SpendingFunction.parse("hsd:1")))
    steps = rng.normal(size=(40_000, len(infos))) * np.sqrt(np.diff(infos, prepend=0.0))
    z = np.cumsum(steps, axis=1) / np.sqrt(infos)
    rate = float((z >= crit).any(axis=1).mean())
    assert abs(rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 40_000) + 0.002
    assert math.isinf(crit[-1])  # nothing left to spend after the horizon


def test_a_look_without_new_information_changes_nothing() -> None:
    sf = SpendingFunction.parse("hsd:1")
    s1 = next_boundary(BoundaryState(), info=0.3, fraction=0.3, alpha=0.05, spending=sf)
    s2 = next_boundary(s1, info=0.3, fraction=0.3, alpha=0.05, spending=sf)
    assert s2 == s1


@pytest.mark.parametrize("text", ["obrien-fleming", "pocock", "hsd:-4", "hsd:0", "hsd:2"])
def test_spending_functions_are_monotone_and_spend_alpha_by_the_horizon(text: str) -> None:
    sf = SpendingFunction.parse(text)
    values = [sf.spent(0.05, t) for t in np.linspace(0, 1.5, 31)]
    assert values[0] == 0.0
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert sf.spent(0.05, 1.0) == pytest.approx(0.05)
    assert sf.describe().split(":")[0] == text.split(":", maxsplit=1)[0]


def test_unknown_spending_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="bogus"):
        SpendingFunction.parse("bogus")
