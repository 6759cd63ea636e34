"""Exact conditional alpha spending for rare-event counts (errors, false positives).

Under "the canary's event rate is no higher than the baseline's" (tolerance 0), the events of
one look's increment split between the arms like a coin: given that ``dT`` events happened in
the increment, the harm arm's share of them is Binomial(``dT``, ``pi``) with ``pi`` the harm
arm's share of the increment's requests (exact for Poisson counts; for Bernoulli requests the
exact law is hypergeometric, which the binomial dominates in spread, so it stays valid). A
lower canary rate only shifts that law down. Conditioning on the events of every increment
removes the unknown baseline rate altogether, so the null law of the cumulative harm-arm count,
given the event totals so far, is known *exactly* — no normal approximation, which with a
handful of events wastes much of alpha (research/statistics.md; Lindon & Malek 2022 condition the
same way for their e-processes).

The group-sequential recipe is the one of :mod:`analyzer.stats.spending`, on integers: carry the
exact null mass of the cumulative harm-arm count that has not crossed yet, convolve it with the
increment's binomial, and fail at the smallest count whose not-yet-crossed tail fits under the
alpha allowed by the spending function at this look's (data-independent) information fraction.
The statistic is discrete, so a look usually spends less than allowed; what is left is carried
to later looks (the cumulative crossing probability stays at or below ``alpha(t)`` at every look,
which is what Lan-DeMets needs). Any number and timing of looks stays valid, also looks with no
new events.

The lattice is a :class:`~analyzer.stats.spending.BoundaryState` read as: ``info`` the events of
both arms so far, ``reference`` the requests of (harm arm, other arm) at that look, ``offset``
the harm-arm count of ``masses[0]``, ``z_boundary`` the smallest harm-arm count that fails.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from analyzer.stats import lazy_special as special
from analyzer.stats import portable
from analyzer.stats.spending import BoundaryState, SpendingFunction, convolve_masses, trimmed

FloatArray = npt.NDArray[np.float64]

_KERNEL_SDS = 10.0  # the binomial increment is evaluated within 10 s.d. (+ 10 counts)


def _binomial(n: int, p: float) -> tuple[int, FloatArray]:
    """(first count, pmf) of Binomial(n, p) within ``_KERNEL_SDS`` standard deviations."""
    if n == 0 or p >= 1.0:
        return (n if n and p >= 1.0 else 0), np.ones(1)
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    # 10 s.d. plus 10 counts: a skewed (small p) binomial's tail beyond that holds < 1e-15
    lo = max(0, math.floor(mean - _KERNEL_SDS * sd - 10))
    hi = min(n, math.ceil(mean + _KERNEL_SDS * sd + 10))
    k = np.arange(lo, hi + 1, dtype=np.float64)
    log_pmf = (
        special.gammaln(n + 1.0)
        - special.gammaln(k + 1.0)
        - special.gammaln(n - k + 1.0)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )
    return lo, portable.exp(log_pmf)


def harm_share(harm_requests: float, other_requests: float, fallback: float) -> float:
    """The harm arm's share of an increment's requests: the null probability that one of the
    increment's events is the harm arm's. ``fallback`` (the cumulative share) serves when the
    increment has no requests. It is floored at half a request, which can only make the test
    more conservative (an event on an arm that shows no new requests is not evidence)."""
    if harm_requests + other_requests <= 0:
        return fallback
    floored = max(harm_requests, 0.5)
    return floored / (floored + max(other_requests, 0.0))


def next_count_boundary(
    state: BoundaryState,
    *,
    harm_events: int,
    other_events: int,
    harm_requests: float,
    other_requests: float,
    fraction: float,
    alpha: float,
    spending: SpendingFunction,
) -> BoundaryState:
    """Advance to a look with these cumulative counts and information fraction ``fraction``.

    Returns the new state; its ``z_boundary`` is the smallest cumulative harm-arm event count
    that fails at this look (``inf`` when none can). Counts lower than the state's are a counter
    reset, which the caller refuses before calling.
    """
    total = harm_events + other_events
    seen = round(state.info)
    if state.reference:
        ref_harm, ref_other = state.reference
    else:
        ref_harm, ref_other = 0.0, 0.0
    if total < seen or harm_requests < ref_harm or other_requests < ref_other:
        raise ValueError("cumulative counts fell since the last look")
    offset = state.offset
    masses = np.asarray(state.masses, dtype=np.float64)
    if total > seen:
        cumulative = harm_requests / max(harm_requests + other_requests, 1.0)
        share = harm_share(harm_requests - ref_harm, other_requests - ref_other, cumulative)
        first, kernel = _binomial(total - seen, share)
        masses = convolve_masses(masses, kernel)
        offset += first
    allowed = max(spending.spent(alpha, fraction) - state.spent, 0.0)
    tail = np.cumsum(masses[::-1])[::-1]  # tail[j] = not-crossed null mass at or above cell j
    fits = np.nonzero(tail <= allowed * (1.0 + 1e-12))[0]
    j = int(fits[0]) if fits.size else masses.size
    # j == masses.size: no count above the carried support fits (it holds under 1e-14 each)
    newly = float(tail[j]) if j < masses.size else 0.0
    boundary = float(offset + j) if j < masses.size else math.inf
    if total == seen:
        # Without new events the count has not moved: a count at or above the last boundary
        # crossed it then, so keeping that boundary costs no alpha (and a repeated look
        # changes nothing).
        boundary = min(boundary, state.z_boundary)
    lo, kept = trimmed(0, masses[:j])
    return BoundaryState(
        info=float(total),
        spent=state.spent + newly,
        offset=offset + lo,
        masses=kept,
        z_boundary=boundary,
        reference=(float(harm_requests), float(other_requests)),
    )
