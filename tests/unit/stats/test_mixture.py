"""Mixture e-values: closed forms against numerical integrals, and validity under the null."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

from analyzer.stats.effects import rate_difference
from analyzer.stats.mixture import (
    cs_radius_z,
    log_e_one_sided,
    log_e_sample_ratio,
    log_e_two_sided,
)


def _lr(delta: float, z: float, info: float) -> float:
    s = z * math.sqrt(info)
    return math.exp(delta * s - delta**2 * info / 2)


@pytest.mark.parametrize(("z", "info"), [(0.0, 100.0), (2.5, 400.0), (-1.0, 50.0), (4.0, 5000.0)])
def test_one_sided_closed_form_equals_the_mixture_integral(z: float, info: float) -> None:
    tau = 0.05
    value, _ = integrate.quad(
        lambda d: _lr(d, z, info) * 2 * stats.norm.pdf(d, scale=tau), 0, 20 * tau
    )
    assert float(log_e_one_sided(z, info, tau)) == pytest.approx(math.log(value), abs=1e-6)


@pytest.mark.parametrize(("z", "info"), [(0.0, 100.0), (2.5, 400.0), (-3.0, 1000.0)])
def test_two_sided_closed_form_equals_the_mixture_integral(z: float, info: float) -> None:
    tau = 0.05
    value, _ = integrate.quad(
        lambda d: _lr(d, z, info) * stats.norm.pdf(d, scale=tau), -20 * tau, 20 * tau
    )
    assert float(log_e_two_sided(z * z, info, tau)) == pytest.approx(math.log(value), abs=1e-6)


def test_every_e_value_starts_at_one() -> None:
    assert float(log_e_one_sided(3.0, 0.0, 0.05)) == pytest.approx(0.0)
    assert float(log_e_two_sided(9.0, 0.0, 0.05, dof=2)) == pytest.approx(0.0)


def test_confidence_radius_inverts_the_two_sided_e_value() -> None:
    for info in (10.0, 1e3, 1e5):
        r = float(cs_radius_z(info, 0.05, 0.05))
        assert float(log_e_two_sided(r * r, info, 0.05)) == pytest.approx(math.log(20.0))


def test_sample_ratio_e_value_matches_the_beta_binomial_bayes_factor() -> None:
    x_c, x_b, w, k = 120, 380, 0.25, 1000.0
    expected = (
        special.betaln(k * w + x_c, k * (1 - w) + x_b)
        - special.betaln(k * w, k * (1 - w))
        - x_c * math.log(w)
        - x_b * math.log(1 - w)
    )
    assert float(log_e_sample_ratio(x_c, x_b, w)) == pytest.approx(expected)
    assert float(log_e_sample_ratio(2500, 7500, 0.25)) < math.log(20)
    assert float(log_e_sample_ratio(3000, 7000, 0.25)) > math.log(1000)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([0.002, 0.02, 0.2]))
def test_e_process_mean_is_at_most_one_and_ville_holds_under_the_null(
    seed: int, rate: float
) -> None:
    rng = np.random.default_rng(seed)
    reps, looks, per_look = 4000, 20, 200
    x_b = rng.binomial(per_look, rate, size=(reps, looks)).cumsum(axis=1)
    x_c = rng.binomial(per_look, rate, size=(reps, looks)).cumsum(axis=1)
    n = np.arange(1, looks + 1) * per_look
    eff = rate_difference(x_b, n, x_c, n)
    e = np.exp(log_e_one_sided(eff.z, eff.neff, 0.05))
    final = e[:, -1]
    # the mean of a nonnegative supermartingale stays at or below its start, 1
    assert final.mean() <= 1.0 + 4 * final.std() / math.sqrt(reps)
    # Ville: P(sup E >= 1/alpha) <= alpha
    assert (e.max(axis=1) >= 20.0).mean() <= 0.05
