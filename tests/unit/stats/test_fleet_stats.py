"""Fleet statistics: e-BH against its definition, the exact safety e-process's validity, and
the difference in differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from analyzer.stats.fleet import (
    did_rate_effect,
    e_bh,
    e_bh_from_log,
    log_e_rate_above,
    pooled_change,
)

e_values = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=1, max_size=60
)


def _brute_force_e_bh(e: list[float], level: float) -> set[int]:
    m = len(e)
    best = 0
    for k in range(1, m + 1):
        # k hypotheses whose e-values reach m / (k level): at least k of them must exist
        if sum(1 for x in e if x * k * level >= m) >= k:
            best = k
    ranked = sorted(range(m), key=lambda i: -e[i])
    return set(ranked[:best]) if best else set()


@settings(max_examples=200, deadline=None)
@given(e_values, st.sampled_from([0.01, 0.05, 0.1, 0.3]))
def test_e_bh_rejects_exactly_the_definition(e: list[float], level: float) -> None:
    got = set(np.flatnonzero(e_bh(e, level)).tolist())
    want = _brute_force_e_bh(e, level)
    # ties at the cut may be ordered either way: compare the e-values rejected
    assert sorted(e[i] for i in got) == sorted(e[i] for i in want)


@settings(max_examples=200, deadline=None)
@given(e_values, st.integers(min_value=0, max_value=59), st.floats(min_value=1.0, max_value=1e4))
def test_more_evidence_never_shrinks_the_discoveries(e: list[float], i: int, factor: float) -> None:
    i %= len(e)
    before = e_bh(e, 0.05)
    raised = list(e)
    raised[i] *= factor
    after = e_bh(raised, 0.05)
    assert after.sum() >= before.sum()
    assert not (before & ~after).any() or before[i]


def test_e_bh_ignores_non_finite_and_negative_values() -> None:
    got = e_bh([math.nan, math.inf, -5.0, 1e9], 0.05)
    assert got.tolist() == [False, False, False, True]
    assert e_bh([], 0.05).size == 0
    assert e_bh_from_log([800.0, 0.0], 0.05).tolist() == [True, False]
    with pytest.raises(ValueError, match="level"):
        e_bh([1.0], 0.0)


def _log_expectation(n: int, p: float, bound: float) -> float:
    x = np.arange(n + 1)
    return float(special.logsumexp(stats.binom.logpmf(x, n, p) + log_e_rate_above(x, n, bound)))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=400),
    st.floats(min_value=0.001, max_value=0.5),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_safety_e_value_has_expectation_at_most_one_under_the_null(
    n: int, bound: float, below: float
) -> None:
    # exact: the expectation over every possible count, at the bound and below it
    assert _log_expectation(n, bound, bound) <= 1e-9
    assert _log_expectation(n, bound * below, bound) <= 1e-9


def test_safety_e_value_finds_a_small_model_far_above_its_bound() -> None:
    # 10 errors in 20 requests against a 5 % bound: clear even with this little traffic
    assert float(log_e_rate_above(10, 20, 0.05)) > math.log(1e4)
    assert float(log_e_rate_above(0, 20, 0.05)) < 0.0
    grows = log_e_rate_above([1, 2, 4, 8], [20, 20, 20, 20], 0.05)
    assert np.all(np.diff(grows) > 0)
    with pytest.raises(ValueError, match="bound"):
        log_e_rate_above(1, 2, 1.0)


def test_difference_in_differences_removes_a_shared_time_effect() -> None:
    # the model's rate and the controls' both rise by 2 points: no harm beyond the margin
    change, var = pooled_change(
        after_events=np.array([3000.0]),
        after_total=np.array([100_000.0]),
        before_events=np.array([1000.0]),
        before_total=np.array([100_000.0]),
    )
    assert change == pytest.approx(0.02)
    eff = did_rate_effect(
        after_events=[300.0],
        after_total=[10_000.0],
        before_events=[100.0],
        before_total=[10_000.0],
        control_change=change,
        control_var=var,
        margin=0.005,
    )
    assert float(eff.theta[0]) == pytest.approx(-0.005)
    alone = did_rate_effect(
        after_events=[300.0],
        after_total=[10_000.0],
        before_events=[100.0],
        before_total=[10_000.0],
        control_change=0.0,
        control_var=0.0,
        margin=0.005,
    )
    assert float(alone.z[0]) > 5  # the model's own past alone would call the time effect harm
    assert float(eff.se[0]) > float(alone.se[0])  # the controls' noise is paid for
    assert float(eff.neff[0]) < float(alone.neff[0])


def test_no_controls_or_no_traffic_gives_no_change() -> None:
    assert pooled_change(after_events=[], after_total=[], before_events=[], before_total=[]) == (
        0.0,
        0.0,
    )
    eff = did_rate_effect(
        after_events=[0.0],
        after_total=[0.0],
        before_events=[0.0],
        before_total=[0.0],
        control_change=0.0,
        control_var=0.0,
        margin=0.0,
    )
    assert float(eff.z[0]) == 0.0
    assert float(eff.neff[0]) == 0.0
