"""PrometheusSource and the analyze path against a real, backfilled Prometheus."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import promserver
import pytest
from structlog.testing import capture_logs

from analyzer.analysis import analyze_command, run_analysis
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    HistogramObservation,
    MissingObservation,
    Observation,
    ProportionObservation,
    SamplesObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import MetricSpec, ThresholdBound
from analyzer.domain.verdict import MetricKind, Verdict
from analyzer.metrics.base import CounterMode, MetricQuery, MetricSource, TimeWindow
from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy
from analyzer.profiles import LoadedProfile, load_profile

PROFILE_PATH = Path(__file__).with_name("profile.yaml")
MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
BASELINE = "fraud-00001"
REQUESTS_PER_HOUR = 20.0 * 3600  # conftest.RATE requests per second, per revision

pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def loaded() -> LoadedProfile:
    return load_profile(PROFILE_PATH)


def observe(
    source: MetricSource, loaded: LoadedProfile, metric: str, canary: str, window: TimeWindow
) -> Observation:
    spec = next(m for m in loaded.profile.metrics if m.name == metric)
    return source.observe(
        spec, loaded.queries[metric], model=MODEL, baseline=BASELINE, canary=canary, window=window
    )


# --- exact evidence ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["latency", "errors", "false_positives", "decisions"])
@pytest.mark.parametrize("canary", ["fraud-00003", "fraud-00006"])
def test_counters_match_the_generator_exactly(
    prometheus_source: PrometheusSource,
    synthetic_source: MetricSource,
    loaded: LoadedProfile,
    last_hour: TimeWindow,
    metric: str,
    canary: str,
) -> None:
    # fraud-00006's pod restarts inside the window: exact mode must still count every request.
    from_prometheus = observe(prometheus_source, loaded, metric, canary, last_hour)
    from_generator = observe(synthetic_source, loaded, metric, canary, last_hour)
    assert not isinstance(from_prometheus, MissingObservation), from_prometheus
    assert from_prometheus == from_generator


def test_histogram_bounds_are_seconds_with_inf_last(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    obs = observe(prometheus_source, loaded, "latency", "fraud-00002", last_hour)
    assert isinstance(obs, HistogramObservation)
    assert obs.bounds[0] == pytest.approx(0.005)
    assert obs.bounds[-1] == float("inf")
    assert sum(obs.canary) == pytest.approx(REQUESTS_PER_HOUR, rel=0.05)


def test_increase_mode_agrees_with_raw_mode_within_extrapolation(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    spec = next(m for m in loaded.profile.metrics if m.name == "errors")
    query = loaded.queries["errors"]
    raw = prometheus_source.observe(
        spec, query, model=MODEL, baseline=BASELINE, canary="fraud-00004", window=last_hour
    )
    extrapolated = prometheus_source.observe(
        spec,
        replace(query, mode=CounterMode.INCREASE),
        model=MODEL,
        baseline=BASELINE,
        canary="fraud-00004",
        window=last_hour,
    )
    assert isinstance(raw, ProportionObservation)
    assert isinstance(extrapolated, ProportionObservation)
    assert extrapolated.canary.total == pytest.approx(raw.canary.total, rel=0.02)


def test_samples_and_threshold(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    cpu = observe(prometheus_source, loaded, "cpu", "fraud-00002", last_hour)
    assert isinstance(cpu, SamplesObservation)
    assert len(cpu.canary) == 61  # one per 60 s step over an hour, both ends included
    assert 0.3 < sum(cpu.canary) / len(cpu.canary) < 0.5
    p99 = observe(prometheus_source, loaded, "p99_latency", "fraud-00003", last_hour)
    assert isinstance(p99, ThresholdObservation)
    assert p99.baseline is not None
    assert p99.canary > p99.baseline  # the slow canary's p99 is higher, in seconds
    assert 0.1 < p99.canary < 1.0


# --- verdicts -------------------------------------------------------------------------------


def verdicts(
    source: MetricSource, loaded: LoadedProfile, canary: str, window: TimeWindow
) -> dict[str, Verdict]:
    result, _ = run_analysis(
        loaded.profile, loaded.queries, source, MODEL, BASELINE, canary, window
    )
    return {"overall": result.verdict, **{m.name: m.verdict for m in result.metrics}}


def test_latency_regression_fails(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    got = verdicts(prometheus_source, loaded, "fraud-00003", last_hour)
    assert got["latency"] is Verdict.FAIL
    assert got["overall"] is Verdict.FAIL


def test_identical_canary_does_not_fail(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    got = verdicts(prometheus_source, loaded, "fraud-00002", last_hour)
    assert Verdict.FAIL not in got.values(), got
    assert Verdict.ERROR not in got.values(), got


def test_error_rate_regression_is_caught(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    got = verdicts(prometheus_source, loaded, "fraud-00004", last_hour)
    assert got["errors"] is Verdict.FAIL
    assert got["overall"] is Verdict.FAIL


def test_business_regression_is_caught(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    got = verdicts(prometheus_source, loaded, "fraud-00005", last_hour)
    assert got["false_positives"] is Verdict.FAIL
    assert got["decisions"] is Verdict.FAIL


def test_analyze_command_prints_the_verdict_json(
    prometheus: promserver.RunningPrometheus, scenario: promserver.Scenario
) -> None:
    out = analyze_command(
        profile=PROFILE_PATH,
        model="models/fraud",
        baseline=BASELINE,
        canary="fraud-00003",
        since="1h",
        prometheus_url=prometheus.url,
        now=scenario.end,
    )
    assert out["verdict"] == "fail"
    assert out["canary"] == "fraud-00003"
    assert {m["name"] for m in out["metrics"]} == {
        "latency",
        "errors",
        "false_positives",
        "decisions",
        "cpu",
        "p99_latency",
    }


# --- failure modes are data -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "metric", "reason"),
    [
        ("fraud-09999", "latency", "no bucket series"),  # empty selector
        ("fraud-09999", "errors", "no total series"),
        ("fraud-00007", "latency", "bucket layouts differ"),
        ("fraud-00008", "latency", "+Inf"),  # partial histogram
        ("fraud-00009", "errors", "stale"),  # stopped reporting
    ],
)
def test_unusable_answers_are_nodata(
    prometheus_source: PrometheusSource,
    loaded: LoadedProfile,
    last_hour: TimeWindow,
    canary: str,
    metric: str,
    reason: str,
) -> None:
    obs = observe(prometheus_source, loaded, metric, canary, last_hour)
    assert isinstance(obs, MissingObservation)
    assert not obs.source_error
    assert reason in obs.reason


def test_nan_is_nodata(prometheus_source: PrometheusSource, last_hour: TimeWindow) -> None:
    spec = MetricSpec(name="nan", kind=MetricKind.THRESHOLD, bound=ThresholdBound(max=1.0))
    query = MetricQuery(expr='sum(revision_app_request_count{revision_name="{revision}"}) * 0 / 0')
    obs = prometheus_source.observe(
        spec, query, model=MODEL, baseline=BASELINE, canary="fraud-00002", window=last_hour
    )
    assert isinstance(obs, MissingObservation)
    assert "NaN" in obs.reason or "nan" in obs.reason


def test_nodata_judged_as_error_never_pass(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, last_hour: TimeWindow
) -> None:
    got = verdicts(prometheus_source, loaded, "fraud-09999", last_hour)
    assert got["overall"] is Verdict.ERROR
    assert Verdict.PASS not in {got["latency"], got["errors"]}


def test_query_timeout_is_retried_then_a_source_error(
    prometheus: promserver.RunningPrometheus,
    http: httpx.Client,
    loaded: LoadedProfile,
    last_hour: TimeWindow,
) -> None:
    # A 1 µs server-side evaluation timeout: Prometheus answers 503 errorType "timeout".
    source = PrometheusSource(
        base_url=prometheus.url,
        http=http,
        timeout=5.0,
        query_timeout=1e-6,
        retry=RetryPolicy(attempts=3, initial_backoff=0.01),
    )
    with capture_logs() as logs:
        obs = observe(source, loaded, "errors", "fraud-00002", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "timeout" in obs.reason
    assert [e["attempt"] for e in logs if e["event"] == "prometheus.query.failed"] == [1, 2, 3]


def test_stopped_server_is_a_source_error(
    prometheus_binaries: tuple[str, str],
    tmp_path: Path,
    http: httpx.Client,
    loaded: LoadedProfile,
    last_hour: TimeWindow,
) -> None:
    stopped = promserver.start(prometheus_binaries[0], tmp_path / "data", tmp_path)
    stopped.stop()
    source = PrometheusSource(
        base_url=stopped.url,
        http=http,
        timeout=1.0,
        retry=RetryPolicy(attempts=2, initial_backoff=0.01),
    )
    obs = observe(source, loaded, "latency", "fraud-00002", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "unreachable" in obs.reason
    result, _ = run_analysis(
        loaded.profile, loaded.queries, source, MODEL, BASELINE, "fraud-00002", last_hour
    )
    assert result.verdict is Verdict.ERROR


def test_window_before_any_data_is_nodata(
    prometheus_source: PrometheusSource, loaded: LoadedProfile, scenario: promserver.Scenario
) -> None:
    window = TimeWindow.ending(scenario.origin - timedelta(hours=3), timedelta(hours=1))
    obs = observe(prometheus_source, loaded, "latency", "fraud-00002", window)
    assert isinstance(obs, MissingObservation)
    assert not obs.source_error


# --- injection --------------------------------------------------------------------------------

INJECTIONS = [
    'fraud-00001"} or vector(1) or x{a="',
    'fraud-00003",revision_name=~".*',
    "fraud-00003\nfraud-00001",
    "fraud-0000[0-9]",
    "fraud-00003\\",
    "fraud-00003,fraud-00001",
]


@pytest.mark.parametrize("canary", INJECTIONS)
def test_injection_is_refused_and_never_sent(
    prometheus: promserver.RunningPrometheus,
    loaded: LoadedProfile,
    last_hour: TimeWindow,
    canary: str,
) -> None:
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}) as client:
        source = PrometheusSource(base_url=prometheus.url, http=client)
        with pytest.raises(InvalidInputError, match="canary"):
            run_analysis(loaded.profile, loaded.queries, source, MODEL, BASELINE, canary, last_hour)
        for metric in ("latency", "errors", "decisions", "cpu", "p99_latency"):
            with pytest.raises(InvalidInputError):
                observe(source, loaded, metric, canary, last_hour)
    assert sent == []
