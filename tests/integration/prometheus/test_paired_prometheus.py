"""A shadow run's paired decisions read from a real, backfilled Prometheus: exactly the counts
the generator wrote, and the paired judge's verdict on them."""

from __future__ import annotations

import promserver
import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import MissingObservation, PairedObservation
from analyzer.domain.verdict import Verdict
from analyzer.judge import judge
from analyzer.metrics.base import MetricSource, TimeWindow
from analyzer.metrics.prometheus import PrometheusSource
from analyzer.profiles import LoadedProfile, parse_profile

MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
INCUMBENT = "fraud-00001"
SELECTOR = (
    'model_shadow_decisions_total{namespace="{namespace}",model="{model}",revision="{revision}"}'
)
PROFILE = """
name: shadow
metrics:
  - name: shadow_decisions
    kind: paired
    categories: [approve, review, decline]
    tolerance: 0.02
    adverse: {from: approve, to: decline}
    query:
      selector: 'SELECTOR'
      incumbent_label: incumbent
      category_label: challenger
""".replace("SELECTOR", SELECTOR)

pytestmark = pytest.mark.prometheus


DATADOG_PROFILE = PROFILE.replace(
    SELECTOR,
    "fraud.model_shadow_decisions.count{namespace:{namespace},model:{model},revision:{revision}}",
).replace("name: shadow\n", "name: shadow\nquery_language: datadog\n")


@pytest.fixture(scope="module")
def loaded() -> LoadedProfile:
    return parse_profile(PROFILE)


@pytest.mark.parametrize("challenger", ["fraud-00002", "fraud-00005"])
def test_datadog_reads_the_same_paired_table(
    datadog_source: MetricSource,
    synthetic_source: MetricSource,
    loaded: LoadedProfile,
    last_hour: TimeWindow,
    challenger: str,
) -> None:
    datadog = parse_profile(DATADOG_PROFILE)
    from_datadog = observe(datadog_source, datadog, challenger, last_hour)
    assert isinstance(from_datadog, PairedObservation), from_datadog
    assert from_datadog == observe(synthetic_source, loaded, challenger, last_hour)
    assert isinstance(observe(datadog_source, datadog, "fraud-09999", last_hour),
                      MissingObservation)  # fmt: skip


def observe(source: MetricSource, loaded: LoadedProfile, challenger: str, window: TimeWindow):  # type: ignore[no-untyped-def]
    (spec,) = loaded.profile.metrics
    return source.observe(spec, loaded.queries[spec.name], model=MODEL, baseline=INCUMBENT,
                          canary=challenger, window=window)  # fmt: skip


@pytest.mark.parametrize(("challenger", "verdict"), [("fraud-00002", Verdict.PASS),
                                                     ("fraud-00005", Verdict.FAIL)])  # fmt: skip
def test_paired_counts_match_the_generator_and_judge_as_expected(
    prometheus_source: PrometheusSource,
    synthetic_source: MetricSource,
    loaded: LoadedProfile,
    last_hour: TimeWindow,
    challenger: str,
    verdict: Verdict,
) -> None:
    from_prometheus = observe(prometheus_source, loaded, challenger, last_hour)
    assert isinstance(from_prometheus, PairedObservation), from_prometheus
    assert from_prometheus == observe(synthetic_source, loaded, challenger, last_hour)
    assert from_prometheus.total > 60_000  # an hour of 20 requests per second, mirrored
    result, _ = judge(loaded.profile, {"shadow_decisions": from_prometheus})
    assert result.verdict is verdict, result.reason


def test_a_challenger_without_shadow_series_is_no_data(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    missing = observe(prometheus_source, loaded, "fraud-09999", last_hour)
    assert isinstance(missing, MissingObservation)
    assert "no paired series for revision fraud-09999" in missing.reason
    assert not missing.source_error


def test_a_category_that_cannot_be_a_label_value_is_refused_before_any_query(
    prometheus_source: PrometheusSource, last_hour: TimeWindow
) -> None:
    bad = parse_profile(
        PROFILE.replace("[approve, review, decline]", '[approve, "x\\"}", decline]')
    )
    with pytest.raises(InvalidInputError) as caught:
        observe(prometheus_source, bad, "fraud-00002", last_hour)
    assert caught.value.field == "categories"
