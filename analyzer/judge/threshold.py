"""``threshold`` metrics: the canary's value against absolute SLO bounds (no statistics)."""

from __future__ import annotations

import math

from analyzer.domain.observation import ThresholdObservation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.result import MetricResult
from analyzer.domain.verdict import Classification, MetricKind, Verdict


def judge_threshold(spec: MetricSpec, obs: ThresholdObservation) -> MetricResult:
    bound = spec.bound
    common = {
        "name": spec.name,
        "kind": MetricKind.THRESHOLD,
        "critical": spec.critical,
        "weight": spec.weight,
        "group": spec.group,
        "n_canary": 1,
        "n_baseline": 0 if obs.baseline is None else 1,
    }
    statistic = {
        "method": "threshold",
        "min": None if bound is None else bound.min,
        "max": None if bound is None else bound.max,
    }
    value = obs.canary
    if bound is None or (bound.min is None and bound.max is None):
        return MetricResult(
            verdict=Verdict.ERROR,
            classification=Classification.NODATA,
            reason="the threshold metric has no bound to compare with",
            statistic=statistic,
            **common,  # type: ignore[arg-type]
        )
    if not math.isfinite(value):
        return MetricResult(
            verdict=Verdict.ERROR if spec.must_have_data else Verdict.INCONCLUSIVE,
            classification=Classification.NODATA,
            reason=f"the canary value is {value} (no data)",
            statistic=statistic,
            **common,  # type: ignore[arg-type]
        )
    estimate = {"canary": value, "baseline": obs.baseline}
    if bound.max is not None and value > bound.max:
        verdict, cls, why = Verdict.FAIL, Classification.HIGH, f"above the bound {bound.max:g}"
    elif bound.min is not None and value < bound.min:
        verdict, cls, why = Verdict.FAIL, Classification.LOW, f"below the bound {bound.min:g}"
    else:
        verdict, cls, why = Verdict.PASS, Classification.PASS, "within its bounds"
    return MetricResult(
        verdict=verdict,
        classification=cls,
        reason=f"canary value {value:g} is {why}",
        estimate=estimate,
        statistic=statistic,
        **common,  # type: ignore[arg-type]
    )
