"""Kayenta's muted metrics (reported, never counted) and its opt-in outlier removal."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import EventCount, ProportionObservation, SamplesObservation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import Classification, MetricKind, Verdict
from analyzer.judge import judge
from analyzer.judge.io import judge_document
from analyzer.judge.outliers import fences, remove_outliers
from analyzer.judge.samples import judge_samples
from analyzer.profiles import parse_profile

# --- outliers ------------------------------------------------------------------------------


def test_fences_are_r7_quartiles_widened_to_the_1st_and_99th_percentiles() -> None:
    values = [*np.arange(1.0, 11.0).tolist(), 100.0]  # n = 11
    # Q1 at h = 2.5 -> 3.5, Q3 at h = 7.5 -> 8.5, IQR 5; P1 at h = 0.1 -> 1.1;
    # P99 at h = 9.9 -> 10 + 0.9 * 90 = 91. Fences: min(1.1, 3.5 - 15), max(91, 8.5 + 15).
    low, high = fences(np.asarray(values), 3.0)
    assert low == pytest.approx(-11.5)
    assert high == pytest.approx(91.0)
    assert remove_outliers(np.asarray(values), 3.0).tolist() == values[:-1]


def test_a_far_point_goes_and_everything_inside_the_fences_stays() -> None:
    values = np.asarray([*range(1, 101), 10_000.0], dtype=float)
    kept = remove_outliers(values, 3.0)
    assert kept.tolist() == list(map(float, range(1, 101)))
    assert remove_outliers(np.asarray([], dtype=float), 3.0).size == 0


def test_the_sparse_series_trap_kayenta_made_removal_opt_in_for() -> None:
    """99 zeros and one error: the quartiles and the IQR are 0 and P99 is 0.05, so the only
    non-zero value, the signal, is dropped (kayenta#420, #633)."""
    errors = np.asarray([0.0] * 99 + [5.0])
    assert remove_outliers(errors, 3.0).tolist() == [0.0] * 99


def samples_spec(**changes: object) -> MetricSpec:
    return MetricSpec(name="cpu", kind=MetricKind.SAMPLES, direction="either",  # type: ignore[arg-type]
                      **changes)  # type: ignore[arg-type]  # fmt: skip


def test_removal_is_per_side_after_nans_and_reported() -> None:
    rng = np.random.default_rng(7)
    baseline = [*rng.normal(10, 0.1, 60).tolist(), float("nan"), 500.0]
    canary = rng.normal(10, 0.1, 60).tolist()
    obs = SamplesObservation(baseline=tuple(baseline), canary=tuple(canary))
    kept = judge_samples(samples_spec(outlier_factor=3.0), obs)
    assert kept.statistic["outliers_removed"] == {"baseline": 1, "canary": 0}
    assert (kept.n_baseline, kept.n_canary) == (60, 60)
    assert kept.statistic["nan_count"] == {"baseline": 1, "canary": 0}
    plain = judge_samples(samples_spec(), obs)
    assert "outliers_removed" not in plain.statistic
    assert plain.n_baseline == 61


# --- muted -------------------------------------------------------------------------------------


def errors(name: str, **changes: object) -> MetricSpec:
    return MetricSpec(name=name, kind=MetricKind.PROPORTION, tolerance=0.001,
                      **changes)  # type: ignore[arg-type]  # fmt: skip


BAD = ProportionObservation(
    baseline=EventCount(events=10, total=100_000), canary=EventCount(events=900, total=100_000)
)
GOOD = ProportionObservation(
    baseline=EventCount(events=10, total=100_000), canary=EventCount(events=11, total=100_000)
)


def test_a_muted_metric_is_judged_and_reported_but_never_counted() -> None:
    profile = AnalysisProfile(name="p", metrics=(
        errors("errors"), errors("noisy", muted=True, critical=True)))  # fmt: skip
    result, _ = judge(profile, {"errors": GOOD, "noisy": BAD})
    noisy = next(m for m in result.metrics if m.name == "noisy")
    assert noisy.verdict is Verdict.FAIL  # judged as it would be
    assert noisy.muted
    assert noisy.reason.startswith("muted (reported, not counted)")
    assert noisy.to_json()["muted"] is True
    assert "muted" not in next(m for m in result.metrics if m.name == "errors").to_json()
    assert result.verdict is not Verdict.FAIL  # a critical fail, muted, aborts nothing
    unmuted = AnalysisProfile(name="p", metrics=(errors("errors"), errors("noisy", critical=True)))
    loud, _ = judge(unmuted, {"errors": GOOD, "noisy": BAD})
    assert loud.verdict is Verdict.FAIL
    assert result.score > loud.score  # the score leaves the muted metric out


def test_muted_metrics_alone_never_pass() -> None:
    profile = AnalysisProfile(name="p", metrics=(errors("noisy", muted=True),))
    result, _ = judge(profile, {"noisy": GOOD})
    assert result.verdict is Verdict.INCONCLUSIVE


def test_profile_yaml_and_judge_json_read_muted_and_outliers() -> None:
    loaded = parse_profile(
        "name: p\nmetrics:\n  - name: cpu\n    kind: samples\n    muted: true\n"
        "    outliers: {strategy: remove, factor: 1.5}\n    query: {expr: 'up{x=\"{revision}\"}'}\n"
    )
    (spec,) = loaded.profile.metrics
    assert spec.muted
    assert spec.outlier_factor == 1.5
    with pytest.raises(InvalidInputError) as raised:
        parse_profile(
            "name: p\nmetrics:\n  - name: e\n    kind: proportion\n"
            "    outliers: {strategy: remove}\n"
            "    query: {events: 'a{r=\"{revision}\"}', total: 'b{r=\"{revision}\"}'}\n"
        )
    assert raised.value.field == "metrics[0].outliers"
    document = {"metrics": [{"name": "cpu", "kind": "samples", "muted": True,
                             "outliers": {"strategy": "remove"},
                             "baseline": [1.0, 1.1, 0.9, 1.0, 50.0],
                             "canary": [1.0, 1.2, 0.9, 1.1]}]}  # fmt: skip
    out = judge_document(document)
    assert out["metrics"][0]["muted"] is True
    assert out["metrics"][0]["classification"] != Classification.NODATA.value
    refused = (
        ({"strategy": "drop"}, "metrics[0].outliers.strategy"),
        ({"strategy": "remove", "factor": 0}, "metrics[0].outliers.factor"),
    )
    for bad, field in refused:
        with pytest.raises(InvalidInputError) as raised:
            judge_document({"metrics": [{**document["metrics"][0], "outliers": bad}]})
        assert raised.value.field == field


def test_kayentas_muted_metric_integration_case() -> None:
    """Kayenta's integration test ``muted-metric`` (research/kayenta.md): a critical metric,
    direction increase, control uniform in 40-45 against canary in 39-46 passes, and a muted
    metric at 1000 against 40-45 changes nothing; unmuted, the same metric fails the canary."""
    rng = np.random.default_rng(20261206)
    control = tuple(rng.integers(40, 46, 60).astype(float).tolist())
    canary = tuple(rng.integers(39, 47, 60).astype(float).tolist())
    spike = tuple([1000.0] * 60)

    def spec(name: str, *, muted: bool) -> MetricSpec:
        return MetricSpec(name=name, kind=MetricKind.SAMPLES, critical=True, muted=muted)

    observations = {
        "cpu": SamplesObservation(baseline=control, canary=canary),
        "muted": SamplesObservation(baseline=control, canary=spike),
    }
    as_kayenta = AnalysisProfile(name="k", metrics=(spec("cpu", muted=False),
                                                    spec("muted", muted=True)))  # fmt: skip
    unmuted = AnalysisProfile(name="k", metrics=(spec("cpu", muted=False),
                                                 spec("muted", muted=False)))  # fmt: skip
    quiet, _ = judge(as_kayenta, observations)
    loud, _ = judge(unmuted, observations)
    muted = next(m for m in quiet.metrics if m.name == "muted")
    assert muted.classification is Classification.HIGH
    assert quiet.verdict is Verdict.PASS
    assert quiet.score == 100.0
    assert loud.verdict is Verdict.FAIL
