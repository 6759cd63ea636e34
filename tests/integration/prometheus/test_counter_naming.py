"""The shipped presets against both counter namings on a real Prometheus.

Knative's queue-proxy (OpenCensus exporter) names its request counter
``revision_app_request_count``; Prometheus 3, OpenMetrics ingestion and OpenTelemetry exporters
store it as ``revision_app_request_count_total``. The ``knative`` preset must read both, with
identical counts (exactly the generator's), and judge both the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import promserver
import pytest

from analyzer.analysis import run_analysis
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import ProportionObservation
from analyzer.domain.verdict import Verdict
from analyzer.metrics.base import TimeWindow
from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.profiles import load_preset, parse_profile

pytestmark = pytest.mark.prometheus

TICK = 15.0
MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
REVISIONS = {
    "fraud-00001": RevisionBehaviour(weight=0.9),
    "fraud-00002": RevisionBehaviour(weight=0.1),
    "fraud-00003": RevisionBehaviour(weight=0.1, error_rate=0.05),
}


def _scenario(naming: str) -> promserver.Scenario:
    end = promserver.aligned_end(TICK)
    return promserver.Scenario(
        seed=31,
        origin=end - timedelta(hours=1),
        ticks=240,
        tick_seconds=TICK,
        request_rate=100.0,
        revisions=REVISIONS,
        counter_naming=naming,
    )


@pytest.fixture(scope="module", params=["classic", "total"])
def naming(
    request: pytest.FixtureRequest,
    prometheus_binaries: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[promserver.Scenario, PrometheusSource]]:
    scenario = _scenario(str(request.param))
    workdir = tmp_path_factory.mktemp(f"naming-{request.param}")
    written = workdir / "data.om"
    promserver.write_openmetrics(written, scenario)
    expected = (
        "revision_app_request_count_total{"
        if request.param == "total"
        else ("revision_app_request_count{")
    )
    assert expected in written.read_text()  # the data really use that naming
    promserver.backfill(prometheus_binaries[1], written, workdir / "data")
    running = promserver.start(prometheus_binaries[0], workdir / "data", workdir)
    with httpx.Client() as http:
        source = PrometheusSource(
            base_url=running.url,
            http=http,
            timeout=5.0,
            retry=RetryPolicy(attempts=2, initial_backoff=0.01),
        )
        try:
            yield scenario, source
        finally:
            running.stop()


def _synthetic(scenario: promserver.Scenario) -> SyntheticSource:
    return SyntheticSource(
        seed=scenario.seed,
        origin=scenario.origin,
        revisions=scenario.revisions,
        request_rate=scenario.request_rate,
        tick_seconds=scenario.tick_seconds,
    )


def test_the_knative_preset_reads_the_counter_under_either_name(
    naming: tuple[promserver.Scenario, PrometheusSource],
) -> None:
    scenario, source = naming
    loaded = load_preset("knative")
    spec = next(m for m in loaded.profile.metrics if m.name == "errors")
    window = TimeWindow.ending(scenario.end, timedelta(minutes=30))
    kwargs = {"model": MODEL, "baseline": "fraud-00001", "canary": "fraud-00003", "window": window}
    got = source.observe(spec, loaded.queries["errors"], **kwargs)  # type: ignore[arg-type]
    want = _synthetic(scenario).observe(spec, loaded.queries["errors"], **kwargs)  # type: ignore[arg-type]
    assert isinstance(got, ProportionObservation), got
    assert got == want
    assert got.canary.events > 0


def test_the_knative_preset_judges_both_namings_alike(
    naming: tuple[promserver.Scenario, PrometheusSource],
) -> None:
    scenario, source = naming
    loaded = load_preset("knative")
    window = TimeWindow.ending(scenario.end, timedelta(minutes=30))
    bad, _ = run_analysis(
        loaded.profile, loaded.queries, source, MODEL, "fraud-00001", "fraud-00003", window
    )
    good, _ = run_analysis(
        loaded.profile, loaded.queries, source, MODEL, "fraud-00001", "fraud-00002", window
    )
    assert bad.verdict is Verdict.FAIL
    assert next(m for m in bad.metrics if m.name == "errors").verdict is Verdict.FAIL
    assert good.verdict is not Verdict.FAIL
    assert all(m.verdict is not Verdict.ERROR for m in good.metrics), good.reason


def test_renamed_label_roles_reach_the_queries(
    naming: tuple[promserver.Scenario, PrometheusSource],
) -> None:
    # A cluster whose relabelling calls the revision label differently: rename the role, not
    # the whole selector. Here the role is pointed at a label that does not exist, so the data
    # disappear: proof the rename reaches the query sent to Prometheus.
    scenario, source = naming
    renamed = parse_profile(
        "name: t\nlabels: {revision: kn_revision}\nmetrics:\n  - use: knative/errors\n"
    )
    assert 'kn_revision="{revision}"' in (renamed.queries["errors"].total or "")
    window = TimeWindow.ending(scenario.end, timedelta(minutes=30))
    result, _ = run_analysis(
        renamed.profile, renamed.queries, source, MODEL, "fraud-00001", "fraud-00002", window
    )
    assert result.verdict is Verdict.ERROR
