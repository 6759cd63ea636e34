"""The MetricSource contract (analyzer/metrics/base.py), run against every implementation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import promserver
import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    CategoricalObservation,
    HistogramObservation,
    MissingObservation,
    Observation,
    ProportionObservation,
    SamplesObservation,
    ThresholdObservation,
)
from analyzer.domain.verdict import MetricKind
from analyzer.metrics.base import BatchedMetricSource, MetricSource, TimeWindow
from analyzer.profiles import LoadedProfile, load_profile

PROFILE = load_profile(Path(__file__).with_name("profile.yaml"))
# The same six metrics in Datadog's query language (same names and kinds).
DATADOG_PROFILE = load_profile(Path(__file__).with_name("profile-datadog.yaml"))
MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
EXPECTED_TYPE: dict[MetricKind, type] = {
    MetricKind.HISTOGRAM: HistogramObservation,
    MetricKind.PROPORTION: ProportionObservation,
    MetricKind.CATEGORICAL: CategoricalObservation,
    MetricKind.SAMPLES: SamplesObservation,
    MetricKind.THRESHOLD: ThresholdObservation,
}
COUNTER_KINDS = (MetricKind.HISTOGRAM, MetricKind.PROPORTION, MetricKind.CATEGORICAL)


@dataclass(frozen=True)
class Case:
    name: str
    source: MetricSource
    profile: LoadedProfile
    end: datetime
    baseline: str = "fraud-00001"
    canary: str = "fraud-00003"
    unknown: str = "fraud-09999"

    def window(self, minutes: float) -> TimeWindow:
        return TimeWindow.ending(self.end, timedelta(minutes=minutes))

    def observe(self, metric: str, window: TimeWindow, canary: str | None = None) -> Observation:
        spec = next(m for m in self.profile.profile.metrics if m.name == metric)
        return self.source.observe(
            spec,
            self.profile.queries[metric],
            model=MODEL,
            baseline=self.baseline,
            canary=self.canary if canary is None else canary,
            window=window,
        )


@pytest.fixture(params=["synthetic", "prometheus", "datadog"])
def case(request: pytest.FixtureRequest, scenario: promserver.Scenario) -> Case:
    source = request.getfixturevalue(f"{request.param}_source")
    profile = DATADOG_PROFILE if request.param == "datadog" else PROFILE
    return Case(name=request.param, source=source, profile=profile, end=scenario.end)


METRICS = [m.name for m in PROFILE.profile.metrics]
KINDS = {m.name: m.kind for m in PROFILE.profile.metrics}


def test_the_profile_covers_every_kind() -> None:
    # ``paired`` (a shadow run's decisions, issue 15) has its own suite against all three
    # sources, test_paired_prometheus.py (the shared profile here feeds other tests' fixed
    # metric lists).
    assert set(KINDS.values()) == set(MetricKind) - {MetricKind.PAIRED}


def test_the_datadog_profile_has_the_same_metrics_and_kinds() -> None:
    assert {m.name: m.kind for m in DATADOG_PROFILE.profile.metrics} == KINDS


def test_implements_the_protocol(case: Case) -> None:
    assert isinstance(case.source, MetricSource)


@pytest.mark.parametrize("metric", METRICS)
def test_returns_the_observation_of_the_metrics_kind(case: Case, metric: str) -> None:
    obs = case.observe(metric, case.window(60))
    assert isinstance(obs, EXPECTED_TYPE[KINDS[metric]]), obs


@pytest.mark.parametrize("metric", [m for m in METRICS if KINDS[m] in COUNTER_KINDS])
def test_counts_are_cumulative_since_the_window_start(case: Case, metric: str) -> None:
    start = case.end - timedelta(minutes=60)
    early = case.observe(metric, TimeWindow(start=start, end=start + timedelta(minutes=20)))
    late = case.observe(metric, TimeWindow(start=start, end=case.end))
    assert total(late, "canary") > total(early, "canary")
    assert total(late, "baseline") > total(early, "baseline")


def total(obs: Observation, arm: str) -> int:
    """Requests (or events' total) of one arm, whatever the counter kind."""
    if isinstance(obs, ProportionObservation):
        return (obs.canary if arm == "canary" else obs.baseline).total
    assert isinstance(obs, HistogramObservation | CategoricalObservation), obs
    return sum(obs.canary if arm == "canary" else obs.baseline)


@pytest.mark.parametrize("metric", METRICS)
def test_same_question_same_answer(case: Case, metric: str) -> None:
    window = case.window(30)
    assert case.observe(metric, window) == case.observe(metric, window)


@pytest.mark.parametrize("metric", METRICS)
def test_unknown_revision_is_nodata_not_an_exception(case: Case, metric: str) -> None:
    obs = case.observe(metric, case.window(60), canary=case.unknown)
    assert isinstance(obs, MissingObservation)
    assert not obs.source_error
    assert obs.reason


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("bad", ['fraud"}', "FRAUD", "a\nb", "x,y", ""])
def test_invalid_revision_raises_invalid_input(case: Case, metric: str, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        case.observe(metric, case.window(60), canary=bad)


@pytest.mark.parametrize("metric", [m for m in METRICS if KINDS[m] in COUNTER_KINDS])
def test_window_before_any_data_is_nodata(case: Case, metric: str) -> None:
    window = TimeWindow.ending(case.end - timedelta(days=2), timedelta(hours=1))
    obs = case.observe(metric, window)
    assert isinstance(obs, MissingObservation)


def test_safe_to_call_from_several_threads(case: Case) -> None:
    window = case.window(60)
    expected = {m: case.observe(m, window) for m in METRICS}
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = dict(
            zip(METRICS * 3, pool.map(lambda m: case.observe(m, window), METRICS * 3), strict=True)
        )
    assert got == expected


# --- BatchedMetricSource (a source MAY read several metrics together) ---------------------------

BATCHING = ["prometheus"]  # the implementations that are BatchedMetricSource


def test_the_batching_sources_are_the_ones_listed(case: Case) -> None:
    # a source that starts batching joins the contract below by being listed here
    assert isinstance(case.source, BatchedMetricSource) is (case.name in BATCHING)


@pytest.fixture(params=BATCHING)
def batching(request: pytest.FixtureRequest, scenario: promserver.Scenario) -> Case:
    source = request.getfixturevalue(f"{request.param}_source")
    return Case(name=request.param, source=source, profile=PROFILE, end=scenario.end)


def observe_many(case: Case, canary: str, window: TimeWindow) -> dict[str, Observation]:
    assert isinstance(case.source, BatchedMetricSource)
    metrics = [(s, case.profile.queries[s.name]) for s in case.profile.profile.metrics]
    return case.source.observe_many(
        metrics, model=MODEL, baseline=case.baseline, canary=canary, window=window
    )


@pytest.mark.parametrize("canary", ["fraud-00003", "fraud-00008", "fraud-09999"])
def test_a_batch_observes_what_each_metric_observes_alone(batching: Case, canary: str) -> None:
    window = batching.window(60)
    alone = {m: batching.observe(m, window, canary=canary) for m in METRICS}
    together = observe_many(batching, canary, window)
    assert list(together) == METRICS
    assert together == alone


@pytest.mark.parametrize("bad", ['fraud"}', "FRAUD", ""])
def test_a_batch_refuses_an_invalid_revision(batching: Case, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        observe_many(batching, bad, batching.window(60))


def test_batches_are_safe_to_ask_from_several_threads(batching: Case) -> None:
    window = batching.window(45)
    expected = observe_many(batching, batching.canary, window)
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda _: observe_many(batching, batching.canary, window), range(8)))
    assert got == [expected] * 8
