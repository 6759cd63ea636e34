"""The synthetic source: deterministic, cumulative, and regressions show up where configured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    CategoricalObservation,
    HistogramObservation,
    MissingObservation,
    ProportionObservation,
    SamplesObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import MetricKind
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.metrics.synthetic.generator import latency_quantile

ORIGIN = datetime(2026, 11, 27, tzinfo=UTC)
MODEL = ModelRef(namespace="models", name="fraud")
Q = MetricQuery()
LATENCY = MetricSpec(name="latency", kind=MetricKind.HISTOGRAM)
ERRORS = MetricSpec(name="errors", kind=MetricKind.PROPORTION)
DECISIONS = MetricSpec(name="decisions", kind=MetricKind.CATEGORICAL, categories=("a", "r", "d"))


def source(seed: int = 1, **canary: object) -> SyntheticSource:
    return SyntheticSource(
        seed=seed,
        origin=ORIGIN,
        request_rate=20.0,
        revisions={
            "base": RevisionBehaviour(weight=0.9),
            "can": RevisionBehaviour(weight=0.1, **canary),  # type: ignore[arg-type]
        },
    )


def window(minutes: float) -> TimeWindow:
    return TimeWindow(start=ORIGIN, end=ORIGIN + timedelta(minutes=minutes))


def observe(src: SyntheticSource, spec: MetricSpec, minutes: float = 30) -> object:
    return src.observe(spec, Q, model=MODEL, baseline="base", canary="can", window=window(minutes))


def test_same_seed_same_evidence_other_seed_other_evidence() -> None:
    assert observe(source(1), LATENCY) == observe(source(1), LATENCY)
    assert observe(source(1), LATENCY) != observe(source(2), LATENCY)


def test_evidence_is_cumulative_and_scales_with_weight() -> None:
    early, late = observe(source(), ERRORS, 10), observe(source(), ERRORS, 40)
    assert isinstance(early, ProportionObservation)
    assert isinstance(late, ProportionObservation)
    assert late.canary.total >= early.canary.total
    assert late.canary.events >= early.canary.events
    # 90/10 traffic split: the baseline sees about nine times the canary's requests.
    assert 7 < late.baseline.total / late.canary.total < 11


def test_weight_schedule_changes_traffic_over_time() -> None:
    src = SyntheticSource(
        seed=3,
        origin=ORIGIN,
        request_rate=20.0,
        revisions={
            "base": RevisionBehaviour(weight=0.5),
            "can": RevisionBehaviour(weight=0.1, weight_schedule=((600.0, 0.5),)),
        },
    )
    first = src.observe(ERRORS, Q, model=MODEL, baseline="base", canary="can", window=window(10))
    second = src.observe(
        ERRORS,
        Q,
        model=MODEL,
        baseline="base",
        canary="can",
        window=TimeWindow(start=ORIGIN + timedelta(minutes=10), end=ORIGIN + timedelta(minutes=20)),
    )
    assert isinstance(first, ProportionObservation)
    assert isinstance(second, ProportionObservation)
    assert second.canary.total > 3 * first.canary.total


def test_latency_shift_moves_mass_to_higher_buckets() -> None:
    obs = observe(source(latency_shift=0.5), LATENCY, 60)
    assert isinstance(obs, HistogramObservation)

    def mean_bucket(counts: tuple[int, ...]) -> float:
        return sum(i * c for i, c in enumerate(counts)) / sum(counts)

    assert mean_bucket(obs.canary) > mean_bucket(obs.baseline) + 0.5


def test_error_rate_regression_and_decision_mix() -> None:
    errs = observe(source(error_rate=0.05), ERRORS, 60)
    assert isinstance(errs, ProportionObservation)
    assert errs.canary.events / errs.canary.total > 5 * errs.baseline.events / errs.baseline.total
    mix = observe(source(decision_mix=(0.5, 0.3, 0.2)), DECISIONS, 60)
    assert isinstance(mix, CategoricalObservation)
    assert mix.canary[0] / sum(mix.canary) < 0.6 < mix.baseline[0] / sum(mix.baseline)


def test_threshold_and_samples() -> None:
    p99 = observe(source(tail_fraction=0.05), MetricSpec(name="p99", kind=MetricKind.THRESHOLD))
    assert isinstance(p99, ThresholdObservation)
    assert p99.baseline is not None
    assert p99.canary > p99.baseline
    assert p99.baseline == pytest.approx(latency_quantile(RevisionBehaviour(), 0.99))
    cpu = observe(source(sample_mean=0.6), MetricSpec(name="cpu", kind=MetricKind.SAMPLES), 30)
    assert isinstance(cpu, SamplesObservation)
    assert len(cpu.canary) == 31  # one per 60 s step, both ends included like query_range
    assert sum(cpu.canary) / 31 > sum(cpu.baseline) / 31 + 0.1


def test_unknown_revision_and_empty_window_are_nodata() -> None:
    src = source()
    unknown = src.observe(
        LATENCY, Q, model=MODEL, baseline="base", canary="other", window=window(5)
    )
    assert isinstance(unknown, MissingObservation)
    assert not unknown.source_error
    before = TimeWindow(start=ORIGIN - timedelta(hours=2), end=ORIGIN - timedelta(hours=1))
    empty = src.observe(LATENCY, Q, model=MODEL, baseline="base", canary="can", window=before)
    assert isinstance(empty, MissingObservation)


def test_mismatched_decision_mix_is_nodata() -> None:
    spec = MetricSpec(name="decisions", kind=MetricKind.CATEGORICAL, categories=("a", "b"))
    assert isinstance(observe(source(), spec), MissingObservation)
