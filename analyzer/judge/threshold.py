"""``threshold`` metrics: the canary's value against absolute SLO bounds (no statistics)."""

from __future__ import annotations

import math

from analyzer.domain.observation import ThresholdObservation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.result import JsonValue, MetricResult
from analyzer.domain.verdict import Classification, MetricKind, Verdict


def _result(
    spec: MetricSpec,
    obs: ThresholdObservation,
    verdict: Verdict,
    cls: Classification,
    reason: str,
) -> MetricResult:
    bound = spec.bound
    statistic: dict[str, JsonValue] = {
        "method": "threshold",
        "min": None if bound is None else bound.min,
        "max": None if bound is None else bound.max,
    }
    finite = math.isfinite(obs.canary)
    return MetricResult(
        name=spec.name,
        kind=MetricKind.THRESHOLD,
        verdict=verdict,
        classification=cls,
        reason=reason,
        n_canary=1 if finite else 0,
        n_baseline=0 if obs.baseline is None else 1,
        estimate={"canary": obs.canary, "baseline": obs.baseline} if finite else {},
        statistic=statistic,
        critical=spec.critical,
        weight=spec.weight,
        group=spec.group,
    )


def judge_threshold(spec: MetricSpec, obs: ThresholdObservation) -> MetricResult:
    bound, value = spec.bound, obs.canary
    if bound is None or (bound.min is None and bound.max is None):
        why = "the threshold metric has no bound to compare with"
        return _result(spec, obs, Verdict.ERROR, Classification.NODATA, why)
    if not math.isfinite(value):
        verdict = Verdict.ERROR if spec.must_have_data else Verdict.INCONCLUSIVE
        why = f"the canary value is {value} (no data)"
        return _result(spec, obs, verdict, Classification.NODATA, why)
    if bound.max is not None and value > bound.max:
        why = f"canary value {value:g} is above the bound {bound.max:g}"
        return _result(spec, obs, Verdict.FAIL, Classification.HIGH, why)
    if bound.min is not None and value < bound.min:
        why = f"canary value {value:g} is below the bound {bound.min:g}"
        return _result(spec, obs, Verdict.FAIL, Classification.LOW, why)
    why = f"canary value {value:g} is within its bounds"
    return _result(spec, obs, Verdict.PASS, Classification.PASS, why)
