"""Alpha spending for the omnibus test: boundaries on the norm of a Bessel process."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from analyzer.stats import radial
from analyzer.stats.radial import next_radial_boundary, radial_boundaries
from analyzer.stats.spending import BoundaryState, SpendingFunction, boundaries

FIVE = [0.2, 0.4, 0.6, 0.8, 1.0]


@pytest.mark.parametrize("spending", ["pocock", "hsd:-2", "hsd:1"])
def test_one_dimension_is_the_two_sided_gaussian_design(spending: str) -> None:
    # |W| of a one-dimensional Brownian motion: the two-sided test at alpha has the one-sided
    # boundaries at alpha / 2 (spending functions linear in alpha), computed by the other lattice
    sf = SpendingFunction.parse(spending)
    radial = radial_boundaries(FIVE, FIVE, 0.05, sf, dof=1)
    gaussian = boundaries(FIVE, FIVE, 0.025, sf)
    assert radial == pytest.approx(gaussian, abs=0.005)


def test_two_sided_pocock_matches_published_boundaries() -> None:
    # Lan-DeMets Pocock-type, 5 equal looks, two-sided 0.05 (Jennison & Turnbull 2000)
    got = radial_boundaries(FIVE, FIVE, 0.05, SpendingFunction.parse("pocock"), dof=1)
    assert got == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=0.01)


@pytest.mark.parametrize("dof", [1, 2, 4, 8])
def test_single_look_at_the_horizon_is_the_fixed_sample_chi_square_test(dof: int) -> None:
    got = radial_boundaries([1.0], [1.0], 0.05, SpendingFunction.parse("hsd:0"), dof=dof)
    assert got[0] == pytest.approx(math.sqrt(stats.chi2.isf(0.05, dof)), abs=0.01)


@pytest.mark.parametrize(("dof", "seed"), [(2, 5), (4, 6)])
def test_irregular_looks_keep_the_crossing_probability_at_alpha(dof: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    infos = [0.04, 0.05, 0.2, 0.21, 0.5, 0.55, 0.9, 1.0, 1.3]
    fractions = [min(i, 1.0) for i in infos]
    crit = np.array(
        radial_boundaries(infos, fractions, 0.05, SpendingFunction.parse("hsd:-2"), dof=dof)
    )
    reps = 40_000
    steps = (
        rng.normal(size=(reps, len(infos), dof))
        * np.sqrt(np.diff(infos, prepend=0.0))[None, :, None]
    )
    norm = np.sqrt((np.cumsum(steps, axis=1) ** 2).sum(axis=2)) / np.sqrt(infos)
    rate = float((norm >= crit).any(axis=1).mean())
    assert abs(rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / reps) + 0.002
    assert math.isinf(crit[-1])  # nothing left to spend after the horizon


def test_late_spending_boundaries_fall_towards_the_horizon() -> None:
    crit = radial_boundaries(FIVE, FIVE, 0.05, SpendingFunction.parse("hsd:-2"), dof=2)
    assert all(a > b for a, b in itertools.pairwise(crit))


def test_a_look_without_new_information_changes_nothing() -> None:
    sf = SpendingFunction.parse("hsd:0")
    s1 = next_radial_boundary(
        BoundaryState(), info=0.3, fraction=0.3, alpha=0.05, spending=sf, dof=2
    )
    s2 = next_radial_boundary(s1, info=0.3, fraction=0.3, alpha=0.05, spending=sf, dof=2)
    assert s2 == s1


def test_fewer_than_two_categories_are_refused() -> None:
    with pytest.raises(ValueError, match="at least two categories"):
        next_radial_boundary(
            BoundaryState(),
            info=0.5,
            fraction=0.5,
            alpha=0.05,
            spending=SpendingFunction.parse("hsd:0"),
            dof=0,
        )


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    dof=st.integers(min_value=1, max_value=6),
    steps=st.lists(st.floats(min_value=0.01, max_value=0.4), min_size=1, max_size=6),
    spending=st.sampled_from(["hsd:-4", "hsd:0", "hsd:3", "pocock", "obrien-fleming"]),
)
def test_spent_alpha_and_surviving_mass_add_up(dof: int, steps: list[float], spending: str) -> None:
    # whatever the schedule, the alpha spent is what the spending function allows, the mass that
    # has not crossed is 1 minus it (no null mass lost or invented), and boundaries are finite
    # until the horizon
    sf = SpendingFunction.parse(spending)
    state, info = BoundaryState(), 0.0
    for step in steps:
        info += step
        state = next_radial_boundary(
            state, info=info, fraction=min(info, 1.0), alpha=0.05, spending=sf, dof=dof
        )
        assert state.spent == pytest.approx(sf.spent(0.05, min(info, 1.0)), abs=1e-12)
        if info < 1.0:
            assert sum(state.masses) == pytest.approx(1.0 - state.spent, abs=1e-6)
            assert math.isfinite(state.z_boundary) or state.spent == 0.0


@pytest.mark.parametrize("dof", [1, 2, 3, 5])
@pytest.mark.parametrize("delta", [0.0004, 0.0025, 0.025, 0.25])
def test_cell_transitions_match_the_noncentral_chi_square(dof: int, delta: float) -> None:
    """The tabulated, Gaussian-weighted transition against scipy's exact noncentral chi-square
    CDF, from sources next to the origin (where the density is least smooth) and far out."""
    h = radial.RADIAL_STEP
    for first in (0, 3, 40, 150):
        home = np.arange(first, first + 8)
        centres = (home + 0.5) * h
        band = math.ceil((7 + math.sqrt(dof)) * math.sqrt(delta) / h) + 1
        cells = home[:, None] + np.arange(-band, band + 1)[None, :]
        got = radial._cell_probabilities(centres, cells, delta, dof)
        got = got / got.sum(axis=1, keepdims=True)  # as _propagate renormalises each row
        lo, hi = np.maximum(cells, 0) * h, np.maximum(cells + 1, 0) * h
        nc = (centres**2 / delta)[:, None]
        exact = stats.ncx2.cdf(hi**2 / delta, dof, nc) - stats.ncx2.cdf(lo**2 / delta, dof, nc)
        exact = np.where(cells >= 0, exact, 0.0)
        assert np.abs(got - exact).max() < 1e-4


@pytest.mark.parametrize("dof", [1, 2, 3, 6])
def test_the_log_ive_table_matches_scipy(dof: int) -> None:
    nu = dof / 2 - 1
    x = np.exp(np.linspace(-20.0, 15.0, 5001))
    got = radial._log_ive(nu, np.log(x))
    assert np.abs(got - np.log(special.ive(nu, x))).max() < 1e-6
