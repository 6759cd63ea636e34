"""The judge pipeline: validate -> test per kind -> per-metric verdict -> aggregate.

Pure: no I/O, no clock, no randomness. Observations are cumulative since the analysis start;
``state`` (returned by the previous call, or ``None`` at the first look) carries what the
sequential tests need, so the judge stays valid however many looks there are and whenever they
come. Judging the same observations twice with the same state returns the same result and state.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import cast

from analyzer.domain.observation import (
    MissingObservation,
    Observation,
    SamplesObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.result import AnalysisResult, MetricResult
from analyzer.domain.verdict import Classification, MetricKind, Verdict
from analyzer.judge.aggregate import (
    SEQUENTIAL_KINDS,
    allocate_alpha,
    fallback_score,
    overall_verdict,
)
from analyzer.judge.metric import judge_counts, kept_fail, missing
from analyzer.judge.state import JudgeState, MetricState
from analyzer.judge.threshold import judge_threshold


def _error(spec: MetricSpec, reason: str) -> MetricResult:
    return MetricResult(
        name=spec.name,
        kind=spec.kind,
        verdict=Verdict.ERROR,
        classification=Classification.NODATA,
        reason=reason,
        critical=spec.critical,
        weight=spec.weight,
        group=spec.group,
    )


def _samples(spec: MetricSpec, obs: SamplesObservation) -> MetricResult:
    try:
        module = importlib.import_module("analyzer.judge.samples")
    except ImportError:
        return _error(spec, "the samples judge is not installed")
    fn = cast(Callable[[MetricSpec, SamplesObservation], MetricResult], module.judge_samples)
    return fn(spec, obs)


def _score(results: Sequence[MetricResult], profile: AnalysisProfile) -> float:
    try:
        module = importlib.import_module("analyzer.judge.score")
    except ImportError:
        return fallback_score(results)
    fn = cast(Callable[[Sequence[MetricResult], Mapping[str, float] | None], float], module.score)
    return float(fn(results, dict(profile.group_weights) or None))


def _one(
    spec: MetricSpec,
    obs: Observation | None,
    prev: MetricState,
    *,
    alpha: float,
    canary_weight: float | None,
    bake_elapsed: float | None = None,
) -> tuple[MetricResult, MetricState, bool]:
    if obs is None:
        obs = MissingObservation(reason="no observation was supplied")
    if isinstance(obs, MissingObservation):
        result = missing(spec, obs)
        return kept_fail(spec, prev, result.reason) or result, prev, prev.srm
    if spec.kind is MetricKind.THRESHOLD:
        if not isinstance(obs, ThresholdObservation):
            return _error(spec, "a threshold metric needs a threshold observation"), prev, False
        return judge_threshold(spec, obs), prev, False
    if spec.kind is MetricKind.SAMPLES:
        if not isinstance(obs, SamplesObservation):
            return _error(spec, "a samples metric needs a samples observation"), prev, False
        return _samples(spec, obs), prev, False
    out = judge_counts(
        spec, obs, prev, alpha=alpha, canary_weight=canary_weight, bake_elapsed=bake_elapsed
    )
    return out.result, out.state, out.srm


def _final_fail(
    verdict: Verdict, reason: str, state: JudgeState, failed_before: str | None
) -> tuple[Verdict, str, JudgeState]:
    """A fail is final: once an analysis answered ``fail``, every later look does too, whatever
    data is missing (an outage must not turn a failed canary into ``error`` for Argo, or into
    "no rollback" for Flagger)."""
    if failed_before is not None:
        if verdict is Verdict.FAIL:
            return verdict, reason, state
        return (
            Verdict.FAIL,
            f"failed earlier ({failed_before}); a fail is final. Now: {reason}",
            state,
        )
    if verdict is Verdict.FAIL:
        return verdict, reason, replace(state, failed=reason)
    return verdict, reason, state


# kinds judged sequentially on cumulative counts: their state is carried from look to look
COUNTED_KINDS = SEQUENTIAL_KINDS


def judge(
    profile: AnalysisProfile,
    observations: Mapping[str, Observation],
    state: JudgeState | None = None,
) -> tuple[AnalysisResult, JudgeState]:
    """Judge one look of an analysis; return the verdict and the state for the next look."""
    state = state or JudgeState()
    failed_before = state.failed
    alphas = allocate_alpha(profile)
    results: list[MetricResult] = []
    srm: list[str] = []
    for spec in profile.metrics:
        weight = spec.canary_weight if spec.canary_weight is not None else profile.canary_weight
        result, metric_state, mismatch = _one(
            spec,
            observations.get(spec.name),
            state.metric(spec.name),
            alpha=alphas.get(spec.name, 0.0),
            canary_weight=weight,
            bake_elapsed=profile.bake_elapsed,
        )
        if spec.muted:
            result = replace(result, muted=True, reason=f"muted (reported, not counted): "
                             f"{result.reason}")  # fmt: skip
        results.append(result)
        if spec.kind in COUNTED_KINDS:
            state = state.with_metric(spec.name, metric_state)
        if mismatch and not spec.muted:
            srm.append(spec.name)
    must_have = {m.name: m.must_have_data for m in profile.metrics}
    # Kayenta's muted metrics: reported, never counted (verdict, critical rule, score).
    counted = [r for r in results if not r.muted]
    verdict, reason = overall_verdict(counted, must_have, srm)
    verdict, reason, state = _final_fail(verdict, reason, state, failed_before)
    warnings = tuple(
        f"sample-ratio mismatch on '{name}': observed split departs from the expected canary weight"
        for name in srm
    )
    analysis = AnalysisResult(
        verdict=verdict,
        score=max(0.0, min(100.0, _score(counted, profile))),
        reason=reason,
        metrics=tuple(results),
        alpha=profile.alpha,
        warnings=warnings,
    )
    return analysis, state
