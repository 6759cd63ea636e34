"""One sequential decision per metric from its components' standardized statistics.

A metric is judged through one or more *components* (a rate difference; a shift and two tail
exceedances for latency; an ordinal shift for decisions), each an estimate ``theta`` (already
net of the tolerance, positive = harm) with a standard error and an effective sample size.

* Without a horizon, each component is an e-process (half-normal mixture, ``mixture.py``); the
  metric's e-value is their weighted average, an e-process too, and the metric fails when it
  reaches ``1/alpha_metric`` (Ville). A component passes when the mirror-image e-process (harm
  beyond tolerance) reaches ``1/alpha_metric``; the metric passes when all components pass.
* With a horizon, three quarters of the metric's alpha are spent over the information fraction
  (each component gets its weight's share, Bonferroni) with boundaries recomputed at every
  actual look (``spending.py``); the last quarter runs as the horizon-free e-process above, which
  keeps watching after the horizon. The metric passes early when every component's repeated
  confidence bound clears the tolerance, or when the horizon is reached without a fail.
  A component that carries its raw counts (rare-event proportions with tolerance 0) is judged
  by the exact conditional test of ``stats/exact.py`` instead of the Gaussian lattice; it has no
  mirror test, so it passes only at the horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from analyzer.domain.result import JsonValue
from analyzer.judge.state import MetricState
from analyzer.stats import portable
from analyzer.stats.effects import SEQUENTIAL_SUM, added
from analyzer.stats.exact import next_count_boundary
from analyzer.stats.mixture import cs_radius_z_at, log_e_one_sided_at, log_e_two_sided
from analyzer.stats.radial import next_radial_boundary
from analyzer.stats.spending import BoundaryState, SpendingFunction, next_boundary

HORIZON_ALPHA_SHARE = 0.75


@dataclass(frozen=True, kw_only=True, slots=True)
class Component:
    name: str
    weight: float
    theta: float  # estimate minus margin, oriented so that positive means harm
    se: float
    neff: float
    margin: float = 0.0  # added back when reporting the interval of the raw effect
    orientation: int = 1  # -1 when harm is a decrease: intervals are reported as canary - baseline
    # (harm-arm events, other-arm events, harm-arm requests, other-arm requests): set when the
    # exact conditional test applies (rare-event counts, tolerance 0; ``stats/exact.py``)
    counts: tuple[int, int, float, float] | None = None

    @property
    def z(self) -> float:
        return self.theta / self.se if self.se > 0 else 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Design:
    alpha: float
    horizon: int | None
    spending: SpendingFunction
    scale: float
    clock: float | None = None  # share of the bake elapsed; alpha is spent on max(n/horizon, it)
    # with a horizon: the share of alpha spent by alpha spending; the rest is the e-process reserve
    spend_share: float = HORIZON_ALPHA_SHARE


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    fail: bool
    passed: bool
    at_horizon: bool
    statistic: dict[str, JsonValue]
    intervals: dict[str, list[float]]
    boundaries: tuple[tuple[str, BoundaryState], ...]
    max_log_e: float


def _finite(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def _interval(c: Component, radius: float) -> list[float]:
    mid = c.orientation * (c.theta + c.margin)
    return [round(mid - radius * c.se, 8), round(mid + radius * c.se, 8)]


def _with_horizon(
    components: tuple[Component, ...], design: Design, prev: MetricState, n_min: float
) -> Decision:
    assert design.horizon is not None
    fraction = max(n_min / design.horizon, design.clock or 0.0)
    states: list[tuple[str, BoundaryState]] = []
    parts: dict[str, JsonValue] = {}
    intervals: dict[str, list[float]] = {}
    fail, passed = False, True
    for c in components:
        if c.counts is not None:
            name, b, crossed, part = _exact(c, design, prev, fraction)
            states.append((name, b))
            fail |= crossed
            passed = False  # the exact test has no mirror: it passes at the horizon
            radius = cs_radius_z_at(c.neff, design.scale, design.alpha)
            intervals[c.name] = _interval(c, radius)
            parts[c.name] = part
            continue
        info = c.neff / (design.horizon / 2.0)
        b = next_boundary(
            prev.boundary(c.name),
            info=info,
            fraction=fraction,
            alpha=design.alpha * c.weight,
            spending=design.spending,
        )
        states.append((c.name, b))
        crit = b.z_boundary
        fail |= c.z >= crit
        passed &= -c.z >= crit
        radius = crit if math.isfinite(crit) else cs_radius_z_at(c.neff, design.scale, design.alpha)
        intervals[c.name] = _interval(c, radius)
        parts[c.name] = {"z": _finite(c.z), "boundary": _finite(crit), "alpha_spent": b.spent}
    at_horizon = fraction >= 1.0 and not fail
    statistic: dict[str, JsonValue] = {
        "method": "alpha-spending",
        "spending": design.spending.describe(),
        "information_fraction": round(min(fraction, 1.0), 6),
        "components": parts,
    }
    return Decision(
        fail=fail,
        passed=(passed or at_horizon) and not fail,
        at_horizon=at_horizon,
        statistic=statistic,
        intervals=intervals,
        boundaries=tuple(states),
        max_log_e=prev.max_log_e,
    )


EXACT = ":exact"  # suffix of an exact count lattice's name in the metric state


def _exact(
    c: Component, design: Design, prev: MetricState, fraction: float
) -> tuple[str, BoundaryState, bool, dict[str, JsonValue]]:
    """One look of the exact conditional test: (lattice name, lattice, crossed, statistic)."""
    assert c.counts is not None
    harm, other, harm_n, other_n = c.counts
    name = c.name + EXACT
    b = next_count_boundary(
        prev.boundary(name),
        harm_events=harm,
        other_events=other,
        harm_requests=harm_n,
        other_requests=other_n,
        fraction=fraction,
        alpha=design.alpha * c.weight,
        spending=design.spending,
    )
    part: dict[str, JsonValue] = {
        "test": "exact conditional",
        "z": _finite(c.z),
        "events": harm,
        "events_total": harm + other,
        "boundary_events": _finite(b.z_boundary),
        "alpha_spent": b.spent,
    }
    return name, b, harm >= b.z_boundary, part


@lru_cache(maxsize=256)
def _log_weights(weights: tuple[float, ...]) -> tuple[float, ...]:
    """The log of the components' weights: the same at every look of a metric."""
    logs: list[float] = portable.log(np.array(weights, dtype=np.float64)).tolist()
    return tuple(logs)


def _without_horizon(
    components: tuple[Component, ...], design: Design, prev: MetricState, complete: bool
) -> Decision:
    threshold = math.log(1.0 / design.alpha)
    weights = tuple(c.weight for c in components)
    log_fail = [log_e_one_sided_at(c.z, c.neff, design.scale) for c in components]
    # components not started yet (tail thresholds not frozen) count as e-value 1.
    total = added(weights) if len(weights) < SEQUENTIAL_SUM else float(np.sum(weights))
    idle = max(1.0 - total, 0.0)
    terms = [lw + lf for lw, lf in zip(_log_weights(weights), log_fail, strict=True)]
    log_e = float(np.logaddexp.reduce(np.array([*terms, math.log(idle or 1e-300)])))
    max_log_e = max(prev.max_log_e, log_e)
    parts: dict[str, JsonValue] = {}
    intervals: dict[str, list[float]] = {}
    for c, lf in zip(components, log_fail, strict=True):
        radius = cs_radius_z_at(c.neff, design.scale, design.alpha)
        intervals[c.name] = _interval(c, radius)
        parts[c.name] = {"z": _finite(c.z), "e_value": _finite(math.exp(min(lf, 700.0)))}
    statistic: dict[str, JsonValue] = {
        "method": "e-process",
        "mixture_scale": design.scale,
        "e_value": _finite(math.exp(min(log_e, 700.0))),
        "threshold": round(1.0 / design.alpha, 6),
        "p_value": _finite(min(1.0, math.exp(-max_log_e))),
        "components": parts,
    }
    return Decision(
        fail=log_e >= threshold,
        # the mirror e-values only when they can decide (pure: the same verdict as computing
        # them all first)
        passed=complete
        and log_e < threshold
        and all(log_e_one_sided_at(-c.z, c.neff, design.scale) >= threshold for c in components),
        at_horizon=False,
        statistic=statistic,
        intervals=intervals,
        boundaries=prev.boundaries,
        max_log_e=max_log_e,
    )


def decide(
    components: tuple[Component, ...],
    design: Design,
    prev: MetricState,
    *,
    n_min: float,
    complete: bool,
) -> Decision:
    """Judge one look. ``n_min`` is the smaller arm's total; ``complete`` is false while some
    component has not started (it can then fail but not pass before the horizon).

    With a horizon, ``design.spend_share`` of the metric's alpha is spent over the horizon and
    the rest runs as a horizon-free e-process: it keeps watching after the horizon (extended
    bakes) and leaves a margin for the normal approximation, under a union bound.
    """
    if design.horizon is None and design.clock is None:
        return _without_horizon(components, design, prev, complete)
    reserve = replace(design, alpha=design.alpha * (1.0 - design.spend_share))
    if design.horizon is None:
        # A bake whose horizon cannot be projected yet (its first moments): the spending part
        # spends nothing and is skipped (its lattice starts at the next look), the reserve
        # watches alone.
        return _without_horizon(components, reserve, prev, complete)
    spend = replace(design, alpha=design.alpha * design.spend_share)
    g = _with_horizon(components, spend, prev, n_min)
    e = _without_horizon(components, reserve, prev, complete)
    fail = g.fail or e.fail
    reserve_stat = {k: e.statistic[k] for k in ("e_value", "threshold", "p_value")}
    return Decision(
        fail=fail,
        passed=((g.passed and complete) or g.at_horizon) and not fail,
        at_horizon=g.at_horizon and not fail,
        statistic={**g.statistic, "reserve_e_process": reserve_stat},
        intervals=g.intervals,
        boundaries=g.boundaries,
        max_log_e=e.max_log_e,
    )


OMNIBUS = "omnibus"  # the name of the omnibus test's lattice in the metric state


def _omnibus_e_process(
    chi2: float, dof: int, neff: float, design: Design, prev: MetricState
) -> tuple[bool, float, dict[str, JsonValue]]:
    """Spherical-mixture e-process on Pearson's X**2: (fail, running max log e, statistic)."""
    log_e = float(log_e_two_sided(chi2, neff, design.scale, dof)) if dof > 0 else 0.0
    max_log_e = max(prev.max_log_e, log_e)
    statistic: dict[str, JsonValue] = {
        "e_value": _finite(math.exp(min(log_e, 700.0))),
        "threshold": round(1.0 / design.alpha, 6),
        "p_value": _finite(min(1.0, math.exp(-max_log_e))),
    }
    return log_e >= math.log(1.0 / design.alpha), max_log_e, statistic


def decide_omnibus(
    chi2: float,
    dof: int,
    neff: float,
    design: Design,
    prev: MetricState,
    *,
    n_min: float,
    categories: int,
) -> Decision:
    """Unordered categories: an omnibus test of any change of the mix.

    Without a horizon (and no bake clock) it is the spherical-mixture e-process on Pearson's
    X**2. With one, ``design.spend_share`` of the alpha is spent over the information fraction
    on the norm ``sqrt(X**2)`` (a Bessel process under the null, ``stats/radial.py``) and the
    rest runs as the e-process, as for the other kinds. The test has no one-sided mirror, so it
    passes only when the horizon (or the end of the bake) is reached without a fail.
    """
    clock = design.clock or 0.0
    lattice_dof = categories - 1
    if (design.horizon is None and design.clock is None) or lattice_dof < 1:
        fail, max_log_e, e_stat = _omnibus_e_process(chi2, dof, neff, design, prev)
        reached = design.horizon is not None and n_min >= design.horizon
        at_horizon = (reached or clock >= 1.0) and not fail
        statistic: dict[str, JsonValue] = {
            "method": "e-process (omnibus)",
            "mixture_scale": design.scale,
            "chi2": round(chi2, 6),
            "dof": dof,
            **e_stat,
        }
        return Decision(
            fail=fail,
            passed=at_horizon,
            at_horizon=at_horizon,
            statistic=statistic,
            intervals={},
            boundaries=prev.boundaries,
            max_log_e=max_log_e,
        )
    reserve = replace(design, alpha=design.alpha * (1.0 - design.spend_share))
    e_fail, max_log_e, e_stat = _omnibus_e_process(chi2, dof, neff, reserve, prev)
    boundaries = prev.boundaries
    crit = math.inf
    fraction = clock
    spent = prev.boundary(OMNIBUS).spent
    if design.horizon is not None:
        # (without one, the bake is too young to project a horizon: the reserve watches alone)
        fraction = max(n_min / design.horizon, clock)
        b = next_radial_boundary(
            prev.boundary(OMNIBUS),
            info=neff / (design.horizon / 2.0),
            fraction=fraction,
            alpha=design.alpha * design.spend_share,
            spending=design.spending,
            dof=lattice_dof,
        )
        boundaries, crit, spent = ((OMNIBUS, b),), b.z_boundary, b.spent
    norm = math.sqrt(max(chi2, 0.0))
    fail = norm >= crit or e_fail
    at_horizon = fraction >= 1.0 and not fail
    statistic = {
        "method": "alpha-spending (omnibus)",
        "spending": design.spending.describe(),
        "information_fraction": round(min(fraction, 1.0), 6),
        "chi2": round(chi2, 6),
        "dof": dof,
        "norm": round(norm, 6),
        "boundary": _finite(crit),
        "alpha_spent": spent,
        "reserve_e_process": e_stat,
    }
    return Decision(
        fail=fail,
        passed=at_horizon,
        at_horizon=at_horizon,
        statistic=statistic,
        intervals={},
        boundaries=boundaries,
        max_log_e=max_log_e,
    )
