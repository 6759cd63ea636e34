"""Datadog query templates and Datadog profiles: what is accepted, rendered and refused."""

from __future__ import annotations

import math
from typing import get_args

import pytest

from analyzer.config import DatadogSettings
from analyzer.domain.errors import InvalidInputError
from analyzer.metrics.base import QueryLanguage
from analyzer.metrics.datadog import SITES, check_datadog_template, render_datadog
from analyzer.metrics.datadog.client import parse_query_response
from analyzer.metrics.datadog.source import parse_bound
from analyzer.profiles import parse_profile

VALUES = {"namespace": "models", "model": "fraud", "revision": "fraud-00002", "window": "3600"}


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        (
            "kubeflow.kserve.inferences.count{kube_namespace:{namespace},"
            "kube_deployment:{revision}-deployment}",
            "kubeflow.kserve.inferences.count{kube_namespace:models,"
            "kube_deployment:fraud-00002-deployment}",
        ),
        (
            "avg:model.cpu{revision:{revision}} by {pod_name,kube_node}",
            "avg:model.cpu{revision:fraud-00002} by {pod_name,kube_node}",
        ),
        (
            "p99:latency.dist{model:{model},revision:{revision}}.rollup({window})",
            "p99:latency.dist{model:fraud,revision:fraud-00002}.rollup(3600)",
        ),
        ("m{*}", "m{*}"),
        (
            "m{env,!canary:true,pod_name:{revision}-deployment-*}",
            "m{env,!canary:true,pod_name:fraud-00002-deployment-*}",
        ),
    ],
)
def test_renders_values_into_tag_values(template: str, rendered: str) -> None:
    assert render_datadog(template, VALUES) == rendered


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("m{revision:{revison}}", "unknown placeholder {revison}"),
        ("m{{revision}:x}", "tag key"),
        ("{revision}.m{a:b}", "inside a tag value"),
        ("m{a:b}.rollup(avg, {namespace})", "inside a tag value"),
        ("m{a:{window}}", "outside scopes"),
        ("m{a:b", "unbalanced"),
        ("m{a:b}}", "unbalanced"),
        ('m{a:x"y}', "not tag-value text"),
        ("m{a:{revision} }", "not tag-value text"),
        ("m{a:b} by {!x}", "not a tag key"),
        ("m{a:b} + {x}", "unknown placeholder {x}"),
    ],
)
def test_refuses_misplaced_or_unknown_placeholders(template: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("{", r"\{").replace("}", r"\}")):
        check_datadog_template(template, field="query.selector")


@pytest.mark.parametrize("bad", ["fraud}", "fraud,env:prod", "Fraud", "a b", "a:b", "x*", ""])
def test_unsafe_values_are_refused_not_escaped(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="unsafe value"):
        render_datadog("m{revision:{revision}}", {**VALUES, "revision": bad})


def test_window_must_be_whole_seconds() -> None:
    with pytest.raises(InvalidInputError):
        render_datadog("m{a:b}.rollup(avg, {window})", {**VALUES, "window": "3600s"})


DATADOG_PROFILE = """
name: dd
query_language: datadog
metrics:
  - name: errors
    kind: proportion
    query:
      events: 'trace.http.request.errors{service:fraud,version:{revision}}'
      total: 'trace.http.request.hits{service:fraud,version:{revision}}'
"""


def test_a_datadog_profile_loads_with_its_language() -> None:
    loaded = parse_profile(DATADOG_PROFILE)
    assert loaded.queries["errors"].language is QueryLanguage.DATADOG


def test_a_promql_profile_defaults_to_promql() -> None:
    loaded = parse_profile(
        "name: p\nmetrics:\n  - name: e\n    kind: proportion\n    query:\n"
        "      events: 'a{r=\"{revision}\"}'\n      total: 'b{r=\"{revision}\"}'\n"
    )
    assert loaded.queries["e"].language is QueryLanguage.PROMQL


def test_datadog_selectors_must_be_plain_metric_scopes() -> None:
    text = DATADOG_PROFILE.replace(
        "'trace.http.request.hits{service:fraud,version:{revision}}'",
        "'sum:trace.http.request.hits{service:fraud,version:{revision}}.as_count()'",
    )
    with pytest.raises(InvalidInputError, match="plain series selector") as caught:
        parse_profile(text)
    assert caught.value.field == "metrics[0].query.total"


def test_a_promql_template_in_a_datadog_profile_is_refused_at_load() -> None:
    text = DATADOG_PROFILE.replace(
        "'trace.http.request.errors{service:fraud,version:{revision}}'",
        "'http_errors_total{version=\"{revision}\"}'",
    )
    with pytest.raises(InvalidInputError) as caught:
        parse_profile(text)
    assert caught.value.field == "metrics[0].query.events"


def test_one_language_per_profile() -> None:
    text = DATADOG_PROFILE + (
        "  - name: lat\n    kind: threshold\n    bound: {max: 1}\n    query:\n"
        "      language: promql\n      expr: 'x{r=\"{revision}\"}'\n"
    )
    with pytest.raises(InvalidInputError, match="one profile reads one source"):
        parse_profile(text)


@pytest.mark.parametrize(
    ("raw", "bound"),
    [
        ("0.005", 0.005),
        ("1e+03", 1000.0),
        ("inf", math.inf),
        ("+Inf", math.inf),
        ("none", math.inf),
    ],
)
def test_upper_bound_tag_values(raw: str, bound: float) -> None:
    assert parse_bound(raw) == bound


def test_parses_the_documented_answer() -> None:
    body = {
        "status": "ok",
        "res_type": "time_series",
        "series": [
            {
                "scope": "service:fraud,upper_bound:0.1",
                "tag_set": ["upper_bound:0.1"],
                "pointlist": [[1_700_000_060_000.0, 3.0], [1_700_000_000_000.0, None]],
                "interval": 60,
                "query_index": 1,
            }
        ],
    }
    (series,) = parse_query_response(body)
    assert series.tags == {"upper_bound": "0.1"}
    assert series.points == ((1_700_000_060.0, 3.0),)  # nulls dropped
    assert series.query_index == 1
    assert series.interval == 60


@pytest.mark.parametrize("body", [{"series": [{"pointlist": "x"}]}, {"status": "ok"}, []])
def test_malformed_answers_are_fatal_integration_errors(body: object) -> None:
    from analyzer.domain.errors import FatalIntegrationError

    with pytest.raises(FatalIntegrationError):
        parse_query_response(body)


def test_settings_know_every_site() -> None:
    site_field = DatadogSettings.model_fields["site"].annotation
    assert set(get_args(site_field)) == set(SITES)


def test_datadog_presets_set_the_profiles_language() -> None:
    loaded = parse_profile("name: p\nmetrics:\n  - use: datadog-kserve/latency\n")
    assert loaded.queries["latency"].language is QueryLanguage.DATADOG
    assert loaded.queries["latency"].le_label == "upper_bound"
    assert "kube_deployment:{revision}-deployment" in (loaded.queries["latency"].selector or "")


def test_datadog_preset_roles_can_be_renamed() -> None:
    loaded = parse_profile(
        "name: p\nlabels: {deployment: kube_replica_set}\n"
        "metrics:\n  - use: datadog-kserve/errors\n"
    )
    assert "kube_replica_set:{revision}-deployment" in (loaded.queries["errors"].total or "")


def test_prometheus_and_datadog_presets_do_not_mix() -> None:
    with pytest.raises(InvalidInputError, match="one profile reads one source"):
        parse_profile(
            "name: p\nmetrics:\n  - use: knative/latency\n  - use: datadog-knative/errors\n"
        )
