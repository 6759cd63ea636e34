"""Profile YAML: presets load, overrides merge, and every error names the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.verdict import Direction, MetricKind
from analyzer.metrics.base import CounterMode
from analyzer.profiles import load_preset, load_profile, parse_profile, preset_names

GOOD = """
name: fraud-scorer
alpha: 0.01
metrics:
  - use: knative/latency
    tolerance: 0.05
  - use: business/decisions
  - name: cpu
    kind: samples
    direction: either
    tolerance: 0.25
    effect_size: {measure: cles, allowed_increase: 1.1}
    query: {expr: 'avg(cpu{rev="{revision}"})', step_seconds: 30}
  - name: fp
    kind: proportion
    query:
      events: 'fp_total{revision="{revision}"}'
      total: 'legit_total{revision="{revision}"}'
      mode: increase
"""


def test_every_preset_loads() -> None:
    assert set(preset_names()) >= {"knative", "istio", "kserve", "business"}
    for name in preset_names():
        loaded = load_preset(name)
        assert loaded.profile.metrics
        assert set(loaded.queries) == {m.name for m in loaded.profile.metrics}


def test_presets_use_the_documented_metric_names() -> None:
    knative = load_preset("knative").queries
    assert "revision_app_request_latencies_bucket" in str(knative["latency"].selector)
    assert 'response_code_class="5xx"' in str(knative["errors"].events)
    istio = load_preset("istio").queries
    assert 'reporter="destination"' in str(istio["latency"].selector)
    assert 'destination_workload="{revision}-deployment"' in str(istio["errors"].total)


def test_profile_with_use_and_overrides() -> None:
    loaded = parse_profile(GOOD)
    specs = {m.name: m for m in loaded.profile.metrics}
    assert loaded.profile.alpha == 0.01
    assert specs["latency"].tolerance == 0.05  # overridden
    assert specs["latency"].critical  # inherited from the preset
    assert specs["decisions"].categories == ("approve", "review", "decline")
    assert specs["cpu"].direction is Direction.EITHER
    assert specs["cpu"].effect_size is not None
    assert specs["cpu"].effect_size.measure == "cles"
    assert specs["fp"].kind is MetricKind.PROPORTION
    assert loaded.queries["fp"].mode is CounterMode.INCREASE
    assert loaded.queries["cpu"].step_seconds == 30
    assert loaded.queries["latency"].unit_scale == 0.001


M = "name: p\nmetrics:\n  - "


def test_query_overrides_merge_key_by_key() -> None:
    loaded = parse_profile(M + "use: knative/latency\n    query: {mode: increase}\n")
    query = loaded.queries["latency"]
    assert query.mode is CounterMode.INCREASE
    assert "revision_app_request_latencies_bucket" in str(query.selector)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (
            M + "use: knative/latency\n    tolerence: 0.1\n",
            "metrics[0].tolerence",
            "Extra inputs",
        ),
        (
            M + "use: knative/latency\n    query: {selektor: x}\n",
            "metrics[0].query.selektor",
            "Extra inputs",
        ),
        (
            M + "use: knative/latency\n    kind: gauge\n",
            "metrics[0].kind",
            "histogram",
        ),
        ("name: p\nalpha: 2\nmetrics:\n  - use: knative/latency\n", "alpha", "less than 1"),
        ("name: p\nmetrics: []\n", "metrics", "at least 1"),
        (M + "use: knative/nope\n", "metrics[0].use", "no metric 'nope'"),
        (
            M + "use: knative/latency\n  - use: istio/latency\n",
            "metrics[1].name",
            "duplicate",
        ),
        (
            M + "{name: e, kind: proportion, query: {events: 'a{r=\"{revision}\"}'}}\n",
            "metrics[0].query.total",
            "needs query.total",
        ),
        (
            M + "{name: t, kind: threshold, query: {expr: 'x'}}\n",
            "metrics[0].bound",
            "bound.min or bound.max",
        ),
        (
            M + "{name: c, kind: categorical, categories: [a],"
            " query: {selector: 'a{r=\"{revision}\"}', category_label: d}}\n",
            "metrics[0].categories",
            "two categories",
        ),
        (
            M + "{name: h, kind: histogram, query: {selector: 'a{r=\"{revison}\"}'}}\n",
            "metrics[0].query.selector",
            "unknown placeholder",
        ),
        (
            M + "{name: h, kind: histogram, query: {selector: 'sum(a{r=\"{revision}\"})'}}\n",
            "metrics[0].query.selector",
            "plain series selector",
        ),
    ],
)
def test_errors_name_the_bad_key(text: str, where: str, what: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_profile(text, source="p.yaml")
    assert caught.value.field == where
    assert what in str(caught.value)


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        parse_profile("name: [unclosed")
    with pytest.raises(InvalidInputError, match="mapping"):
        parse_profile("- a\n- b\n")


def test_load_profile_from_file_and_by_preset_name(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text(GOOD)
    assert load_profile(path).profile.name == "fraud-scorer"
    assert load_profile("istio").profile.name == "istio"
    with pytest.raises(InvalidInputError, match="cannot read profile"):
        load_profile(tmp_path / "absent.yaml")
