"""Effect estimates and their standard errors from the counts Prometheus gives.

Each estimator returns an :class:`Effect`: the estimate ``theta`` oriented so that a positive
value means the canary is worse, its standard error under the null boundary, and the effective
sample size ``neff = n_b * n_c / (n_b + n_c)`` that drives the information time of the sequential
tests. All functions are vectorized over leading axes so that benchmarks can evaluate thousands
of simulated canaries at once with the same code the judge uses.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
import numpy.typing as npt

from analyzer.stats import portable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True, kw_only=True, slots=True)
class Effect:
    theta: FloatArray
    se: FloatArray
    neff: FloatArray

    @property
    def z(self) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z: FloatArray = np.where(self.se > 0, self.theta / self.se, 0.0)
        return z


def _arr(x: object) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def effective_n(n_b: object, n_c: object) -> FloatArray:
    nb, nc = _arr(n_b), _arr(n_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(nb + nc > 0, nb * nc / np.maximum(nb + nc, 1e-300), 0.0)
    return out


def effective_n_of(n_b: float, n_c: float) -> float:
    """:func:`effective_n` of one pair of arms, on floats (see :func:`rate_difference_of`)."""
    return n_b * n_c / max(n_b + n_c, 1e-300) if n_b + n_c > 0 else 0.0


def rate_difference(
    x_b: object, n_b: object, x_c: object, n_c: object, margin: float = 0.0
) -> Effect:
    """``p_c - p_b - margin`` with the variance evaluated on the null boundary ``p_c = p_b + m``.

    Evaluating the variance under the restricted null (Farrington & Manning 1990) keeps the test
    calibrated when events are rare and an arm has none yet; the floor of half an event keeps a
    zero-count baseline from producing an infinite statistic.
    """
    xb, nb, xc, nc = _arr(x_b), _arr(n_b), _arr(x_c), _arr(n_c)
    total = np.maximum(nb + nc, 1.0)
    floor = 0.5 / total
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.where((nb > 0) & (nc > 0), xc / np.maximum(nc, 1) - xb / np.maximum(nb, 1), 0.0)
    p_b = np.clip((xb + xc - nc * margin) / total, floor, 1.0 - margin - floor)
    p_b = np.maximum(p_b, floor)
    p_c = np.clip(p_b + margin, floor, 1.0 - floor)
    var = p_c * (1 - p_c) / np.maximum(nc, 1.0) + p_b * (1 - p_b) / np.maximum(nb, 1.0)
    return Effect(theta=theta - margin, se=np.sqrt(var), neff=effective_n(nb, nc))


def rate_difference_of(
    x_b: float, n_b: float, x_c: float, n_c: float, margin: float = 0.0
) -> tuple[float, float, float]:
    """:func:`rate_difference` of one comparison: ``(theta, se, neff)`` as floats.

    The judge compares one pair of counts per component, where numpy's per-call overhead
    (~1 us per operation on a scalar) is most of the cost (issue 20). This is the same sequence
    of IEEE operations on Python floats, so every result is bit-identical to the vectorized one
    (``tests/unit/stats/test_scalar_effects.py`` checks it on random counts): ``+ - * /`` and
    the square root are correctly rounded either way, and ``max``/``min`` keep the first
    argument on a tie or a NaN there, as ``np.maximum`` and ``np.clip`` do (the constants they
    compare with are positive, so no signed zero can tell them apart).
    """
    xb, nb, xc, nc = float(x_b), float(n_b), float(x_c), float(n_c)
    total = max(nb + nc, 1.0)
    floor = 0.5 / total
    theta = xc / max(nc, 1.0) - xb / max(nb, 1.0) if nb > 0 and nc > 0 else 0.0
    p_b = min(max((xb + xc - nc * margin) / total, floor), 1.0 - margin - floor)
    p_b = max(p_b, floor)
    p_c = min(max(p_b + margin, floor), 1.0 - floor)
    var = p_c * (1 - p_c) / max(nc, 1.0) + p_b * (1 - p_b) / max(nb, 1.0)
    se = math.sqrt(var) if var >= 0 else math.nan
    return theta - margin, se, effective_n_of(nb, nc)


def ordinal_effect(baseline: object, canary: object) -> Effect:
    """Mann-Whitney effect ``P(C > B) - P(C < B)`` from counts over ordered categories/buckets.

    The standard error is the null one with the usual tie correction, so heavily tied data
    (coarse buckets, three decision categories) are handled exactly rather than by jitter.
    """
    b, c = _arr(baseline), _arr(canary)
    n_b, n_c = b.sum(axis=-1), c.sum(axis=-1)
    below_b = np.cumsum(b, axis=-1) - b  # baseline mass strictly below each category
    above_b = n_b[..., None] - below_b - b
    pairs = np.maximum(n_b * n_c, 1e-300)
    theta = ((c * below_b).sum(axis=-1) - (c * above_b).sum(axis=-1)) / pairs
    t = b + c
    n = n_b + n_c
    # cubes by multiplying: numpy's power has SIMD loops whose last bits differ by CPU
    ties = (t * t * t - t).sum(axis=-1) / np.maximum(n * n * n - n, 1e-300)
    var = (n + 1.0) / (3.0 * pairs) * np.maximum(1.0 - ties, 0.0)
    ok = (n_b > 0) & (n_c > 0)
    return Effect(
        theta=np.where(ok, theta, 0.0),
        se=np.where(ok, np.sqrt(var), 0.0),
        neff=effective_n(n_b, n_c),
    )


SEQUENTIAL_SUM = 8
"""``np.sum`` adds fewer numbers than this one after another (more: pairwise), so
:func:`added` of a shorter list is bit-identical to numpy's sum."""


def added(values: Iterable[float]) -> float:
    """The sum of ``values`` added left to right: ``np.sum`` of fewer than
    :data:`SEQUENTIAL_SUM` numbers. Not ``sum()``: from Python 3.12 it compensates the rounding
    of floats, so its last bits differ."""
    total = 0.0
    for x in values:
        total += x
    return total


def numpy_sum(values: Sequence[float]) -> float:
    """``np.sum`` of a 1-D float64 array, bit for bit, on Python floats: numpy's pairwise
    summation (numpy/_core/src/umath/loops_utils.h.src): fewer than 8 numbers added one after
    another, up to 128 in eight interleaved partial sums, longer arrays halved at a multiple of
    8. ``tests/unit/stats/test_scalar_effects.py`` checks it against ``np.sum``."""
    return _pairwise(values, 0, len(values))


def _pairwise(a: Sequence[float], lo: int, n: int) -> float:
    if n < SEQUENTIAL_SUM:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[lo : lo + 8]
        i, end = lo + 8, lo + n - n % 8
        while i < end:
            r0 += a[i]
            r1 += a[i + 1]
            r2 += a[i + 2]
            r3 += a[i + 3]
            r4 += a[i + 4]
            r5 += a[i + 5]
            r6 += a[i + 6]
            r7 += a[i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for k in range(i, lo + n):
            res += a[k]
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(a, lo, half) + _pairwise(a, lo + half, n - half)


def ordinal_effect_of(
    baseline: Sequence[float], canary: Sequence[float]
) -> tuple[float, float, float]:
    """:func:`ordinal_effect` of one pair of arms, ``(theta, se, neff)`` as floats: the same
    operations on Python floats, sums as numpy adds them (:func:`numpy_sum`), so bit-identical
    (see :func:`rate_difference_of`); cubes by multiplying, as there."""
    b = [float(x) for x in baseline]
    c = [float(x) for x in canary]
    if len(c) != len(b) or not b:
        eff = ordinal_effect(baseline, canary)
        return float(eff.theta), float(eff.se), float(eff.neff)
    n_b, n_c = numpy_sum(b), numpy_sum(c)
    below_b: list[float] = []
    cum = 0.0
    for i, x in enumerate(b):
        cum = x if i == 0 else cum + x  # np.cumsum: sequential, from the first value itself
        below_b.append(cum - x)
    above_b = [n_b - lo - x for lo, x in zip(below_b, b, strict=True)]
    pairs = max(n_b * n_c, 1e-300)
    theta = (
        numpy_sum([x * lo for x, lo in zip(c, below_b, strict=True)])
        - numpy_sum([x * hi for x, hi in zip(c, above_b, strict=True)])
    ) / pairs
    t = [x + y for x, y in zip(b, c, strict=True)]
    n = n_b + n_c
    ties = numpy_sum([x * x * x - x for x in t]) / max(n * n * n - n, 1e-300)
    var = (n + 1.0) / (3.0 * pairs) * max(1.0 - ties, 0.0)
    ok = n_b > 0 and n_c > 0
    return (
        theta if ok else 0.0,
        (math.sqrt(var) if var >= 0 else math.nan) if ok else 0.0,
        effective_n_of(n_b, n_c),
    )


def rescale_counts(bounds: tuple[float, ...], counts: object, factor: float) -> FloatArray:
    """Counts of ``X / factor`` on the same buckets, interpolating log-linearly within buckets.

    Used to test "canary no worse than ``(1 + tolerance)`` times baseline": the canary's latencies
    are divided by the factor and compared with the baseline. Mass in the ``+Inf`` bucket stays
    there (a conservative choice: we cannot say how slow it was).
    """
    c = _arr(counts)
    if factor == 1.0:
        return c.copy()
    layout = tuple(bounds)
    # (a zero bound is not cached: -0.0 == 0.0 would share an entry, and its sign can matter)
    cells = _rescale_cells.__wrapped__ if 0.0 in layout else _rescale_cells
    idx, frac = cells(layout, factor)
    cdf_before = np.cumsum(c, axis=-1) - c
    cdf = cdf_before[..., idx] + c[..., idx] * frac
    cdf = np.concatenate((cdf, c.sum(axis=-1, keepdims=True)), axis=-1)
    out: FloatArray = np.diff(cdf, axis=-1, prepend=0.0)
    return np.maximum(out, 0.0)


@lru_cache(maxsize=256)
def _rescale_cells(bounds: tuple[float, ...], factor: float) -> tuple[IntArray, FloatArray]:
    """Where each finite bound times ``factor`` falls (bucket index, share of the bucket below
    it): depends on the layout only, so it is computed once per layout and factor (the judge
    rescales the same canary layout at every look). Read-only: the arrays are shared."""
    upper = np.asarray(bounds, dtype=np.float64)
    # the first bucket starts at 0 (latencies), or is a point mass when its bound is <= 0
    lower = np.concatenate(([min(0.0, upper[0])], upper[:-1]))
    points = upper[:-1] * factor  # new CDF at each finite bound
    idx = np.searchsorted(upper, points, side="left")
    lo, hi = lower[idx], upper[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = portable.log(points / lo) / portable.log(hi / lo)
        linear = np.where(hi > lo, (points - lo) / (hi - lo), 1.0)
        frac = np.where(np.isinf(hi), 0.0, np.where(lo > 0, geometric, linear))
    frac = np.clip(frac, 0.0, 1.0)
    idx.setflags(write=False)
    frac.setflags(write=False)
    return idx, frac


def whole_counts(counts: Sequence[float]) -> tuple[list[float], list[float]] | None:
    """``(counts, cumulative counts)`` as floats when every count is a whole number and their
    total is below 2**53, else None. Such sums are exact in any order, so Python's sequential
    sums equal numpy's pairwise ones bit for bit (and ``np.cumsum`` is sequential anyway)."""
    c = [float(x) for x in counts]
    cum: list[float] = []
    total = 0.0
    for x in c:
        if not x.is_integer() or math.copysign(1.0, x) < 0:  # no -0.0 either: cum[0] keeps it
            return None
        total += x
        cum.append(total)
    return (c, cum) if total < 2.0**53 else None


def quantile_function(
    bounds: tuple[float, ...], counts: tuple[float, ...] | FloatArray
) -> Callable[[float], float]:
    """``q -> quantile(bounds, counts, q)``, with the cumulative counts computed once (the
    judge reads nine quantiles per arm per look: three levels and their intervals)."""
    whole = None if isinstance(counts, np.ndarray) else whole_counts(counts)
    if whole is None:
        return partial(quantile, bounds, counts)
    c, cum = whole
    n = cum[-1] if cum else 0.0

    def at(q: float) -> float:
        # quantile() below, on the precomputed sums: the same operations on the same values
        if n <= 0:
            return math.nan
        rank = min(max(q * n, 0.0), n)
        if math.isnan(rank):  # np.searchsorted puts NaN last, bisect first: leave it to numpy
            return quantile(bounds, counts, q)
        k = min(bisect_left(cum, rank), len(bounds) - 1)
        lo = bounds[k - 1] if k > 0 else 0.0
        hi = bounds[k]
        if math.isinf(hi):
            return float(lo)
        inside = (rank - (cum[k] - c[k])) / c[k] if c[k] > 0 else 1.0
        if lo > 0:
            return float(lo * (hi / lo) ** inside)
        return float(hi * inside)

    return at


def quantile(bounds: tuple[float, ...], counts: tuple[float, ...] | FloatArray, q: float) -> float:
    """Quantile interpolated within its bucket (geometric, linear in the first bucket).

    Returns the lower bound of the ``+Inf`` bucket when the quantile falls in it, NaN when empty.
    """
    c = _arr(counts)
    n = float(c.sum())
    if n <= 0:
        return math.nan
    rank = min(max(q * n, 0.0), n)
    cum = np.cumsum(c)
    k = int(np.searchsorted(cum, rank, side="left"))
    k = min(k, len(bounds) - 1)
    lo = bounds[k - 1] if k > 0 else 0.0
    hi = bounds[k]
    if math.isinf(hi):
        return float(lo)
    inside = (rank - (cum[k] - c[k])) / c[k] if c[k] > 0 else 1.0
    if lo > 0:
        return float(lo * (hi / lo) ** inside)
    return float(hi * inside)


def _interval(at: Callable[[float], float], n: float, q: float, z: float) -> tuple[float, float]:
    if n <= 0:
        return (math.nan, math.nan)
    half = z * math.sqrt(n * q * (1 - q))
    lo_q, hi_q = max(q - half / n, 0.0), min(q + half / n, 1.0)
    return (at(lo_q), at(hi_q))


def quantile_interval(
    bounds: tuple[float, ...], counts: tuple[float, ...], q: float, z: float = 1.96
) -> tuple[float, float]:
    """Pointwise interval for a quantile from binomial order-statistic ranks, then interpolated."""
    return _interval(partial(quantile, bounds, counts), float(sum(counts)), q, z)


def quantiles_with_intervals(
    bounds: tuple[float, ...], counts: tuple[float, ...], levels: Sequence[float], z: float = 1.96
) -> list[tuple[float, tuple[float, float]]]:
    """``(quantile(q), quantile_interval(q))`` per level ``q``, bit-identical to calling them,
    with the arm's cumulative counts computed once."""
    at = quantile_function(bounds, counts)
    n = float(sum(counts))
    return [(at(q), _interval(at, n, q, z)) for q in levels]


def shares(counts: object, smoothing: float = 0.5) -> FloatArray:
    c = _arr(counts) + smoothing
    out: FloatArray = c / c.sum(axis=-1, keepdims=True)
    return out


def psi(baseline: object, canary: object) -> FloatArray:
    """Population stability index with half-count smoothing (descriptive only)."""
    p, q = shares(baseline), shares(canary)
    out: FloatArray = ((q - p) * portable.log(q / p)).sum(axis=-1)
    return out


def jensen_shannon(baseline: object, canary: object) -> FloatArray:
    """Jensen-Shannon divergence in bits, in [0, 1] (descriptive only)."""
    p, q = shares(baseline), shares(canary)
    m = (p + q) / 2.0
    out: FloatArray = 0.5 * (
        (p * portable.log2(p / m)).sum(axis=-1) + (q * portable.log2(q / m)).sum(axis=-1)
    )
    return out


def _shares_of(counts: Sequence[float], smoothing: float = 0.5) -> list[float]:
    c = [float(x) + smoothing for x in counts]
    total = added(c)
    return [x / total for x in c]


def _logs(values: list[float], log: Callable[..., FloatArray]) -> list[float]:
    """``log`` of ``values`` as one array, as the vectorized functions take it (the same call
    on an array of the same length gives the same bits)."""
    out: list[float] = log(np.array(values, dtype=np.float64)).tolist()
    return out


def psi_of(baseline: Sequence[float], canary: Sequence[float]) -> float:
    """``float(psi(baseline, canary))`` for a few categories: the arithmetic on Python floats,
    the logarithm portable.log's on the array of ratios (bit-identical, see
    :func:`rate_difference_of`)."""
    if len(baseline) >= SEQUENTIAL_SUM or len(canary) != len(baseline):
        return float(psi(baseline, canary))
    p, q = _shares_of(baseline), _shares_of(canary)
    logs = _logs([y / x for x, y in zip(p, q, strict=True)], portable.log)
    return added((y - x) * g for x, y, g in zip(p, q, logs, strict=True))


def jensen_shannon_of(baseline: Sequence[float], canary: Sequence[float]) -> float:
    """``float(jensen_shannon(baseline, canary))`` for a few categories, as :func:`psi_of`."""
    if len(baseline) >= SEQUENTIAL_SUM or len(canary) != len(baseline):
        return float(jensen_shannon(baseline, canary))
    p, q = _shares_of(baseline), _shares_of(canary)
    m = [(x + y) / 2.0 for x, y in zip(p, q, strict=True)]
    log_p = _logs([x / z for x, z in zip(p, m, strict=True)], portable.log2)
    log_q = _logs([y / z for y, z in zip(q, m, strict=True)], portable.log2)
    return 0.5 * (
        added(x * g for x, g in zip(p, log_p, strict=True))
        + added(y * g for y, g in zip(q, log_q, strict=True))
    )


def pearson_chi2(baseline: object, canary: object) -> FloatArray:
    """Pearson's X**2 of the 2 x K table; empty categories contribute nothing."""
    b, c = _arr(baseline), _arr(canary)
    n_b = b.sum(axis=-1, keepdims=True)
    n_c = c.sum(axis=-1, keepdims=True)
    pooled = (b + c) / np.maximum(n_b + n_c, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_b, e_c = pooled * n_b, pooled * n_c
        terms = np.where(pooled > 0, (b - e_b) ** 2 / e_b + (c - e_c) ** 2 / e_c, 0.0)
    out: FloatArray = np.nan_to_num(terms.sum(axis=-1))
    return out


def pearson_chi2_of(baseline: Sequence[float], canary: Sequence[float]) -> float:
    """:func:`pearson_chi2` of one table of a few categories, as a float: the same operations
    on Python floats (bit-identical, see :func:`rate_difference_of`; ``** 2`` on an array is
    numpy's ``square``, ``x * x``). Empty arms and long tables use the vectorized function."""
    b = [float(x) for x in baseline]
    c = [float(x) for x in canary]
    n_b, n_c = added(b), added(c)
    if len(b) >= SEQUENTIAL_SUM or len(c) != len(b) or not (n_b > 0 and n_c > 0):
        return float(pearson_chi2(baseline, canary))
    scale = max(n_b + n_c, 1e-300)
    terms = []
    for x_b, x_c in zip(b, c, strict=True):
        pooled = (x_b + x_c) / scale
        if not pooled > 0:
            terms.append(0.0)
            continue
        e_b, e_c = pooled * n_b, pooled * n_c
        d_b, d_c = x_b - e_b, x_c - e_c
        try:
            terms.append(d_b * d_b / e_b + d_c * d_c / e_c)
        except ZeroDivisionError:  # numpy gives inf or NaN there: leave it to numpy
            return float(pearson_chi2(baseline, canary))
    total = added(terms)
    if math.isnan(total):  # np.nan_to_num
        return 0.0
    if math.isinf(total):
        return math.copysign(sys.float_info.max, total)
    return total


def paired_disagreement(discordant: object, n: object, margin: float) -> Effect:
    """The share of paired requests decided differently, minus the accepted ``margin``.

    Each request is one Bernoulli trial (agree/disagree), so this is a one-sample test of a
    rate against ``margin``; the variance is taken at the null boundary ``p = margin`` or at the
    estimate, whichever is larger (never an infinite statistic with no disagreement yet, and
    conservative on both sides). ``neff`` is the number of pairs: one observation per request.
    """
    d, total = _arr(discordant), _arr(n)
    p = np.where(total > 0, d / np.maximum(total, 1.0), 0.0)
    var = np.maximum(p * (1.0 - p), margin * (1.0 - margin))
    se = np.where(total > 0, np.sqrt(var / np.maximum(total, 1.0)), 0.0)
    return Effect(theta=p - margin, se=se, neff=total)


def paired_shift(adverse: object, reverse: object, n: object, margin: float) -> Effect:
    """McNemar-type asymmetry: ``(b - c) / n - margin`` where ``b`` counts requests moved in the
    adverse direction (e.g. incumbent approve, challenger decline) and ``c`` the reverse.

    ``(b - c) / n`` is the paired difference of the two models' rates of the adverse outcome;
    each request contributes +1, -1 or 0, whose variance ``(b + c) / n - ((b - c) / n) ** 2`` is
    floored at its value on the null boundary (``b / n = margin``, ``c = 0``) so a table without
    discordant pairs yet gives a finite statistic.
    """
    b, c, total = _arr(adverse), _arr(reverse), _arr(n)
    size = np.maximum(total, 1.0)
    shift = np.where(total > 0, (b - c) / size, 0.0)
    var = np.maximum((b + c) / size - shift**2, margin * (1.0 - margin))
    se = np.where(total > 0, np.sqrt(np.maximum(var, 0.0) / size), 0.0)
    return Effect(theta=shift - margin, se=se, neff=total)
