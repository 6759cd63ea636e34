"""judge() on literal proportion, histogram and categorical data."""

from __future__ import annotations

import math

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import (
    CategoricalObservation,
    EventCount,
    HistogramObservation,
    MissingObservation,
    Observation,
    ProportionObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import AnalysisProfile, MetricSpec, ThresholdBound
from analyzer.domain.verdict import Classification, Direction, MetricKind, Verdict
from analyzer.judge import JudgeState, judge

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, math.inf)


def prop(b: tuple[int, int], c: tuple[int, int]) -> ProportionObservation:
    return ProportionObservation(
        baseline=EventCount(events=b[0], total=b[1]), canary=EventCount(events=c[0], total=c[1])
    )


def one(spec: MetricSpec, obs: Observation, state: JudgeState | None = None, **kw: object):  # type: ignore[no-untyped-def]
    profile = AnalysisProfile(name="t", metrics=(spec,), **kw)  # type: ignore[arg-type]
    return judge(profile, {spec.name: obs}, state)


ERRORS = MetricSpec(name="errors", kind=MetricKind.PROPORTION)


def test_clear_error_regression_fails_high_with_an_explanation() -> None:
    result, _ = one(ERRORS, prop((10, 20_000), (90, 20_000)))
    m = result.metrics[0]
    assert (result.verdict, m.verdict, m.classification) == (
        Verdict.FAIL,
        Verdict.FAIL,
        Classification.HIGH,
    )
    assert "crossed its boundary" in m.reason
    assert m.n_baseline == m.n_canary == 20_000
    lo, hi = m.estimate["intervals"]["rate"]
    assert 0 < lo < 80 / 20_000 < hi


def test_zero_count_baseline_with_canary_errors_never_passes() -> None:
    strong, _ = one(ERRORS, prop((0, 5000), (30, 5000)))
    weak, _ = one(ERRORS, prop((0, 1000), (1, 1000)))
    assert strong.verdict is Verdict.FAIL
    assert weak.verdict is not Verdict.PASS
    assert weak.metrics[0].classification is Classification.PASS  # Kayenta: no significant change


def test_zeros_in_both_arms_without_a_horizon_stay_inconclusive() -> None:
    result, _ = one(ERRORS, prop((0, 10_000), (0, 10_000)))
    assert result.verdict is Verdict.INCONCLUSIVE


def test_tolerance_lets_the_confidence_sequence_pass_a_healthy_canary() -> None:
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION, tolerance=0.005)
    result, _ = one(spec, prop((100, 100_000), (100, 100_000)))
    assert result.verdict is Verdict.PASS
    assert "rules out harm" in result.metrics[0].reason


def test_horizon_reached_without_harm_passes_and_with_harm_fails() -> None:
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION, horizon=10_000)
    early, state = one(spec, prop((10, 5000), (11, 5000)))
    assert early.verdict is Verdict.INCONCLUSIVE
    done, _ = one(spec, prop((20, 10_000), (21, 10_000)), state)
    assert done.verdict is Verdict.PASS
    assert "horizon" in done.metrics[0].reason
    bad, _ = one(spec, prop((20, 10_000), (60, 10_000)), state)
    assert bad.verdict is Verdict.FAIL


def test_decrease_direction_fails_low() -> None:
    spec = MetricSpec(name="approvals", kind=MetricKind.PROPORTION, direction=Direction.DECREASE)
    result, _ = one(spec, prop((5000, 10_000), (4000, 10_000)))
    assert result.metrics[0].classification is Classification.LOW
    assert result.verdict is Verdict.FAIL


def test_either_direction_catches_both_sides() -> None:
    spec = MetricSpec(name="rate", kind=MetricKind.PROPORTION, direction=Direction.EITHER)
    up, _ = one(spec, prop((100, 10_000), (300, 10_000)))
    down, _ = one(spec, prop((300, 10_000), (100, 10_000)))
    assert up.metrics[0].classification is Classification.HIGH
    assert down.metrics[0].classification is Classification.LOW


def test_counter_reset_is_an_error_and_leaves_the_state_untouched() -> None:
    _, state = one(ERRORS, prop((5, 1000), (5, 1000)))
    result, after = one(ERRORS, prop((5, 1000), (2, 900)), state)
    assert result.verdict is Verdict.ERROR
    assert "fell from" in result.metrics[0].reason
    assert after.to_json() == state.to_json()


def test_judging_the_same_look_twice_changes_nothing() -> None:
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION, horizon=50_000)
    _, s1 = one(spec, prop((5, 1000), (7, 1000)))
    r2, s2 = one(spec, prop((9, 3000), (15, 3000)), s1)
    r3, s3 = one(spec, prop((9, 3000), (15, 3000)), s2)
    assert r3.to_json() == r2.to_json()
    assert s3.to_json() == s2.to_json()
    assert s3.metric("errors").looks == 2


def test_a_fail_is_sticky_across_later_looks() -> None:
    _, state = one(ERRORS, prop((10, 20_000), (90, 20_000)))
    later, _ = one(ERRORS, prop((200, 400_000), (230, 400_000)), state)
    assert later.verdict is Verdict.FAIL
    assert "decided at look 1" in later.metrics[0].reason


def test_state_round_trips_through_json() -> None:
    spec = MetricSpec(name="latency", kind=MetricKind.HISTOGRAM, horizon=20_000)
    obs = HistogramObservation(
        bounds=BOUNDS,
        baseline=(500, 3000, 1200, 250, 40, 9, 1),
        canary=(480, 3010, 1190, 270, 41, 8, 1),
    )
    _, state = one(spec, obs)
    again = JudgeState.from_json(state.to_json())
    assert again == state
    assert again.metric("latency").tail_bounds


def test_missing_data_is_error_or_nodata_and_never_passes() -> None:
    lat = MetricSpec(name="lat", kind=MetricKind.HISTOGRAM, must_have_data=False)
    profile = AnalysisProfile(
        name="t",
        metrics=(MetricSpec(name="errors", kind=MetricKind.PROPORTION, tolerance=0.01), lat),
    )
    healthy = prop((100, 100_000), (100, 100_000))
    ok, _ = judge(profile, {"errors": healthy, "lat": MissingObservation(reason="empty")})
    assert ok.verdict is Verdict.PASS  # an optional metric without data does not block
    assert ok.metrics[1].classification is Classification.NODATA
    err, _ = judge(profile, {"lat": MissingObservation(reason="timeout", source_error=True)})
    assert err.verdict is Verdict.ERROR
    assert err.metrics[0].reason.startswith("no data")
    alone, _ = judge(
        AnalysisProfile(name="t", metrics=(lat,)), {"lat": MissingObservation(reason="none")}
    )
    assert alone.verdict is Verdict.INCONCLUSIVE


def test_empty_series_is_nodata_not_a_pass() -> None:
    spec = MetricSpec(name="d", kind=MetricKind.CATEGORICAL, categories=("a", "b"), tolerance=0.5)
    obs = CategoricalObservation(categories=("a", "b"), baseline=(0, 0), canary=(0, 0))
    result, state = one(spec, obs)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.metrics[0].classification is Classification.NODATA
    assert state.metric("d").looks == 0


def test_sample_ratio_mismatch_is_flagged_and_fails_closed() -> None:
    result, state = one(ERRORS, prop((10, 30_000), (10, 10_000)), canary_weight=0.5)
    assert result.verdict is Verdict.ERROR
    assert result.warnings
    assert "sample-ratio" in result.warnings[0]
    assert state.metric("errors").srm
    fine, _ = one(ERRORS, prop((10, 10_100), (10, 9_900)), canary_weight=0.5)
    assert not fine.warnings


def test_histogram_tail_regression_fails_and_reports_quantiles() -> None:
    spec = MetricSpec(name="latency", kind=MetricKind.HISTOGRAM, tolerance=0.1)
    base = (20_000, 50_000, 22_000, 6_000, 1_500, 400, 100)
    canary = (19_000, 48_000, 21_500, 6_000, 2_000, 2_500, 1_000)
    result, state = one(spec, HistogramObservation(bounds=BOUNDS, baseline=base, canary=canary))
    m = result.metrics[0]
    assert m.verdict is Verdict.FAIL
    assert m.estimate["p99"]["canary"] > m.estimate["p99"]["baseline"]
    assert {q for q, _ in state.metric("latency").tail_bounds} == {0.9, 0.99}


def test_histogram_identical_arms_pass_once_the_tail_is_pinned_down() -> None:
    spec = MetricSpec(name="latency", kind=MetricKind.HISTOGRAM, tolerance=0.1)
    counts = (20_000, 50_000, 22_000, 6_000, 1_500, 400, 100)
    small, _ = one(spec, HistogramObservation(bounds=BOUNDS, baseline=counts, canary=counts))
    # the p99 bucket is coarse: 100k requests cannot yet rule out a 10 % tail regression
    assert small.verdict is Verdict.INCONCLUSIVE
    big = tuple(10 * c for c in counts)
    large, _ = one(spec, HistogramObservation(bounds=BOUNDS, baseline=big, canary=big))
    assert large.verdict is Verdict.PASS


def test_ordered_decisions_shift_fails_and_reports_psi() -> None:
    cats = ("approve", "review", "decline")
    spec = MetricSpec(name="mix", kind=MetricKind.CATEGORICAL, categories=cats, ordered=True)
    obs = CategoricalObservation(
        categories=cats, baseline=(18_000, 1_400, 600), canary=(17_000, 1_800, 1_200)
    )
    result, _ = one(spec, obs)
    m = result.metrics[0]
    assert m.verdict is Verdict.FAIL
    assert m.estimate["psi"] > 0
    assert m.estimate["ordinal_effect"] > 0


def test_unordered_decisions_use_the_omnibus_test() -> None:
    cats = ("a", "b", "c")
    spec = MetricSpec(name="mix", kind=MetricKind.CATEGORICAL, categories=cats)
    same = CategoricalObservation(categories=cats, baseline=(900, 70, 30), canary=(900, 70, 30))
    moved = CategoricalObservation(
        categories=cats, baseline=(9000, 700, 300), canary=(8000, 1500, 500)
    )
    assert one(spec, same)[0].verdict is Verdict.INCONCLUSIVE
    moved_result = one(spec, moved)[0]
    assert moved_result.verdict is Verdict.FAIL
    assert moved_result.metrics[0].statistic["method"] == "e-process (omnibus)"


def test_wrong_observation_type_is_an_error_result() -> None:
    obs = CategoricalObservation(categories=("a", "b"), baseline=(1, 2), canary=(1, 2))
    result, _ = one(ERRORS, obs)
    assert result.verdict is Verdict.ERROR


@pytest.mark.parametrize("weights", [(1.0, 1.0), (3.0, 1.0)])
def test_alpha_is_shared_by_weight(weights: tuple[float, float]) -> None:
    specs = tuple(
        MetricSpec(name=f"m{i}", kind=MetricKind.PROPORTION, weight=w)
        for i, w in enumerate(weights)
    )
    profile = AnalysisProfile(name="t", metrics=specs, alpha=0.04)
    obs = {s.name: prop((5, 1000), (5, 1000)) for s in specs}
    result, _ = judge(profile, obs)
    alphas = [m.statistic["alpha"] for m in result.metrics]
    assert sum(alphas) == pytest.approx(0.04)
    assert alphas[0] / alphas[1] == pytest.approx(weights[0] / weights[1])


@pytest.mark.parametrize(
    ("value", "verdict", "cls"),
    [
        (0.0065, Verdict.PASS, Classification.PASS),
        (0.0081, Verdict.FAIL, Classification.HIGH),
        (0.0009, Verdict.FAIL, Classification.LOW),
        (math.nan, Verdict.ERROR, Classification.NODATA),
    ],
)
def test_threshold_compares_the_canary_with_its_bounds(
    value: float, verdict: Verdict, cls: Classification
) -> None:
    spec = MetricSpec(
        name="p99", kind=MetricKind.THRESHOLD, bound=ThresholdBound(min=0.001, max=0.008)
    )
    result, _ = one(spec, ThresholdObservation(canary=value))
    m = result.metrics[0]
    assert (m.verdict, m.classification) == (verdict, cls)
    assert result.verdict is verdict


def test_unusable_settings_give_an_error_result_not_an_exception() -> None:
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION, mixture_scale=-1.0)
    result, _ = one(spec, prop((5, 1000), (5, 1000)))
    assert result.verdict is Verdict.ERROR
    assert "mixture_scale" in result.metrics[0].reason
    bad_spending = MetricSpec(name="errors", kind=MetricKind.PROPORTION, spending="fast")
    assert one(bad_spending, prop((5, 1000), (5, 1000)))[0].verdict is Verdict.ERROR


def test_corrupt_state_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        JudgeState.from_json({"version": 1, "metrics": {"m": {"boundaries": {"x": {}}}}})
    with pytest.raises(InvalidInputError):
        JudgeState.from_json({"version": 99})
