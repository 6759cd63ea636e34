"""Scoring: Kayenta's ScorerSuite reproduced, and where we deliberately fail closed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.result import MetricResult
from analyzer.domain.verdict import Classification, MetricKind, Verdict
from analyzer.judge.score import score, score_report

DATA = Path(__file__).resolve().parents[2] / "data" / "kayenta_classifier_cases.json"
PARITY: dict[str, Any] = json.loads(DATA.read_text())

# How a Kayenta label reads as one of our results (see analyzer/judge/score.py).
LABELS = {
    "Pass": (Classification.PASS, Verdict.PASS),
    "High": (Classification.HIGH, Verdict.FAIL),
    "Low": (Classification.LOW, Verdict.FAIL),
    "Nodata": (Classification.NODATA, Verdict.INCONCLUSIVE),
    "NodataFailMetric": (Classification.NODATA, Verdict.ERROR),
}


def _result(
    label: str,
    group: str | None = "g",
    *,
    critical: bool = False,
    weight: float = 1.0,
    name: str = "m",
) -> MetricResult:
    classification, verdict = LABELS[label]
    return MetricResult(
        name=name,
        kind=MetricKind.SAMPLES,
        verdict=verdict,
        classification=classification,
        reason=f"{name} is {label}.",
        critical=critical,
        weight=weight,
        group=group,
    )


def _other(verdict: Verdict, classification: Classification = Classification.PASS) -> MetricResult:
    return MetricResult(
        name="other",
        kind=MetricKind.PROPORTION,
        verdict=verdict,
        classification=classification,
        reason="x.",
        group="g",
    )


def test_parity_data_holds_every_kayenta_scorer_suite_case() -> None:
    assert len(PARITY["scorer_cases"]) == 13


@pytest.mark.parametrize("case", PARITY["scorer_cases"], ids=lambda c: c["name"])
def test_kayenta_scorer_suite_is_reproduced(case: dict[str, Any]) -> None:
    results = []
    for i, r in enumerate(case["results"]):
        (group,) = r["groups"]  # every Kayenta test metric sits in exactly one group
        results.append(_result(r["label"], group, critical=r["critical"], name=f"m{i}"))
    report = score_report(results, case["group_weights"])
    assert report.score == case["expected_score"]
    assert score(results, case["group_weights"]) == case["expected_score"]
    if "expected_group_scores" in case:
        assert {g.name: g.score for g in report.groups} == case["expected_group_scores"]


def test_no_results_score_zero() -> None:
    assert score([]) == 0.0


def test_required_but_missing_data_counts_as_a_failure_not_as_nodata() -> None:
    results = [_result("Pass"), _result("NodataFailMetric")]
    assert score(results) == 50.0


def test_an_errored_metric_counts_against_its_group_where_kayenta_ignores_it() -> None:
    errored = _other(Verdict.ERROR)
    assert score([_result("Pass"), errored]) == 50.0


def test_an_undecided_metric_counts_against_its_group() -> None:
    assert score([_result("Pass"), _result("Pass"), _other(Verdict.INCONCLUSIVE)]) == 66.67


def test_a_critical_metric_that_is_not_passed_zeroes_the_score() -> None:
    critical_undecided = MetricResult(
        name="c",
        kind=MetricKind.SAMPLES,
        verdict=Verdict.INCONCLUSIVE,
        classification=Classification.PASS,
        reason="zero baseline.",
        critical=True,
        group="g",
    )
    report = score_report([_result("Pass"), critical_undecided])
    assert report.score == 0.0
    assert "Critical metric c" in report.reason


def test_half_nodata_zeroes_the_score_but_less_does_not() -> None:
    assert score([_result("Pass", "a"), _result("Nodata", "b")]) == 0.0
    assert score([_result("Pass", "a"), _result("Pass", "a"), _result("Nodata", "b")]) == 100.0


def test_unweighted_groups_share_what_configured_weights_leave() -> None:
    results = [_result("Pass", "a"), _result("High", "b"), _result("Pass", "c")]
    # a has 40; b and c share the remaining 60 equally: 40 + 0 + 30.
    assert score(results, {"a": 40.0}) == 70.0


def test_ungrouped_results_form_their_own_group() -> None:
    results = [_result("Pass", None), _result("High", "a")]
    report = score_report(results, {"a": 50.0})
    assert report.score == 50.0
    assert {g.name for g in report.groups} == {None, "a"}


def test_metric_weights_weigh_results_inside_their_group() -> None:
    results = [_result("Pass", weight=3.0), _result("High", weight=1.0)]
    assert score(results) == 75.0


def test_score_rounds_half_up_like_kayenta() -> None:
    results = [_result("Pass", "a"), _result("High", "b")]
    # 100 x 0.125 / 100 = 0.125: half-up gives 0.13 where round-half-even would give 0.12.
    assert score(results, {"a": 0.125, "b": 99.875}) == 0.13


@pytest.mark.parametrize(
    ("weights", "field"),
    [({"a": -1.0}, "group_weights.a"), ({"a": 60.0, "b": 50.0}, "group_weights")],
)
def test_invalid_group_weights_are_refused(weights: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        score([_result("Pass", "a")], weights)
    assert raised.value.field == field


def test_negative_metric_weight_is_refused() -> None:
    with pytest.raises(InvalidInputError) as raised:
        score([_result("Pass", weight=-1.0, name="cpu")])
    assert raised.value.field == "cpu.weight"
