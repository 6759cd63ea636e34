"""A fail is final: later looks keep ``fail`` whatever data is missing (docs/statistics.md)."""

from __future__ import annotations

from analyzer.domain.observation import (
    EventCount,
    MissingObservation,
    ProportionObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import AnalysisProfile, MetricSpec, ThresholdBound
from analyzer.domain.verdict import Classification, Direction, MetricKind, Verdict
from analyzer.judge import JudgeState, judge

ERRORS = MetricSpec(name="errors", kind=MetricKind.PROPORTION, critical=True, tolerance=0.001)
LATENCY_SLO = MetricSpec(name="p99", kind=MetricKind.THRESHOLD, bound=ThresholdBound(max=0.5))
PROFILE = AnalysisProfile(name="t", metrics=(ERRORS, LATENCY_SLO))
DOWN = MissingObservation(reason="prometheus: connection refused", source_error=True)


def prop(b: tuple[int, int], c: tuple[int, int]) -> ProportionObservation:
    return ProportionObservation(
        baseline=EventCount(events=b[0], total=b[1]), canary=EventCount(events=c[0], total=c[1])
    )


def _failed_first() -> JudgeState:
    first, state = judge(
        PROFILE,
        {"errors": prop((10, 20_000), (400, 20_000)), "p99": ThresholdObservation(canary=0.1)},
    )
    assert first.verdict is Verdict.FAIL
    assert state.failed is not None
    return state


def test_a_failed_metric_stays_fail_when_its_source_is_down() -> None:
    state = _failed_first()
    result, after = judge(PROFILE, {"errors": DOWN, "p99": DOWN}, state)
    errors = result.metrics[0]
    assert (result.verdict, errors.verdict, errors.classification) == (
        Verdict.FAIL,
        Verdict.FAIL,
        Classification.HIGH,
    )
    assert "a fail is final" in errors.reason
    assert "connection refused" in errors.reason
    assert "decided" not in result.reason or "final" in result.reason
    assert after == state  # nothing of the outage is counted


def test_a_failed_analysis_stays_fail_through_counter_resets_and_missing_metrics() -> None:
    state = _failed_first()
    reset = prop((1, 100), (1, 100))  # counts fell: a reset, the look cannot be judged
    result, _ = judge(PROFILE, {"errors": reset}, state)
    assert result.verdict is Verdict.FAIL
    assert result.metrics[0].verdict is Verdict.FAIL
    assert "fell" in result.metrics[0].reason


def test_a_failed_analysis_stays_fail_even_when_the_failing_metric_is_stateless() -> None:
    # A threshold (no sequential state) failed the analysis; later its data is missing and the
    # other metric is healthy: the analysis still answers fail, explaining the earlier fail.
    slo = MetricSpec(name="p99", kind=MetricKind.THRESHOLD, bound=ThresholdBound(max=0.5))
    profile = AnalysisProfile(name="t", metrics=(slo,))
    first, state = judge(profile, {"p99": ThresholdObservation(canary=0.9)})
    assert first.verdict is Verdict.FAIL
    later, _ = judge(profile, {"p99": DOWN}, state)
    assert later.verdict is Verdict.FAIL
    assert later.reason.startswith("failed earlier (")
    assert "a fail is final" in later.reason


def test_a_pass_is_not_kept_over_missing_data() -> None:
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION, tolerance=0.01, horizon=20_000)
    profile = AnalysisProfile(name="t", metrics=(spec,))
    passed, state = judge(profile, {"errors": prop((20, 20_000), (20, 20_000))})
    assert passed.verdict is Verdict.PASS
    missing, _ = judge(profile, {"errors": DOWN}, state)
    assert missing.verdict is Verdict.ERROR  # missing data never passes
    back, _ = judge(profile, {"errors": prop((21, 20_100), (21, 20_100))}, state)
    assert back.verdict is Verdict.PASS  # the pass stands on new data without harm


def test_decrease_metrics_keep_their_low_classification() -> None:
    spec = MetricSpec(
        name="approvals", kind=MetricKind.PROPORTION, direction=Direction.DECREASE, critical=True
    )
    profile = AnalysisProfile(name="t", metrics=(spec,))
    first, state = judge(profile, {"approvals": prop((9000, 10_000), (7000, 10_000))})
    assert first.verdict is Verdict.FAIL
    later, _ = judge(profile, {"approvals": DOWN}, state)
    assert later.metrics[0].classification is Classification.LOW


def test_the_failed_mark_round_trips_through_json() -> None:
    state = _failed_first()
    assert JudgeState.from_json(state.to_json()) == state
    old = state.to_json()
    del old["failed"]  # a state stored before the mark existed still loads
    assert JudgeState.from_json(old).failed is None
