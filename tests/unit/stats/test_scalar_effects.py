"""The judge's scalar statistics are bit-identical to the vectorized ones they stand in for.

The judge computes one comparison per component, where numpy's per-call overhead is most of
the cost (issue 20); ``rate_difference_of``, ``log_e_one_sided_at`` and the others repeat the
vectorized functions' operations on Python floats. Here every result is compared with the
vectorized function's on random inputs, bit for bit (the same ``repr``, the same sign of zero,
NaN where it gives NaN).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analyzer.stats import portable
from analyzer.stats.effects import (
    SEQUENTIAL_SUM,
    added,
    effective_n,
    effective_n_of,
    jensen_shannon,
    jensen_shannon_of,
    numpy_sum,
    ordinal_effect,
    ordinal_effect_of,
    pearson_chi2,
    pearson_chi2_of,
    psi,
    psi_of,
    quantile,
    quantile_function,
    quantile_interval,
    quantiles_with_intervals,
    rate_difference,
    rate_difference_of,
    rescale_counts,
    whole_counts,
)
from analyzer.stats.mixture import (
    cs_radius_z,
    cs_radius_z_at,
    log_e_one_sided,
    log_e_one_sided_at,
    log_e_sample_ratio,
    log_e_sample_ratio_at,
)

COUNTS = st.integers(min_value=0, max_value=10**9)
SMALL = st.integers(min_value=0, max_value=200)
FRACTIONS = st.floats(min_value=0.0, max_value=1.0)
ANY = st.floats(allow_nan=True, allow_infinity=True)


def same(a: object, b: object) -> bool:
    """Bit-identical floats (NaN matches NaN)."""
    x, y = float(a), float(b)  # type: ignore[arg-type]
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y and math.copysign(1.0, x) == math.copysign(1.0, y)


@st.composite
def proportions(draw: st.DrawFn) -> tuple[float, float, float, float, float]:
    counts = st.one_of(SMALL, COUNTS)
    n_b, n_c = draw(counts), draw(counts)
    x_b = draw(st.integers(min_value=0, max_value=n_b))
    x_c = draw(st.integers(min_value=0, max_value=n_c))
    margin = draw(st.one_of(st.just(0.0), st.sampled_from([0.001, 0.002, 0.02]), FRACTIONS))
    fractional = draw(st.booleans())  # rescaled counts are fractional
    if fractional:
        return x_b * 0.97, n_b * 1.01, x_c * 1.03, n_c * 0.99, margin
    return x_b, n_b, x_c, n_c, margin


@settings(max_examples=400, deadline=None)
@given(proportions())
@example((0, 0, 0, 0, 0.0))
@example((0, 5000, 30, 5000, 0.0))
@example((3, 10, 7, 10, 1.0))
@example((3, 10, 7, 10, 0.9999))
def test_rate_difference_of_is_rate_difference(args: tuple[float, ...]) -> None:
    x_b, n_b, x_c, n_c, margin = args
    want = rate_difference(x_b, n_b, x_c, n_c, margin)
    theta, se, neff = rate_difference_of(x_b, n_b, x_c, n_c, margin)
    assert same(theta, want.theta)
    assert same(se, want.se)
    assert same(neff, want.neff)
    assert type(theta) is float
    assert type(se) is float
    assert type(neff) is float


@settings(max_examples=300, deadline=None)
@given(st.one_of(COUNTS, st.floats(min_value=0, max_value=1e12)), st.one_of(COUNTS, ANY))
def test_effective_n_of_is_effective_n(n_b: float, n_c: float) -> None:
    with np.errstate(all="ignore"):
        assert same(effective_n_of(float(n_b), float(n_c)), effective_n(n_b, n_c))


BOUNDS = st.lists(
    st.floats(min_value=-10.0, max_value=1e5, allow_nan=False), min_size=1, max_size=20
).map(lambda xs: (*sorted(set(xs)), math.inf))
LEVELS = st.lists(FRACTIONS, min_size=1, max_size=4)


@st.composite
def histograms(draw: st.DrawFn) -> tuple[tuple[float, ...], tuple[int, ...]]:
    bounds = draw(BOUNDS)
    cell = st.one_of(SMALL, st.integers(min_value=0, max_value=10**7), st.just(0))
    return bounds, tuple(draw(cell) for _ in bounds)


@settings(max_examples=300, deadline=None)
@given(histograms(), LEVELS)
def test_quantiles_on_precomputed_sums_are_the_quantiles(
    hist: tuple[tuple[float, ...], tuple[int, ...]], levels: list[float]
) -> None:
    bounds, counts = hist
    at = quantile_function(bounds, counts)
    found = quantiles_with_intervals(bounds, counts, levels)
    for q, (value, (lo, hi)) in zip(levels, found, strict=True):
        want = quantile(bounds, counts, q)
        assert same(at(q), want)
        assert same(value, want)
        want_lo, want_hi = quantile_interval(bounds, counts, q)
        assert same(lo, want_lo)
        assert same(hi, want_hi)
        assert type(value) is type(want)


def test_fractional_or_huge_counts_keep_numpy_sums() -> None:
    assert whole_counts((1, 2, 3)) == ([1.0, 2.0, 3.0], [1.0, 3.0, 6.0])
    assert whole_counts((1, 2.5, 3)) is None
    assert whole_counts((2**53, 1)) is None
    assert whole_counts((-0.0, 1)) is None
    bounds, counts = (1.0, 2.0, math.inf), (0.3, 0.1, 0.2)
    assert same(quantile_function(bounds, counts)(0.5), quantile(bounds, counts, 0.5))


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.floats(min_value=-50, max_value=50), ANY),
    st.one_of(st.floats(min_value=0, max_value=1e9), ANY),
    st.one_of(st.sampled_from([0.05, 0.1, 0.5]), st.floats(min_value=1e-3, max_value=10)),
)
def test_log_e_one_sided_at_is_log_e_one_sided(z: float, info: float, scale: float) -> None:
    with np.errstate(all="ignore"):
        want = log_e_one_sided(z, info, scale)
        found = log_e_one_sided_at(z, info, scale)
    assert same(found, want)
    assert type(found) is float


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(st.floats(min_value=0, max_value=1e9), ANY),
    st.one_of(st.sampled_from([0.05, 0.1]), st.floats(min_value=1e-3, max_value=10)),
    st.one_of(st.sampled_from([0.05, 0.0125, 1e-300]), st.floats(min_value=1e-12, max_value=2)),
)
def test_cs_radius_z_at_is_cs_radius_z(info: float, scale: float, alpha: float) -> None:
    with np.errstate(all="ignore"):
        want = cs_radius_z(info, scale, alpha)
        found = cs_radius_z_at(info, scale, alpha)
    assert same(found, want)
    assert type(found) is float


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(SMALL, COUNTS),
    st.one_of(SMALL, COUNTS),
    st.one_of(st.sampled_from([0.5, 0.1, 0.25]), st.floats(min_value=1e-4, max_value=1 - 1e-4)),
)
def test_log_e_sample_ratio_at_is_log_e_sample_ratio(
    canary: int, baseline: int, weight: float
) -> None:
    want = log_e_sample_ratio(canary, baseline, weight)
    found = log_e_sample_ratio_at(canary, baseline, weight)
    assert same(found, want)
    assert type(found) is float


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(min_value=0, max_value=1), st.floats(min_value=-1e9, max_value=1e9)),
        min_size=1,
        max_size=SEQUENTIAL_SUM - 1,
    )
)
def test_numpy_adds_fewer_than_eight_numbers_one_after_another(xs: list[float]) -> None:
    assert same(added(xs), np.sum(np.array(xs, dtype=np.float64)))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(SMALL, COUNTS), min_size=2, max_size=7), st.data())
def test_chi2_psi_js_and_ordinal_effect_of_a_decision_mix(
    baseline: list[int], data: st.DataObject
) -> None:
    canary = data.draw(st.lists(st.one_of(SMALL, COUNTS), min_size=len(baseline),
                                max_size=len(baseline)))  # fmt: skip
    with np.errstate(all="ignore"):
        assert same(pearson_chi2_of(baseline, canary), pearson_chi2(baseline, canary))
        assert same(psi_of(baseline, canary), psi(baseline, canary))
        assert same(jensen_shannon_of(baseline, canary), jensen_shannon(baseline, canary))
        want = ordinal_effect(baseline, canary)
        theta, se, neff = ordinal_effect_of(baseline, canary)
    assert same(theta, want.theta)
    assert same(se, want.se)
    assert same(neff, want.neff)


def _rescale_before(bounds: tuple[float, ...], counts: object, factor: float) -> np.ndarray:
    """``rescale_counts`` as it was before its layout part was cached (the reference), with the
    logarithm since taken from :mod:`analyzer.stats.portable` (numpy's is CPU-dependent)."""
    c = np.asarray(counts, dtype=np.float64)
    upper = np.asarray(bounds, dtype=np.float64)
    lower = np.concatenate(([min(0.0, upper[0])], upper[:-1]))
    cdf_before = np.cumsum(c, axis=-1) - c
    points = upper[:-1] * factor
    idx = np.searchsorted(upper, points, side="left")
    lo, hi = lower[idx], upper[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = portable.log(points / lo) / portable.log(hi / lo)
        linear = np.where(hi > lo, (points - lo) / (hi - lo), 1.0)
        frac = np.where(np.isinf(hi), 0.0, np.where(lo > 0, geometric, linear))
    frac = np.clip(frac, 0.0, 1.0)
    cdf = cdf_before[..., idx] + c[..., idx] * frac
    cdf = np.concatenate((cdf, c.sum(axis=-1, keepdims=True)), axis=-1)
    out: np.ndarray = np.maximum(np.diff(cdf, axis=-1, prepend=0.0), 0.0)
    return out


@settings(max_examples=300, deadline=None)
@given(
    histograms(),
    st.one_of(st.sampled_from([1.1, 0.9, 1.05, 1.2]), st.floats(min_value=1e-3, max_value=10)),
)
def test_rescaled_counts_are_as_before_the_layout_was_cached(
    hist: tuple[tuple[float, ...], tuple[int, ...]], factor: float
) -> None:
    bounds, counts = hist
    with np.errstate(all="ignore"):  # extreme layouts overflow (as before)
        want = _rescale_before(bounds, counts, factor)
        found = [rescale_counts(bounds, counts, factor) for _ in range(2)]  # then from the cache
    for out in found:
        assert out.dtype == want.dtype
        assert out.tobytes() == want.tobytes()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0, max_value=1e6),
            st.floats(min_value=-1e12, max_value=1e12),
            st.integers(min_value=0, max_value=10**6).map(float),
        ),
        max_size=300,
    )
)
def test_numpy_sum_is_np_sum(xs: list[float]) -> None:
    assert same(numpy_sum(xs), np.sum(np.array(xs, dtype=np.float64)))


@settings(max_examples=300, deadline=None)
@given(histograms(), st.floats(min_value=0.5, max_value=2.0))
def test_ordinal_effect_of_a_histogram_against_its_rescaled_canary(
    hist: tuple[tuple[float, ...], tuple[int, ...]], factor: float
) -> None:
    bounds, counts = hist
    with np.errstate(all="ignore"):
        canary = rescale_counts(bounds, counts[::-1], factor)
        want = ordinal_effect(counts, canary)
        theta, se, neff = ordinal_effect_of(counts, canary.tolist())
    assert same(theta, want.theta)
    assert same(se, want.se)
    assert same(neff, want.neff)
