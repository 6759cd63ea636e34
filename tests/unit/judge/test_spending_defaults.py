"""Per-kind sequential defaults with a horizon: which spending, and how alpha is split."""

from __future__ import annotations

import pytest

from analyzer.domain.observation import (
    CategoricalObservation,
    EventCount,
    HistogramObservation,
    Observation,
    ProportionObservation,
)
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import MetricKind
from analyzer.judge import judge

CATS = ("approve", "review", "decline")
BOUNDS = (0.05, 0.1, 0.25, float("inf"))


def _first_look(spec: MetricSpec, obs: Observation) -> dict[str, object]:
    result, _ = judge(AnalysisProfile(name="p", metrics=(spec,), alpha=0.05), {spec.name: obs})
    return dict(result.metrics[0].statistic)


@pytest.mark.parametrize(
    ("spec", "obs", "spending", "reserve_threshold"),
    [
        (
            MetricSpec(name="m", kind=MetricKind.PROPORTION, horizon=10_000, tolerance=0.001),
            ProportionObservation(
                baseline=EventCount(events=1, total=1_000), canary=EventCount(events=2, total=1_000)
            ),
            "pocock",
            200.0,  # 10 % of alpha: 1 / 0.005
        ),
        (
            # tolerance 0: the exact conditional test, hsd:2.5 with a fifth of alpha in reserve
            MetricSpec(name="m", kind=MetricKind.PROPORTION, horizon=10_000),
            ProportionObservation(
                baseline=EventCount(events=1, total=1_000), canary=EventCount(events=2, total=1_000)
            ),
            "hsd:2.5",
            100.0,  # 20 % of alpha: 1 / 0.01
        ),
        (
            MetricSpec(name="m", kind=MetricKind.HISTOGRAM, horizon=10_000),
            HistogramObservation(
                bounds=BOUNDS, baseline=(500, 300, 150, 50), canary=(510, 290, 150, 50)
            ),
            "hsd:0",
            80.0,  # a quarter of alpha
        ),
        (
            MetricSpec(
                name="m", kind=MetricKind.CATEGORICAL, categories=CATS, ordered=True, horizon=10_000
            ),
            CategoricalObservation(categories=CATS, baseline=(900, 70, 30), canary=(895, 72, 33)),
            "hsd:0",
            80.0,
        ),
        (
            MetricSpec(name="m", kind=MetricKind.CATEGORICAL, categories=CATS, horizon=10_000),
            CategoricalObservation(categories=CATS, baseline=(900, 70, 30), canary=(895, 72, 33)),
            "hsd:-2",
            80.0,
        ),
    ],
)
def test_each_kind_reports_its_default_spending_and_reserve(
    spec: MetricSpec, obs: Observation, spending: str, reserve_threshold: float
) -> None:
    statistic = _first_look(spec, obs)
    assert statistic["spending"] == spending
    reserve = statistic["reserve_e_process"]
    assert isinstance(reserve, dict)
    assert reserve["threshold"] == pytest.approx(reserve_threshold)


def test_a_metric_spending_setting_overrides_the_kind_default() -> None:
    spec = MetricSpec(name="m", kind=MetricKind.PROPORTION, horizon=10_000, spending="hsd:1")
    obs = ProportionObservation(
        baseline=EventCount(events=1, total=1_000), canary=EventCount(events=2, total=1_000)
    )
    assert _first_look(spec, obs)["spending"] == "hsd:1"


def test_proportions_with_a_tolerance_spend_ninety_percent_of_alpha_by_the_horizon() -> None:
    spec = MetricSpec(name="m", kind=MetricKind.PROPORTION, horizon=1_000, tolerance=0.001)
    obs = ProportionObservation(
        baseline=EventCount(events=1, total=1_000), canary=EventCount(events=1, total=1_000)
    )
    components = _first_look(spec, obs)["components"]
    assert isinstance(components, dict)
    assert components["rate"]["alpha_spent"] == pytest.approx(0.045)


def test_the_exact_test_spends_only_what_its_discrete_counts_allow() -> None:
    """At the horizon with 30 errors (10 + 20), the exact one-sided binomial test at 80 % of
    alpha (0.04) fails from 20 canary errors on: P(Bin(30, 1/2) >= 20) = 0.0494 > 0.04 >=
    P(>= 21) = 0.0214, which is what it spends."""
    spec = MetricSpec(name="m", kind=MetricKind.PROPORTION, horizon=1_000)
    obs = ProportionObservation(
        baseline=EventCount(events=10, total=1_000), canary=EventCount(events=20, total=1_000)
    )
    part = _first_look(spec, obs)["components"]
    assert isinstance(part, dict)
    rate = part["rate"]
    assert rate["test"] == "exact conditional"
    assert rate["boundary_events"] == 21
    assert rate["alpha_spent"] == pytest.approx(0.021387, abs=1e-6)
