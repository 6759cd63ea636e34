"""Statistics for judging a fleet of models at once: false-discovery control with e-values, a
difference-in-differences rate effect, and an exact e-process for a rate against a fixed bound.

* :func:`e_bh` is the e-BH procedure of Wang & Ramdas (JRSS-B 2022): with e-values
  ``e_1..e_m`` it rejects the ``k`` largest, ``k = max{k : e_(k) >= m / (k q)}``. It controls
  the false discovery rate at ``q * m0 / m`` under *any* dependence between the e-values, which
  matters here: every model's statistic shares the same concurrent controls. An e-process
  stopped at any stopping time is an e-value (optional stopping), so e-BH applied once, at the
  wave's decision time, to each model's e-process (frozen where the model was rolled back) is
  anytime-valid. Under the global null (an A/A fleet) FDR is the probability of any rejection.
* :func:`did_rate_effect` is a model's rate change after an upgrade against its own mirror
  window before it, net of the concurrent change of the models not yet upgraded; oriented so
  that positive means harm, with a null-boundary standard error (as ``rate_difference``).
* :func:`log_e_rate_above` is an exact (not asymptotic) e-process for ``H0: p <= bound`` from
  Bernoulli counts, for models with too little traffic for the Gaussian mixture: a Beta mixture
  of likelihood ratios restricted to ``p > bound``. Each ratio ``(p/b)^x ((1-p)/(1-b))^(n-x)``
  with ``p > b`` is a supermartingale under every ``p' <= b``, and so is their mixture.

numpy/scipy only; vectorized over models.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from analyzer.stats import lazy_special as special
from analyzer.stats.effects import Effect, rate_difference

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def e_bh(e_values: npt.ArrayLike, level: float) -> BoolArray:
    """Which hypotheses e-BH rejects at FDR ``level`` (a boolean mask in the input's order).

    Non-finite or negative e-values are treated as 0 (no evidence), never as rejections.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    e = np.asarray(e_values, dtype=np.float64).ravel()
    e = np.where(np.isfinite(e) & (e > 0), e, 0.0)
    m = e.size
    if m == 0:
        return np.zeros(0, dtype=np.bool_)
    order = np.argsort(-e, kind="stable")
    ranked = e[order]
    ks = np.arange(1, m + 1, dtype=np.float64)
    ok = ranked * ks * level >= m
    rejected = np.zeros(m, dtype=np.bool_)
    if ok.any():
        k = int(np.flatnonzero(ok)[-1]) + 1
        rejected[order[:k]] = True
    return rejected


def e_bh_from_log(log_e: npt.ArrayLike, level: float) -> BoolArray:
    """:func:`e_bh` on log e-values (no overflow for overwhelming evidence)."""
    log_arr = np.asarray(log_e, dtype=np.float64)
    return e_bh(np.exp(np.minimum(log_arr, 700.0)), level)


def did_rate_effect(
    *,
    after_events: npt.ArrayLike,
    after_total: npt.ArrayLike,
    before_events: npt.ArrayLike,
    before_total: npt.ArrayLike,
    control_change: float,
    control_var: float,
    margin: float,
) -> Effect:
    """``(p_after - p_before) - control_change - margin`` per model, with its standard error.

    ``control_change`` and ``control_var`` are the concurrent controls' estimated rate change
    over the same two windows and its variance (0 and 0 without controls: the model's own past
    alone). The model's part uses the restricted-null variance of ``rate_difference`` on the
    boundary ``p_after = p_before + control_change + margin``; the controls' variance adds.
    ``neff`` is scaled down by the share of the variance that is the model's, so the mixture's
    information reflects the noise the controls bring in.
    """
    own = rate_difference(
        before_events, before_total, after_events, after_total, margin + control_change
    )
    own_var = own.se**2
    var = own_var + max(control_var, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(var > 0, own_var / np.where(var > 0, var, 1.0), 0.0)
    return Effect(theta=own.theta, se=np.sqrt(var), neff=own.neff * share)


def pooled_change(
    *,
    after_events: npt.ArrayLike,
    after_total: npt.ArrayLike,
    before_events: npt.ArrayLike,
    before_total: npt.ArrayLike,
) -> tuple[float, float]:
    """The pooled rate change of a group of models over two windows and its variance.

    Rates are pooled by summing counts (each request counts once), which is what the concurrent
    controls estimate: the time effect on the fleet's traffic.
    """
    xa, na = float(np.sum(after_events)), float(np.sum(after_total))
    xb, nb = float(np.sum(before_events)), float(np.sum(before_total))
    if na <= 0 or nb <= 0:
        return 0.0, 0.0
    eff = rate_difference(xb, nb, xa, na, 0.0)
    return float(eff.theta), float(eff.se) ** 2


def alternative_rate(bound: float) -> float:
    """The centre of the safety test's mixture: twice the bound, kept below 1."""
    return min(2.0 * bound, (1.0 + bound) / 2.0)


def log_e_rate_above(
    events: npt.ArrayLike, total: npt.ArrayLike, bound: float, concentration: float = 5.0
) -> FloatArray:
    """Log e-process for ``H0: p <= bound`` from ``events`` of ``total`` Bernoulli trials.

    The mixing distribution is a Beta with mean :func:`alternative_rate` and the given
    ``concentration``, truncated to ``(bound, 1)``. Exact for any count, including zero.
    """
    if not 0.0 < bound < 1.0:
        raise ValueError(f"bound must be in (0, 1), got {bound}")
    x = np.asarray(events, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    failures = np.maximum(n - x, 0.0)
    centre = alternative_rate(bound)
    a, b = concentration * centre, concentration * (1.0 - centre)
    with np.errstate(divide="ignore"):
        log_tail_post = np.log(special.betaincc(a + x, b + failures, bound))
    log_tail_prior = math.log(float(special.betaincc(a, b, bound)))
    out: FloatArray = (
        special.betaln(a + x, b + failures)
        + log_tail_post
        - special.betaln(a, b)
        - log_tail_prior
        - x * math.log(bound)
        - failures * math.log1p(-bound)
    )
    return np.maximum(out, -700.0)
