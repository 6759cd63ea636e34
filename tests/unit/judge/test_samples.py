"""The samples kind: Kayenta ClassifierSuite parity, deliberate differences, settings, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import SamplesObservation
from analyzer.domain.profile import EffectSize, MetricSpec
from analyzer.domain.verdict import Classification, Direction, MetricKind, Verdict
from analyzer.judge.samples import default_effect_size, judge_samples

DATA = Path(__file__).resolve().parents[2] / "data" / "kayenta_classifier_cases.json"
PARITY: dict[str, Any] = json.loads(DATA.read_text())

# Kayenta's label -> what we report when we do not deliberately differ.
MAPPED = {
    "Pass": (Classification.PASS, Verdict.PASS),
    "High": (Classification.HIGH, Verdict.FAIL),
    "Low": (Classification.LOW, Verdict.FAIL),
}


def _values(name_or_values: str | list[float | None]) -> tuple[float, ...]:
    values = PARITY["arrays"][name_or_values] if isinstance(name_or_values, str) else name_or_values
    return tuple(math.nan if v is None else float(v) for v in values)


def _spec(settings: dict[str, Any], name: str = "m") -> MetricSpec:
    effect = settings["effect_size"]
    return MetricSpec(
        name=name,
        kind=MetricKind.SAMPLES,
        direction=Direction(settings["direction"]),
        tolerance=settings["tolerance"],
        confidence=settings["confidence"],
        nan_strategy=settings["nan_strategy"],
        critical=settings["critical"],
        must_have_data=settings["must_have_data"],
        effect_size=EffectSize(**effect) if effect else None,
    )


def _judge(case: dict[str, Any]) -> Any:
    obs = SamplesObservation(baseline=_values(case["baseline"]), canary=_values(case["canary"]))
    return judge_samples(_spec(case["settings"], case["name"]), obs)


def _spec_with(**changes: Any) -> MetricSpec:
    base: dict[str, Any] = {"name": "cpu", "kind": MetricKind.SAMPLES, "must_have_data": False}
    return MetricSpec(**(base | changes))


CASES = PARITY["classifier_cases"] + PARITY["behaviour_cases"]


def test_parity_data_holds_every_kayenta_classifier_suite_case() -> None:
    assert len(PARITY["classifier_cases"]) == 34
    assert len({c["name"] for c in PARITY["classifier_cases"]}) == 34


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_kayenta_classification_is_reproduced(case: dict[str, Any]) -> None:
    result = _judge(case)
    expected = case["kayenta"]
    assert result.statistic["kayenta_classification"] == expected["classification"]
    if "critical" in expected:
        assert result.critical is expected["critical"]
    if expected.get("deviation") == "nan":
        assert result.estimate["mean_ratio"] is None
    elif "deviation" in expected:
        assert result.estimate["mean_ratio"] == expected["deviation"]
    if expected.get("reason_not_empty"):
        assert result.reason


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_our_classification_and_verdict(case: dict[str, Any]) -> None:
    result = _judge(case)
    if "ours" in case:
        expected = (
            Classification(case["ours"]["classification"]),
            Verdict(case["ours"]["verdict"]),
        )
    else:
        expected = MAPPED[case["kayenta"]["classification"]]
    assert (result.classification, result.verdict) == expected
    assert result.reason.endswith(".")
    json.dumps(result.to_json(), allow_nan=False)  # the public JSON has no NaN


def test_kayenta_passes_a_zero_baseline_against_canary_errors_but_we_do_not() -> None:
    result = judge_samples(
        _spec_with(tolerance=0.25, direction=Direction.INCREASE),
        SamplesObservation(baseline=(0.0,) * 6, canary=(0.0, 1.0, 2.0, 1.0, 0.0, 0.0)),
    )
    assert result.statistic["kayenta_classification"] == "Pass"
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "Kayenta would pass" in result.reason


def test_a_canary_of_zeros_is_only_suspicious_when_a_decrease_is_harmful() -> None:
    obs = SamplesObservation(baseline=(0.0, 1.0, 2.0, 1.0, 0.0, 0.0), canary=(0.0,) * 6)
    harmful = judge_samples(_spec_with(direction=Direction.DECREASE), obs)
    allowed = judge_samples(_spec_with(direction=Direction.INCREASE), obs)
    assert harmful.verdict is Verdict.INCONCLUSIVE
    assert allowed.verdict is Verdict.PASS


def test_a_significant_shift_in_an_allowed_direction_passes_and_says_so() -> None:
    obs = SamplesObservation(
        baseline=_values("C_LOW10"), canary=_values("E_HIGH20")
    )  # canary about twice the baseline
    result = judge_samples(_spec_with(direction=Direction.DECREASE, tolerance=0.1), obs)
    assert (result.classification, result.verdict) == (Classification.PASS, Verdict.PASS)
    assert "significantly higher" in result.reason
    assert "allows" in result.reason


@pytest.mark.parametrize(
    ("must_have_data", "critical", "verdict", "kayenta"),
    [
        (False, False, Verdict.INCONCLUSIVE, "Nodata"),
        (True, False, Verdict.ERROR, "NodataFailMetric"),
        (False, True, Verdict.ERROR, "Nodata"),
    ],
)
def test_no_data_never_passes(
    must_have_data: bool, critical: bool, verdict: Verdict, kayenta: str
) -> None:
    obs = SamplesObservation(baseline=(1.0, 2.0), canary=(math.nan, math.nan))
    result = judge_samples(_spec_with(must_have_data=must_have_data, critical=critical), obs)
    assert result.classification is Classification.NODATA
    assert result.verdict is verdict
    assert result.critical is critical
    assert result.statistic["kayenta_classification"] == kayenta
    assert result.statistic["nan_count"] == {"baseline": 0, "canary": 2}


def test_all_nan_on_both_sides_is_nodata_even_under_replace() -> None:
    """Kayenta replaces them by zeros and passes identical data; a broken query looks the same."""
    obs = SamplesObservation(baseline=(math.nan,) * 3, canary=(math.nan,) * 4)
    result = judge_samples(_spec_with(nan_strategy="replace"), obs)
    assert (result.classification, result.verdict) == (Classification.NODATA, Verdict.INCONCLUSIVE)
    assert result.statistic["kayenta_classification"] == "Pass"
    assert "broken query" in result.reason


def test_one_all_nan_side_under_replace_is_a_zero_series() -> None:
    obs = SamplesObservation(baseline=(math.nan,) * 5, canary=(math.nan,) * 5 + (3.0,) * 5)
    result = judge_samples(_spec_with(nan_strategy="replace"), obs)
    assert result.classification is not Classification.NODATA
    assert result.estimate["mean_baseline"] == 0.0


def test_partly_nan_samples_under_remove_are_judged() -> None:
    obs = SamplesObservation(baseline=(1.0, math.nan), canary=(1.0, math.nan))
    result = judge_samples(_spec_with(nan_strategy="remove"), obs)
    assert (result.classification, result.verdict) == (Classification.PASS, Verdict.PASS)


def test_nan_strategy_remove_drops_and_replace_zeroes() -> None:
    obs = SamplesObservation(baseline=(1.0, math.nan, 3.0), canary=(math.nan, 5.0, 6.0, 7.0))
    removed = judge_samples(_spec_with(nan_strategy="remove"), obs)
    replaced = judge_samples(_spec_with(nan_strategy="replace"), obs)
    assert (removed.n_baseline, removed.n_canary) == (2, 3)
    assert (replaced.n_baseline, replaced.n_canary) == (3, 4)
    assert removed.estimate["mean_baseline"] == 2.0
    assert replaced.estimate["mean_baseline"] == pytest.approx(4 / 3)


def test_constant_samples_use_the_deterministic_limit_of_kayenta_jitter() -> None:
    obs = SamplesObservation(baseline=(1.0,) * 5, canary=(10.0,) * 5)
    result = judge_samples(_spec_with(), obs)
    assert result.statistic["rule"] == "constant_samples"
    assert result.estimate["shift"] == 9.0
    assert result.estimate["ci"] == [9.0, 9.0]
    assert result.classification is Classification.HIGH
    assert judge_samples(_spec_with(), obs) == result


def test_kayenta_defaults_and_fixed_horizon_are_stated() -> None:
    obs = SamplesObservation(baseline=_values("C_LOW10"), canary=_values("E_LOW10"))
    result = judge_samples(_spec_with(), obs)
    assert result.statistic["tolerance"] == 0.25
    assert result.estimate["confidence"] == 0.98
    assert "fixed-horizon" in result.statistic["design"]
    assert "fixed-horizon" in result.reason
    assert result.statistic["band"] == pytest.approx(0.25 * abs(result.estimate["shift"]))


def test_critical_high_below_the_critical_threshold_fails_without_the_critical_flag() -> None:
    obs = SamplesObservation(
        baseline=(1.0, 2.2, 1.1, 2.5, 3.0), canary=(20.0, 22.0, 21.0, 25.0, 30.0)
    )
    effect = EffectSize(critical_increase=13.0)  # mean ratio is about 12.1
    result = judge_samples(_spec_with(critical=True, tolerance=0.1, effect_size=effect), obs)
    assert (result.verdict, result.critical) == (Verdict.FAIL, False)
    escalated = judge_samples(_spec_with(critical=True, tolerance=0.1), obs)
    assert (escalated.verdict, escalated.critical) == (Verdict.FAIL, True)
    assert "critical" in escalated.reason


def test_default_effect_size_per_measure() -> None:
    assert default_effect_size("cles").allowed_increase == 0.5
    assert default_effect_size("cles").critical_decrease == 0.5
    assert default_effect_size().allowed_increase == 1.0
    assert default_effect_size().measure == "mean_ratio"


def test_group_and_weight_are_carried_for_scoring() -> None:
    obs = SamplesObservation(baseline=(1.0, 2.0, 3.0), canary=(1.5, 2.5, 3.5))
    result = judge_samples(_spec_with(group="system", weight=2.0), obs)
    assert (result.group, result.weight, result.kind) == ("system", 2.0, MetricKind.SAMPLES)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"nan_strategy": "drop"}, "nan_strategy"),
        ({"confidence": 1.0}, "confidence"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"effect_size": EffectSize(measure="cohen_d")}, "effect_size.measure"),
        ({"kind": MetricKind.HISTOGRAM}, "kind"),
    ],
)
def test_invalid_settings_name_the_field(changes: dict[str, Any], field: str) -> None:
    obs = SamplesObservation(baseline=(1.0, 2.0), canary=(2.0, 3.0))
    with pytest.raises(InvalidInputError) as raised:
        judge_samples(_spec_with(**changes), obs)
    assert raised.value.field == field


def test_infinite_values_are_invalid_input() -> None:
    obs = SamplesObservation(baseline=(1.0, 2.0), canary=(2.0, math.inf))
    with pytest.raises(InvalidInputError) as raised:
        judge_samples(_spec_with(), obs)
    assert raised.value.field == "canary"
