"""Per-metric stage: guard the data, build evidence per kind, decide sequentially, explain.

Guards come first and fail closed: a missing observation is ``error`` (source failure, or no
data for a must-have metric) or ``inconclusive``/``nodata``; cumulative counts lower than at the
previous look (a counter reset or looks out of order) are an ``error`` and leave the state as it
was, so the next consistent look continues the same sequential test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from analyzer.domain.observation import (
    CategoricalObservation,
    HistogramObservation,
    MissingObservation,
    Observation,
    PairedObservation,
    ProportionObservation,
)
from analyzer.domain.profile import MetricSpec
from analyzer.domain.result import MetricResult
from analyzer.domain.verdict import Classification, Direction, MetricKind, Verdict
from analyzer.judge.categorical import categorical_evidence
from analyzer.judge.evidence import Evidence
from analyzer.judge.histogram import histogram_evidence
from analyzer.judge.paired import paired_evidence
from analyzer.judge.proportion import exact_applies, proportion_evidence
from analyzer.judge.sequential import (
    HORIZON_ALPHA_SHARE,
    Decision,
    Design,
    decide,
    decide_omnibus,
)
from analyzer.judge.state import MetricState
from analyzer.stats.mixture import log_e_sample_ratio_at
from analyzer.stats.spending import SpendingFunction

DEFAULT_SPENDING = "hsd:0"
# The unordered omnibus test spends late: chosen for power at the horizon (docs/statistics.md)
DEFAULT_OMNIBUS_SPENDING = "hsd:-2"
# Proportions (rare events) spend early and keep a smaller reserve: with a handful of events the
# early boundaries cannot be reached, so the normal approximation wastes alpha there; spending
# more of it, earlier, buys back detection time (docs/statistics.md, "Proportions: faster").
PROPORTION_SPENDING = "pocock"
PROPORTION_SPEND_SHARE = 0.9
# Proportions judged by the exact conditional test (tolerance 0): it spends exactly what it is
# allowed, so its measured A/A rate is close to nominal and the share is smaller; hsd:2.5 is
# the earliest-detecting shape that keeps power by the horizon above 80 % (docs/statistics.md,
# "The exact test for rare events"; bench/spending_frontier.py).
EXACT_SPENDING = "hsd:2.5"
EXACT_SPEND_SHARE = 0.8
DEFAULT_MIXTURE_SCALE = 0.05
SRM_ALPHA_SHARE = 0.1  # the SRM guard gets a tenth of the metric's alpha


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricOutcome:
    result: MetricResult
    state: MetricState
    srm: bool = False


def _result(spec: MetricSpec, verdict: Verdict, cls: Classification, reason: str) -> MetricResult:
    return MetricResult(
        name=spec.name,
        kind=spec.kind,
        verdict=verdict,
        classification=cls,
        reason=reason,
        critical=spec.critical,
        weight=spec.weight,
        group=spec.group,
    )


def missing(spec: MetricSpec, obs: MissingObservation) -> MetricResult:
    if obs.source_error:
        return _result(spec, Verdict.ERROR, Classification.NODATA, f"source error: {obs.reason}")
    verdict = Verdict.ERROR if spec.must_have_data else Verdict.INCONCLUSIVE
    return _result(spec, verdict, Classification.NODATA, f"no data: {obs.reason}")


def kept_fail(spec: MetricSpec, prev: MetricState, why: str) -> MetricResult | None:
    """A metric that failed earlier stays ``fail`` on a look without usable data (a fail is
    final); ``None`` when it had not failed. A pass is not kept over missing data: missing data
    never passes, and a pass only stands on data that show no harm."""
    if prev.decision != Verdict.FAIL.value:
        return None
    cls = Classification.LOW if spec.direction is Direction.DECREASE else Classification.HIGH
    at = f" at look {prev.decided_look}" if prev.decided_look is not None else ""
    reason = f"failed{at}, and a fail is final; this look has no usable data ({why})"
    return _result(spec, Verdict.FAIL, cls, reason)


def flat_counts(obs: Observation) -> tuple[float, ...]:
    if isinstance(obs, ProportionObservation):
        b, c = obs.baseline, obs.canary
        return (b.events, b.total, c.events, c.total)
    if isinstance(obs, HistogramObservation | CategoricalObservation):
        return (*map(float, obs.baseline), *map(float, obs.canary))
    if isinstance(obs, PairedObservation):
        return tuple(float(c) for row in obs.pairs for c in row)
    return ()


def _evidence(spec: MetricSpec, obs: Observation, prev: MetricState) -> Evidence | None:
    if spec.kind is MetricKind.PROPORTION and isinstance(obs, ProportionObservation):
        return proportion_evidence(spec, obs)
    if spec.kind is MetricKind.HISTOGRAM and isinstance(obs, HistogramObservation):
        return histogram_evidence(spec, obs, prev.tail_bounds)
    if spec.kind is MetricKind.CATEGORICAL and isinstance(obs, CategoricalObservation):
        return categorical_evidence(spec, obs)
    if spec.kind is MetricKind.PAIRED and isinstance(obs, PairedObservation):
        return paired_evidence(spec, obs)
    return None


def _reset(prev: MetricState, counts: tuple[float, ...]) -> str | None:
    if not prev.counts:
        return None
    if len(prev.counts) != len(counts):
        return "the bucket/category layout changed since the previous look"
    for i, (old, new) in enumerate(zip(prev.counts, counts, strict=True)):
        if new < old:
            return (
                f"cumulative count #{i} fell from {old:g} to {new:g} "
                "(counter reset or looks out of order)"
            )
    return None


def default_spending(kind: MetricKind, *, ordered: bool = False, exact: bool = False) -> str:
    """The alpha-spending function a metric of this kind uses when it sets none (``exact``:
    judged by the exact conditional test)."""
    if kind is MetricKind.PROPORTION:
        return EXACT_SPENDING if exact else PROPORTION_SPENDING
    if kind is MetricKind.CATEGORICAL and not ordered:
        return DEFAULT_OMNIBUS_SPENDING
    return DEFAULT_SPENDING


def spend_share(kind: MetricKind, *, exact: bool = False) -> float:
    """The share of a metric's alpha spent by alpha spending when it has a horizon."""
    if kind is MetricKind.PROPORTION:
        return EXACT_SPEND_SHARE if exact else PROPORTION_SPEND_SHARE
    return HORIZON_ALPHA_SHARE


@lru_cache(maxsize=64)
def _spending(text: str) -> SpendingFunction:
    """``SpendingFunction.parse``, once per text: it is pure and its value immutable, and every
    look of every metric asks for it (a ValueError is not cached: it is raised again)."""
    return SpendingFunction.parse(text)


def design_for(
    spec: MetricSpec,
    alpha: float,
    *,
    horizon: float | None = None,
    clock: float | None = None,
) -> Design:
    """The metric's sequential design; ValueError names a setting that cannot work.

    ``horizon`` (default: the spec's) and ``clock`` (the share of the bake elapsed) come from
    :func:`bake_horizon` when the caller knows the bake.
    """
    scale = DEFAULT_MIXTURE_SCALE if spec.mixture_scale is None else spec.mixture_scale
    if not scale > 0:
        raise ValueError(f"mixture_scale must be positive, not {scale}")
    if spec.horizon is not None and spec.horizon <= 0:
        raise ValueError(f"horizon must be positive, not {spec.horizon}")
    if clock is not None and not clock >= 0:
        raise ValueError(f"the bake clock must be >= 0, not {clock}")
    exact = exact_applies(spec)
    # a metric without a share of alpha (weight 0) is report-only: it never crosses a boundary
    return Design(
        alpha=max(alpha, 1e-300),
        horizon=math.ceil(horizon) if horizon is not None else spec.horizon,
        spending=_spending(
            spec.spending or default_spending(spec.kind, ordered=spec.ordered, exact=exact)
        ),
        spend_share=spend_share(spec.kind, exact=exact),
        scale=scale,
        clock=clock,
    )


MIN_CLOCK_TO_PROJECT = 0.1  # a horizon is projected once a tenth of the bake has gone by


def bake_horizon(
    spec: MetricSpec, prev: MetricState, n_min: float, clock: float | None
) -> float | None:
    """The per-arm horizon this look uses: the one already used (fixed at first use: the
    lattice's information scale depends on it), else the spec's, else — with a bake clock — the
    traffic so far projected to the end of the bake, ``n_min / clock``, once ``clock`` is at
    least ``MIN_CLOCK_TO_PROJECT`` (earlier projections are too noisy; until then only the
    reserve e-process watches). Traffic volume does not depend on outcomes, so projecting from
    it keeps the alpha-spending valid."""
    if prev.horizon is not None:
        return prev.horizon
    if spec.horizon is not None:
        return float(spec.horizon)
    if clock is None or clock < MIN_CLOCK_TO_PROJECT or n_min <= 0:
        return None
    return max(n_min / min(clock, 1.0), 1.0)


def _srm(
    spec: MetricSpec, ev: Evidence, prev: MetricState, alpha: float, weight: float | None
) -> tuple[float, bool]:
    if weight is None or not 0.0 < weight < 1.0:
        return prev.srm_max_log_e, prev.srm
    log_e = log_e_sample_ratio_at(ev.n_canary, ev.n_baseline, weight)
    best = max(prev.srm_max_log_e, log_e)
    return best, prev.srm or best >= math.log(1.0 / (alpha * SRM_ALPHA_SHARE))


def _guard(
    spec: MetricSpec,
    obs: Observation,
    prev: MetricState,
    ev: Evidence | None,
    counts: tuple[float, ...],
) -> MetricResult | None:
    """A result when the look cannot be judged (wrong type, counter reset, no traffic yet);
    ``counts`` is ``flat_counts(obs)``."""
    if ev is None:
        why = f"a {type(obs).__name__} cannot be judged as kind '{spec.kind.value}'"
        return _result(spec, Verdict.ERROR, Classification.NODATA, why)
    reset = _reset(prev, counts)
    if reset is not None:
        return _result(spec, Verdict.ERROR, Classification.NODATA, reset)
    if ev.n_baseline == 0 or ev.n_canary == 0:
        arm = "baseline" if ev.n_baseline == 0 else "canary"
        why = f"no data yet: the {arm} has no requests"
        return _result(spec, Verdict.INCONCLUSIVE, Classification.NODATA, why)
    return None


def judge_counts(
    spec: MetricSpec,
    obs: Observation,
    prev: MetricState,
    *,
    alpha: float,
    canary_weight: float | None,
    bake_elapsed: float | None = None,
) -> MetricOutcome:
    """Judge a proportion, histogram or categorical observation against the previous state."""
    ev = _evidence(spec, obs, prev)
    counts = flat_counts(obs)
    refused = _guard(spec, obs, prev, ev, counts)
    if refused is not None or ev is None:
        assert refused is not None
        kept = kept_fail(spec, prev, refused.reason) if refused.verdict is Verdict.ERROR else None
        return MetricOutcome(result=kept or refused, state=prev, srm=prev.srm)
    n_min = float(min(ev.n_baseline, ev.n_canary))
    horizon = bake_horizon(spec, prev, n_min, bake_elapsed)
    try:
        design = design_for(spec, alpha, horizon=horizon, clock=bake_elapsed)
    except ValueError as exc:
        bad = _result(spec, Verdict.ERROR, Classification.NODATA, f"invalid settings: {exc}")
        return MetricOutcome(result=bad, state=prev, srm=prev.srm)
    if ev.omnibus is not None:
        o = ev.omnibus
        d = decide_omnibus(
            o.chi2, o.dof, o.neff, design, prev, n_min=n_min, categories=o.categories
        )
    else:
        d = decide(ev.components, design, prev, n_min=n_min, complete=ev.complete)
    srm_log_e, srm = _srm(spec, ev, prev, alpha, canary_weight)
    looks = prev.looks + (1 if counts != prev.counts else 0)
    verdict = _sticky(prev, d)
    decided = prev.decision != verdict.value and verdict in (Verdict.FAIL, Verdict.PASS)
    state = MetricState(
        looks=looks,
        counts=counts,
        boundaries=d.boundaries,
        max_log_e=d.max_log_e,
        tail_bounds=ev.tail_bounds,
        decision=verdict.value if verdict in (Verdict.FAIL, Verdict.PASS) else None,
        decided_look=looks if decided else prev.decided_look,
        srm_max_log_e=srm_log_e,
        srm=srm,
        horizon=horizon if d.boundaries else None,
    )
    result = _explain(spec, ev, d, verdict, state, alpha=alpha, srm=srm)
    return MetricOutcome(result=result, state=state, srm=srm)


def _sticky(prev: MetricState, d: Decision) -> Verdict:
    """Fail is final; pass is final unless a later look crosses the fail boundary."""
    if prev.decision == Verdict.FAIL.value or d.fail:
        return Verdict.FAIL
    if prev.decision == Verdict.PASS.value or d.passed:
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


def _classification(ev: Evidence, verdict: Verdict) -> Classification:
    if verdict is not Verdict.FAIL:
        return Classification.PASS
    worst = max(ev.components, key=lambda c: c.z, default=None)
    return (
        Classification.LOW if worst is not None and worst.orientation < 0 else Classification.HIGH
    )


def _explain(
    spec: MetricSpec,
    ev: Evidence,
    d: Decision,
    verdict: Verdict,
    state: MetricState,
    *,
    alpha: float,
    srm: bool,
) -> MetricResult:
    if verdict is Verdict.FAIL:
        tail = f"evidence of {ev.harm} crossed its boundary"
    elif verdict is Verdict.PASS:
        tail = (
            "the horizon was reached without evidence of harm"
            if d.at_horizon or (state.decision == "pass" and not d.passed)
            else f"the confidence sequence rules out {ev.harm}"
        )
    else:
        tail = f"not enough evidence yet to show or rule out {ev.harm}"
    if state.decided_look is not None and verdict in (Verdict.FAIL, Verdict.PASS):
        tail += f" (decided at look {state.decided_look})"
    statistic = {**d.statistic, **ev.descriptive, "alpha": round(alpha, 10)}
    # The margin the test used and when it decided, so a report can draw them (docs/ui.md).
    statistic["tolerance"] = spec.tolerance
    statistic["decided_look"] = state.decided_look
    if srm:
        statistic["sample_ratio_mismatch"] = True
    return MetricResult(
        name=spec.name,
        kind=spec.kind,
        verdict=verdict,
        classification=_classification(ev, verdict),
        reason=f"{ev.summary}; {tail}.",
        n_baseline=ev.n_baseline,
        n_canary=ev.n_canary,
        estimate={**ev.estimate, "intervals": d.intervals},
        statistic=statistic,
        critical=spec.critical,
        weight=spec.weight,
        group=spec.group,
    )
