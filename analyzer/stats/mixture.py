"""Mixture likelihood ratios (e-processes) for asymptotically Gaussian score processes.

Every test in the judge reduces, at each look, to a standardized statistic ``z`` and an
information level ``info`` (effective sample size). Under the null the score ``S = z * sqrt(info)``
behaves like a Brownian motion in information time, so the mixture likelihood ratio

    E(S, I) = integral of exp(delta * S - delta**2 * I / 2) d pi(delta)

is a (super)martingale under the null for any look schedule, and Ville's inequality gives
``P(sup E >= 1/alpha) <= alpha`` (Robbins 1970; Johari et al. 2017 "mSPRT"; Howard et al. 2021).
``scale`` is the standard deviation of the mixing distribution ``pi`` on the *standardized* effect
(effect divided by the per-observation standard deviation); it is fixed by configuration, never
tuned to observed data. All functions are vectorized over numpy arrays and return log e-values.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from analyzer.stats import lazy_special as special
from analyzer.stats import portable

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | FloatArray


def log_e_one_sided(z: ArrayLike, info: ArrayLike, scale: float) -> FloatArray:
    """Half-normal mixture over ``delta > 0``: evidence that the effect is positive.

    Under any ``delta <= 0`` it is a supermartingale, so it tests a one-sided (composite) null.
    """
    z_arr = np.asarray(z, dtype=np.float64)
    i_arr = np.maximum(np.asarray(info, dtype=np.float64), 0.0)
    score = z_arr * np.sqrt(i_arr)
    precision = i_arr + 1.0 / scale**2
    out: FloatArray = (
        math.log(2.0)
        - math.log(scale)
        - 0.5 * portable.log(precision)
        + score**2 / (2.0 * precision)
        + special.log_ndtr(score / np.sqrt(precision))
    )
    return out


def log_e_one_sided_at(z: float, info: float, scale: float) -> float:
    """:func:`log_e_one_sided` of one statistic, as a float: the judge's per-component call.

    Bit-identical to it (``tests/unit/stats/test_scalar_effects.py``): the arithmetic is the
    same IEEE operations on Python floats (``**`` is ``pow`` for Python floats and numpy
    scalars alike; ``max`` keeps the first argument on a tie or a NaN, as ``np.maximum`` does),
    and the transcendental functions are the same as the vectorized function's: the C
    library's ``log`` (``math.log`` here, :func:`analyzer.stats.portable.log` there; numpy's
    own would be CPU-dependent) and scipy's ``log_ndtr``.
    """
    i = max(info, 0.0)
    score = z * math.sqrt(i) if i >= 0 else math.nan
    precision = i + 1.0 / scale**2
    try:
        squared = score**2
    except OverflowError:  # Python's ** raises where numpy's gives inf: leave it to numpy
        return float(log_e_one_sided(z, info, scale))
    return float(
        math.log(2.0)
        - math.log(scale)
        - 0.5 * (math.log(precision) if precision > 0 else float(portable.log(precision)))
        + squared / (2.0 * precision)
        + special.log_ndtr(score / math.sqrt(precision))
    )


def log_e_two_sided(chi2: ArrayLike, info: ArrayLike, scale: float, dof: int = 1) -> FloatArray:
    """Spherical normal mixture on a ``dof``-dimensional standardized effect.

    ``chi2`` is the squared norm of the whitened statistic (``z**2`` in one dimension, Pearson's
    X**2 for a 2 x K table with ``dof = K - 1``).
    """
    c_arr = np.maximum(np.asarray(chi2, dtype=np.float64), 0.0)
    i_arr = np.maximum(np.asarray(info, dtype=np.float64), 0.0)
    shrink = i_arr * scale**2
    out: FloatArray = -0.5 * dof * portable.log1p(shrink) + shrink * c_arr / (2.0 * (1.0 + shrink))
    return out


def cs_radius_z(info: ArrayLike, scale: float, alpha: float) -> FloatArray:
    """Half-width, in units of the statistic's standard error, of the two-sided normal-mixture
    confidence sequence at level ``1 - alpha`` (inverting :func:`log_e_two_sided`).

    Multiply by the standard error of the estimate to get the half-width in effect units.
    """
    i_arr = np.maximum(np.asarray(info, dtype=np.float64), 1e-12)
    shrink = i_arr * scale**2
    out: FloatArray = np.sqrt(
        2.0 * (1.0 + shrink) / shrink * (0.5 * portable.log1p(shrink) + math.log(1.0 / alpha))
    )
    return out


def cs_radius_z_at(info: float, scale: float, alpha: float) -> float:
    """:func:`cs_radius_z` of one information level, as a float (bit-identical to it, as
    :func:`log_e_one_sided_at` is)."""
    shrink = max(info, 1e-12) * scale**2
    if not shrink > 0:  # Python's / raises where numpy's gives inf or NaN: leave it to numpy
        return float(cs_radius_z(info, scale, alpha))
    log1p = float(portable.log1p(shrink))
    squared = 2.0 * (1.0 + shrink) / shrink * (0.5 * log1p + math.log(1.0 / alpha))
    return math.sqrt(squared) if squared >= 0 else math.nan


@lru_cache(maxsize=256)
def _log_beta(a: float, b: float) -> float:
    # the SRM guard's normalizing constant: the same for every look at one canary weight
    return float(special.betaln(a, b))


def log_e_sample_ratio_at(
    canary: float, baseline: float, weight: float, concentration: float = 1000.0
) -> float:
    """:func:`log_e_sample_ratio` of one pair of counts, as a float (bit-identical to it, as
    :func:`log_e_one_sided_at` is)."""
    x_c, x_b = float(canary), float(baseline)
    a = concentration * weight
    b = concentration * (1.0 - weight)
    return float(
        special.betaln(a + x_c, b + x_b)
        - _log_beta(a, b)
        - x_c * math.log(weight)
        - x_b * math.log1p(-weight)
    )


def log_e_sample_ratio(
    canary: ArrayLike, baseline: ArrayLike, weight: float, concentration: float = 1000.0
) -> FloatArray:
    """Sequential sample-ratio-mismatch e-value (Lindon & Malek 2022, two arms).

    Under the null each request goes to the canary with probability ``weight``; the alternative
    is a Beta(c*w, c*(1-w)) mixture of that probability. The Beta-binomial Bayes factor of the
    cumulative counts is a test martingale, whatever the traffic volume per look.
    """
    x_c = np.asarray(canary, dtype=np.float64)
    x_b = np.asarray(baseline, dtype=np.float64)
    a = concentration * weight
    b = concentration * (1.0 - weight)
    out: FloatArray = (
        special.betaln(a + x_c, b + x_b)
        - special.betaln(a, b)
        - x_c * math.log(weight)
        - x_b * math.log1p(-weight)
    )
    return out
