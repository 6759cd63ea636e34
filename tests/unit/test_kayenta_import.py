"""``profiles import-kayenta``: Kayenta's published canary configs become profiles, with a report.

Inputs: tests/data/kayenta/ (Kayenta's own sample and integration-test configs, and configs
written here for what those do not cover). What is written must load, what could not be mapped
must be said (and never silently judged less), and group weights must score as Kayenta's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analyzer.analysis import run_analysis
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import SamplesObservation
from analyzer.domain.verdict import Verdict
from analyzer.judge import judge
from analyzer.kayenta_import import KayentaImport, import_kayenta
from analyzer.metrics.base import QueryLanguage, TimeWindow
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.profiles import LoadedProfile, parse_profile

DATA = Path(__file__).resolve().parents[1] / "data" / "kayenta"
PUBLISHED = sorted(p.name for p in DATA.glob("kayenta-*.json"))


def load(name: str) -> dict[str, Any]:
    document = json.loads((DATA / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def imported(name: str) -> KayentaImport:
    return import_kayenta(load(name), default_name=Path(name).stem)


def statuses(result: KayentaImport) -> dict[str, str]:
    return {line.path: line.status for line in result.report}


def loaded(result: KayentaImport) -> LoadedProfile:
    return parse_profile(result.yaml(), source="imported")


def test_kayentas_published_configs_are_all_here() -> None:
    assert len(PUBLISHED) == 6


@pytest.mark.parametrize("name", PUBLISHED)
def test_every_published_config_imports_with_a_report(name: str) -> None:
    result = imported(name)
    paths = statuses(result)
    assert paths["classifier.groupWeights"] == "exact"
    assert paths["judge.name"] == "exact"
    config = load(name).get("canaryConfig", load(name))
    for index in range(len(config["metrics"])):
        assert f"metrics[{index}].query" in paths
        assert f"metrics[{index}].analysisConfigurations.canary.direction" in paths
    assert result.report_text().count("\n") == len(result.report)


def test_the_prometheus_sample_maps_completely() -> None:
    result = imported("kayenta-prometheus-cpu-only.json")
    assert result.complete
    profile = loaded(result)
    (spec,) = profile.profile.metrics
    assert spec.name == "CPU_usage_for_service"
    assert spec.kind.value == "samples"
    assert spec.critical
    assert spec.direction.value == "increase"
    assert spec.group == "pod-group"
    assert dict(profile.profile.group_weights) == {"pod-group": 100.0}
    query = profile.queries[spec.name]
    assert query.expr == "avg(integration_test_cpu{namespace='{namespace}', pod_name='{revision}'})"
    assert statuses(result)["metrics[0].name"] == "approximate"  # spaces renamed
    assert statuses(result)["classifier.scoreThresholds"] == "not_mapped"


@pytest.mark.parametrize(
    "name",
    [
        "kayenta-graphite-sample.json",
        "kayenta-opentsdb-sample.json",
        "kayenta-graphite-integration-test.json",
        "kayenta-opentsdb-integration-test.json",
        "kayenta-newrelic-adhoc.json",
    ],
)
def test_stores_we_do_not_read_are_not_mapped_and_said_so(name: str) -> None:
    result = imported(name)
    assert not result.complete
    assert result.profile["metrics"] == []
    assert all(
        line.status == "not_mapped" for line in result.report if line.path.endswith(".query")
    )
    assert "# NOT MAPPED (metric store" in result.yaml()


def test_an_adhoc_request_maps_its_step_and_reports_its_thresholds() -> None:
    result = imported("kayenta-newrelic-adhoc.json")
    paths = statuses(result)
    assert paths["executionRequest.thresholds"] == "not_mapped"
    assert paths["executionRequest.scopes.default.controlScope.step"] == "exact"
    assert result.profile["group_weights"] == {"err": 70.0, "app": 30.0}


def test_every_analysis_setting_and_query_form() -> None:
    result = imported("ours-prometheus-full.json")
    profile = loaded(result)
    specs = {m.name: m for m in profile.profile.metrics}
    # the muted metric is in, muted; the atlas one is commented out
    assert set(specs) == {"cpu", "memory", "error_rate", "noisy"}
    assert specs["noisy"].muted
    assert not specs["cpu"].muted
    cpu = specs["cpu"]
    assert cpu.nan_strategy == "replace"
    assert cpu.must_have_data
    assert cpu.effect_size is not None
    assert cpu.effect_size.measure == "cles"
    assert cpu.effect_size.allowed_increase == pytest.approx(0.6)
    assert specs["memory"].direction.value == "either"  # Kayenta's default, written out
    assert profile.queries["cpu"].expr == (
        'avg(container_cpu_usage{namespace="{namespace}",pod=~"{revision}-.*"})'
    )
    assert profile.queries["memory"].expr == 'avg(container_memory_rss{revision="{revision}"})'
    assert profile.queries["error_rate"].expr == (
        'avg(http_errors_per_second{revision_name="{revision}"})'
    )
    paths = statuses(result)
    assert paths["metrics[1].analysisConfigurations.canary.outliers"] == "exact"
    assert specs["memory"].outlier_factor == 3.0  # Kayenta's outlierFactor default
    assert specs["cpu"].outlier_factor is None  # Kayenta's default: keep every point
    assert paths["metrics[1].groups"] == "approximate"
    assert paths["metrics[3].analysisConfigurations.canary.muted"] == "exact"
    assert paths["metrics[4].query"] == "not_mapped"
    assert not result.complete  # the atlas metric would be judged by Kayenta, not by us


def test_a_muted_metric_left_out_does_not_make_the_import_incomplete() -> None:
    document = load("ours-prometheus-full.json")
    document["metrics"] = [m for m in document["metrics"] if m["name"] != "legacy"]
    result = import_kayenta(document)
    assert result.complete
    assert "  muted: true" in result.yaml()


def test_a_muted_metric_whose_query_cannot_map_does_not_make_the_import_incomplete() -> None:
    document = load("ours-prometheus-full.json")
    document["metrics"] = [m for m in document["metrics"] if m["name"] != "legacy"]
    noisy = next(m for m in document["metrics"] if m["name"] == "noisy")
    noisy["query"] = {"type": "atlas", "q": "name,gc,:eq"}
    result = import_kayenta(document)
    assert result.complete  # Kayenta never counted it: leaving it out judges no less
    assert "# - name: noisy" in result.yaml()


def test_datadog_configs_become_datadog_profiles() -> None:
    result = imported("ours-datadog.json")
    profile = loaded(result)
    assert result.complete
    assert {q.language for q in profile.queries.values()} == {QueryLanguage.DATADOG}
    assert profile.queries["latency"].expr == "avg:trace.http.request.duration{version:{revision}}"
    assert profile.queries["cpu"].expr == "avg:system.cpu.user{version:{revision}}"


def test_unknown_kayenta_variables_are_not_mapped() -> None:
    document = load("ours-prometheus-full.json")
    document["metrics"][0]["query"]["customInlineTemplate"] = 'PromQL:avg(x{a="${region}"})'
    result = import_kayenta(document)
    line = next(m for m in result.report if m.path == "metrics[0].query")
    assert line.status == "not_mapped"
    assert "${region}" in line.note


@pytest.mark.parametrize("document", [[], {"name": "x"}, {"metrics": "cpu"}])
def test_not_a_canary_config(document: Any) -> None:
    with pytest.raises(InvalidInputError):
        import_kayenta(document)


def test_weights_over_100_are_not_mapped() -> None:
    document = load("kayenta-prometheus-cpu-only.json")
    document["classifier"]["groupWeights"] = {"pod-group": 80, "other": 40}
    result = import_kayenta(document)
    assert statuses(result)["classifier.groupWeights"] == "not_mapped"
    assert "group_weights" not in result.profile


# --- the group weights score as Kayenta's (ScorerSuite, two groups) -------------------------

SAME = SamplesObservation(baseline=tuple(float(i % 7) for i in range(30)),
                          canary=tuple(float(i % 7) for i in range(30)))  # fmt: skip
HIGHER = SamplesObservation(baseline=tuple(float(i % 7) for i in range(30)),
                            canary=tuple(float(i % 7) + 20.0 for i in range(30)))  # fmt: skip


@pytest.mark.parametrize(
    ("weights", "failing", "expected"),
    [
        ({"group-1": 75.0, "group-2": 25.0}, {"test-metric-fail"}, 75.0),
        ({"group-1": 50.0, "group-2": 50.0}, {"test-metric-pass-2", "test-metric-fail"}, 25.0),
    ],
)
def test_imported_group_weights_score_as_kayentas_scorer(
    weights: dict[str, float], failing: set[str], expected: float
) -> None:
    document = load("ours-scorer-weights.json")
    document["classifier"]["groupWeights"] = weights
    profile = loaded(import_kayenta(document))
    observations = {m.name: HIGHER if m.name in failing else SAME for m in profile.profile.metrics}
    result, _ = judge(profile.profile, observations)
    assert result.score == pytest.approx(expected)


# --- an imported profile runs ---------------------------------------------------------------


@pytest.mark.parametrize(("canary_mean", "fails"), [(0.40, False), (0.60, True)])
def test_the_imported_sample_judges_a_canary(canary_mean: float, fails: bool) -> None:
    profile = loaded(imported("kayenta-prometheus-cpu-only.json"))
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    revisions = {
        "cpu-00001": RevisionBehaviour(),
        "cpu-00002": RevisionBehaviour(sample_mean=canary_mean),
    }
    source = SyntheticSource(seed=7, origin=origin, revisions=revisions)
    window = TimeWindow(start=origin, end=origin + timedelta(hours=1))
    result, _ = run_analysis(
        profile.profile, profile.queries, source, ModelRef(namespace="ns", name="cpu"),
        "cpu-00001", "cpu-00002", window,
    )  # fmt: skip
    assert (result.verdict is Verdict.FAIL) == fails, result.reason
