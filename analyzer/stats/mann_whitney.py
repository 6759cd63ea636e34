"""Mann–Whitney U test and the Hodges–Lehmann shift with its interval, as Kayenta computes them.

Kayenta's NetflixACAJudge (and before it, R) inverts the *asymptotic* rank-sum test to get an
interval for the location shift ``canary - baseline``: exactly R's
``wilcox.test(canary, baseline, conf.int=TRUE, exact=FALSE, correct=TRUE)``. We reproduce that
on purpose, including its quirks, because users migrating from Kayenta must get the same
classification on the same data:

* the statistic uses average ranks, the tie-corrected variance and a 0.5 continuity correction;
* interval ends are roots of a *step* function, found with Brent's method at absolute tolerance
  ``1e-4`` (R's ``zeroin``; Kayenta ports it). Where the root sits on a jump, the answer is only
  defined to that tolerance, and we match R's landing point by running the same algorithm;
* when the statistic cannot reach the quantile at all (tiny or heavily tied samples) the end is
  clamped to the search range ``[min(c) - max(b), max(c) - min(b)]``; we report that it was.

Everything here is a fixed-horizon test: its error rates hold for one look at the data, not for
repeated looks. Pure numpy/scipy; no I/O, no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from analyzer.stats import lazy_special as special

FloatArray = NDArray[np.float64]

ROOT_TOLERANCE = 1e-4
"""Absolute tolerance of the root finder, as in R's ``wilcox.test`` and Kayenta."""

_MAX_ITERATIONS = 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class RankSumTest:
    """The two-sided rank-sum test of "no shift" (normal approximation, tie and continuity
    corrected). ``u_canary`` counts pairs with canary > baseline, ties counting one half."""

    u_canary: float
    z: float
    p_value: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ShiftInterval:
    """Hodges–Lehmann-type estimate of the shift ``canary - baseline`` with its interval.

    ``lower_clamped``/``upper_clamped`` say that the statistic never reached the quantile, so the
    end is the edge of the search range, not a real confidence bound.
    """

    estimate: float
    lower: float
    upper: float
    confidence: float
    lower_clamped: bool
    upper_clamped: bool


def _as_array(values: Sequence[float] | FloatArray, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty one-dimensional sample")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite values")
    return array


def standardized_rank_sum(canary: FloatArray, baseline: FloatArray, shift: float) -> float:
    """R's ``wdiff`` without the quantile: the corrected z of the rank sum of ``canary - shift``.

    Decreasing step function of ``shift``; its jumps sit at the pairwise differences.
    """
    n_c, n_b = float(canary.size), float(baseline.size)
    ranks, ties = _average_ranks(np.concatenate((canary - shift, baseline)))
    centred = float(np.sum(ranks[: canary.size])) - n_c * (n_c + 1) / 2 - n_c * n_b / 2
    return _standardize(centred, n_c, n_b, ties)


def _average_ranks(values: FloatArray) -> tuple[FloatArray, float]:
    """Average ranks (ties share the mean of their positions) and the tie term sum(t^3 - t)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sizes = counts.astype(np.float64)
    group_ranks = np.cumsum(sizes) - (sizes - 1) / 2
    return group_ranks[inverse], float(np.sum(sizes**3 - sizes))


class _RankSumAtShift:
    """``standardized_rank_sum`` for one pair of samples, fast and bit-for-bit identical.

    Brent's method evaluates the statistic dozens of times. Away from the jumps (no value of
    ``canary - shift`` equal to a baseline value, and no two canary values merged by rounding)
    the rank sum is a count of pairs and the tie term is that of the two samples apart, so
    sorted arrays and ``searchsorted`` give exactly the numbers that ranking would. At a jump we
    rank for real.
    """

    def __init__(self, canary: FloatArray, baseline: FloatArray) -> None:
        self._canary, self._baseline = canary, baseline
        self._sorted_canary = np.sort(canary)
        self._sorted_baseline = np.sort(baseline)
        distinct = self._sorted_canary[1:] != self._sorted_canary[:-1]
        self._distinct_canary = int(np.count_nonzero(distinct)) + 1
        self._ties = _average_ranks(canary)[1] + _average_ranks(baseline)[1]

    def __call__(self, shift: float) -> float:
        shifted = self._sorted_canary - shift
        below = self._sorted_baseline.searchsorted(shifted, side="left")
        not_above = self._sorted_baseline.searchsorted(shifted, side="right")
        distinct = int(np.count_nonzero(shifted[1:] != shifted[:-1])) + 1
        if distinct != self._distinct_canary or (not_above != below).any():
            return standardized_rank_sum(self._canary, self._baseline, shift)
        n_c, n_b = float(self._canary.size), float(self._baseline.size)
        centred = float(below.sum()) - n_c * n_b / 2
        return _standardize(centred, n_c, n_b, self._ties)


def _standardize(centred: float, n_c: float, n_b: float, ties: float) -> float:
    n = n_c + n_b
    variance = n_c * n_b / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        raise ValueError("all observations are tied: the rank statistic is undefined")
    return (centred - math.copysign(0.5, centred) * (centred != 0)) / math.sqrt(variance)


def rank_sum_test(
    canary: Sequence[float] | FloatArray, baseline: Sequence[float] | FloatArray
) -> RankSumTest:
    """Two-sided Mann–Whitney test of no shift; same numbers as scipy's asymptotic method."""
    c = _as_array(canary, "canary")
    b = _as_array(baseline, "baseline")
    z = _RankSumAtShift(c, b)(0.0)
    return RankSumTest(
        u_canary=_pairs_above(c, b),
        z=z,
        p_value=float(min(1.0, 2 * special.ndtr(-abs(z)))),
    )


def _pairs_above(canary: FloatArray, baseline: FloatArray) -> float:
    """Mann–Whitney U of the canary: pairs with canary > baseline, ties counting one half."""
    ordered = np.sort(baseline)
    below = ordered.searchsorted(canary, side="left")
    not_above = ordered.searchsorted(canary, side="right")
    return float(below.sum()) + 0.5 * float((not_above - below).sum())


def _zeroin(
    f: Callable[[float], float], *, a: float, b: float, fa: float, fb: float, tol: float
) -> float:
    """Brent's root finder exactly as R's ``R_zeroin2`` steps it (same landing points).

    On a step function the root is only known to ``tol``; copying R's iteration, rather than
    using another Brent variant, is what makes the interval ends agree with R and Kayenta to
    1e-6 instead of to 1e-4.
    """
    if fa == 0:
        return a
    if fb == 0:
        return b
    c, fc = a, fa
    for _ in range(_MAX_ITERATIONS + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2 * np.finfo(float).eps * abs(b) + tol / 2
        new_step = (c - b) / 2
        if abs(new_step) <= tol_act or fb == 0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            new_step = _interpolated_step(
                a=a,
                b=b,
                c=c,
                fa=fa,
                fb=fb,
                fc=fc,
                tol_act=tol_act,
                prev_step=prev_step,
                bisection_step=new_step,
            )
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b


def _interpolated_step(
    *,
    a: float,
    b: float,
    c: float,
    fa: float,
    fb: float,
    fc: float,
    tol_act: float,
    prev_step: float,
    bisection_step: float,
) -> float:
    """Secant or inverse-quadratic step of Brent's method, kept only when it is safe."""
    cb = c - b
    if a == c:
        t1 = fb / fa
        p = cb * t1
        q = 1.0 - t1
    else:
        q, t1, t2 = fa / fc, fb / fc, fb / fa
        p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
        q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
    if p > 0:
        q = -q
    else:
        p = -p
    if p < (0.75 * cb * q - abs(tol_act * q) / 2) and p < abs(prev_step * q / 2):
        return p / q
    return bisection_step


def _root(
    statistic: _RankSumAtShift, ends: tuple[float, float, float, float], quantile: float
) -> tuple[float, bool]:
    """Shift at which the corrected statistic equals ``quantile``; clamped flag when unreachable.

    ``ends`` are the search range and the statistic there, (low, high, at low, at high).
    """

    def f(shift: float) -> float:
        return statistic(shift) - quantile

    low, high = ends[0], ends[1]
    f_low, f_high = ends[2] - quantile, ends[3] - quantile
    if f_low <= 0:
        return low, True
    if f_high >= 0:
        return high, True
    return _zeroin(f, a=low, b=high, fa=f_low, fb=f_high, tol=ROOT_TOLERANCE), False


def shift_interval(
    canary: Sequence[float] | FloatArray,
    baseline: Sequence[float] | FloatArray,
    *,
    confidence: float,
) -> ShiftInterval:
    """Estimate and two-sided ``confidence`` interval of the shift ``canary - baseline``.

    Raises ``ValueError`` for empty or non-finite samples and when every value is tied (the
    statistic has no variance); callers handle those cases before asking.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    c = _as_array(canary, "canary")
    b = _as_array(baseline, "baseline")
    z = float(special.ndtri(1 - (1 - confidence) / 2))
    statistic = _RankSumAtShift(c, b)
    # R's search range: beyond it every canary value is above (below) every baseline value.
    low, high = float(c.min() - b.max()), float(c.max() - b.min())
    ends = (low, high, statistic(low), statistic(high))
    lower, lower_clamped = _root(statistic, ends, z)
    upper, upper_clamped = _root(statistic, ends, -z)
    estimate = _zeroin(statistic, a=low, b=high, fa=ends[2], fb=ends[3], tol=ROOT_TOLERANCE)
    return ShiftInterval(
        estimate=float(estimate),
        lower=float(lower),
        upper=float(upper),
        confidence=confidence,
        lower_clamped=lower_clamped,
        upper_clamped=upper_clamped,
    )


def cles(canary: Sequence[float] | FloatArray, baseline: Sequence[float] | FloatArray) -> float:
    """Common-language effect size: P(canary > baseline) over all pairs, ties counting one half."""
    c = _as_array(canary, "canary")
    b = _as_array(baseline, "baseline")
    return _pairs_above(c, b) / (c.size * b.size)


def mean_ratio(
    canary: Sequence[float] | FloatArray, baseline: Sequence[float] | FloatArray
) -> float:
    """``mean(canary) / mean(baseline)``; NaN when either mean is exactly zero (as Kayenta)."""
    c = _as_array(canary, "canary")
    b = _as_array(baseline, "baseline")
    mean_c, mean_b = float(np.mean(c)), float(np.mean(b))
    if mean_c == 0 or mean_b == 0:
        return math.nan
    return mean_c / mean_b
