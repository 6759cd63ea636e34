"""DatadogSource against the fake Datadog API over real HTTP (tests/fakes/datadog.py).

The fake holds the same seeded scenario as Prometheus and the synthetic source (ddload.py), so
counts must equal the synthetic source's exactly; verdicts must catch the regressions; and every
failure Datadog can answer (429 storms, bad keys, 5xx, timeouts, unparseable queries, stale or
partial data) must be a missing observation, never a pass.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import promserver
import pytest

from analyzer.analysis import analyze_command, run_analysis
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    HistogramObservation,
    MissingObservation,
    Observation,
    ThresholdObservation,
)
from analyzer.domain.verdict import Verdict
from analyzer.metrics.base import TimeWindow
from analyzer.metrics.datadog import DatadogRetryPolicy, DatadogSource
from analyzer.metrics.synthetic import SyntheticSource
from analyzer.metrics.synthetic.generator import latency_quantile
from analyzer.profiles import LoadedProfile, load_profile
from tests.fakes.datadog import FakeDatadog, Fault

PROFILE = load_profile(Path(__file__).with_name("profile-datadog.yaml"))
PROMQL_PROFILE = load_profile(Path(__file__).with_name("profile.yaml"))
MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
COUNTERS = ("latency", "errors", "false_positives", "decisions")
BASELINE = "fraud-00001"


@pytest.fixture(autouse=True)
def _no_faults_left_behind(fake_datadog: FakeDatadog) -> Iterator[None]:
    """The fake lives for the session: each test starts and ends without injected faults."""
    fake_datadog.clear_faults()
    yield
    fake_datadog.clear_faults()


def observe(
    source: DatadogSource | SyntheticSource,
    metric: str,
    window: TimeWindow,
    canary: str = "fraud-00002",
    profile: LoadedProfile = PROFILE,
) -> Observation:
    spec = next(m for m in profile.profile.metrics if m.name == metric)
    return source.observe(
        spec, profile.queries[metric], model=MODEL, baseline=BASELINE, canary=canary, window=window
    )


def source_for(fake: FakeDatadog, http: httpx.Client, **kwargs: object) -> DatadogSource:
    options: dict[str, object] = {
        "timeout": 2.0,
        "retry": DatadogRetryPolicy(attempts=3, initial_backoff=0.01, max_rate_limit_wait=1.0),
    }
    options.update(kwargs)
    return DatadogSource(
        base_url=fake.url,
        api_key=fake.api_key,
        application_key=fake.application_key,
        http=http,
        **options,  # type: ignore[arg-type]
    )


# --- exact counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", COUNTERS)
@pytest.mark.parametrize("canary", ["fraud-00002", "fraud-00003", "fraud-00004", "fraud-00005"])
@pytest.mark.parametrize("minutes", [15, 60])
def test_counts_equal_the_generators(
    datadog_source: DatadogSource,
    synthetic_source: SyntheticSource,
    scenario: promserver.Scenario,
    metric: str,
    canary: str,
    minutes: int,
) -> None:
    window = TimeWindow.ending(scenario.end, timedelta(minutes=minutes))
    from_datadog = observe(datadog_source, metric, window, canary)
    assert not isinstance(from_datadog, MissingObservation), from_datadog
    # The synthetic source reads PromQL profiles; its counts do not depend on the query text.
    assert from_datadog == observe(synthetic_source, metric, window, canary, profile=PROMQL_PROFILE)


def test_bucket_bounds_are_scaled_and_end_in_inf(
    datadog_source: DatadogSource, last_hour: TimeWindow
) -> None:
    obs = observe(datadog_source, "latency", last_hour)
    assert isinstance(obs, HistogramObservation)
    assert obs.bounds[0] == pytest.approx(0.005)
    assert math.isinf(obs.bounds[-1])


def test_one_request_per_metric_with_both_revisions(
    datadog_source: DatadogSource, fake_datadog: FakeDatadog, last_hour: TimeWindow
) -> None:
    before = len(fake_datadog.query_requests())
    observe(datadog_source, "errors", last_hour)
    sent = fake_datadog.query_requests()[before:]
    assert len(sent) == 1
    request = sent[0]
    assert request.headers["dd-api-key"] == fake_datadog.api_key
    assert request.headers["dd-application-key"] == fake_datadog.application_key
    assert request.params["from"] == str(int(last_hour.start.timestamp()))
    assert request.params["to"] == str(int(last_hour.end.timestamp()))
    query = request.params["query"]
    assert query.count(".as_count()") == 4  # events and total, baseline and canary
    assert "revision_name:fraud-00001" in query
    assert "revision_name:fraud-00002" in query


def test_distribution_percentile_threshold(
    datadog_source: DatadogSource, scenario: promserver.Scenario
) -> None:
    # The profile's p99 is `.rollup(<window>)`: one bucket per window length, aligned to the
    # epoch as Datadog aligns them, and the source reads the last one. Over "the last hour"
    # that bucket held anything from one scrape to an hour of draws, depending on the minute
    # the test ran, and with a few scrapes' draws the p99 was once outside 25 % (2026-12-07).
    # A window ending just before an hour boundary has one whole hour in its last bucket.
    hour = int(scenario.end.timestamp()) // 3600 * 3600
    whole_hour = TimeWindow(
        start=datetime.fromtimestamp(hour - 3601, tz=UTC),
        end=datetime.fromtimestamp(hour - 1, tz=UTC),
    )
    assert whole_hour.start >= scenario.origin
    obs = observe(datadog_source, "p99_latency", whole_hour, canary="fraud-00003")
    assert isinstance(obs, ThresholdObservation)
    # An hour of draws per revision: within 25 % of the analytic p99.
    analytic = latency_quantile(scenario.revisions["fraud-00003"], 0.99) / 1000
    assert obs.canary == pytest.approx(analytic, rel=0.25)
    assert obs.baseline is not None
    assert obs.baseline < obs.canary


# --- verdicts -------------------------------------------------------------------------------


def verdict(source: DatadogSource, canary: str, window: TimeWindow) -> Verdict:
    result, _ = run_analysis(
        PROFILE.profile, PROFILE.queries, source, MODEL, BASELINE, canary, window
    )
    return result.verdict


@pytest.mark.parametrize(
    ("canary", "fails"),
    [("fraud-00002", False), ("fraud-00003", True), ("fraud-00004", True), ("fraud-00005", True)],
)
def test_regressions_fail_and_an_identical_canary_does_not(
    datadog_source: DatadogSource, last_hour: TimeWindow, canary: str, fails: bool
) -> None:
    assert (verdict(datadog_source, canary, last_hour) is Verdict.FAIL) == fails


def test_analyze_command_with_a_datadog_profile(
    datadog_source: DatadogSource, scenario: promserver.Scenario
) -> None:
    profile = Path(__file__).with_name("profile-datadog.yaml")
    common = {"profile": profile, "model": f"{MODEL}", "baseline": BASELINE, "since": "1h"}
    slow = analyze_command(**common, canary="fraud-00003", now=scenario.end, source=datadog_source)
    same = analyze_command(**common, canary="fraud-00002", now=scenario.end, source=datadog_source)
    assert slow["verdict"] == "fail"
    assert same["verdict"] != "fail"


# --- failures are data, never a pass --------------------------------------------------------


def test_a_429_storm_never_passes(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    source = source_for(fake_datadog, http)
    fake_datadog.fail_next(Fault(status=429, times=10_000, headers={"X-RateLimit-Reset": "0"}))
    for canary in ("fraud-00002", "fraud-00003"):
        result, _ = run_analysis(
            PROFILE.profile, PROFILE.queries, source, MODEL, BASELINE, canary, last_hour
        )
        assert result.verdict is Verdict.ERROR
        assert all(m.verdict is not Verdict.PASS for m in result.metrics)
    obs = observe(source, "errors", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "rate limited" in obs.reason


def test_a_429_is_waited_out_when_the_reset_is_near(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    waits: list[float] = []
    source = source_for(fake_datadog, http, sleep=waits.append)
    fake_datadog.fail_next(Fault(status=429, headers={"X-RateLimit-Reset": "1"}))
    obs = observe(source, "errors", last_hour)
    assert not isinstance(obs, MissingObservation), obs
    assert waits == [1.0]  # the reset, not the 10 ms backoff


def test_a_429_resetting_later_than_a_look_can_wait_is_not_retried(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    waits: list[float] = []
    source = source_for(fake_datadog, http, sleep=waits.append)
    fake_datadog.fail_next(Fault(status=429, times=3, headers={"X-RateLimit-Reset": "3599"}))
    before = len(fake_datadog.query_requests())
    obs = observe(source, "errors", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert len(fake_datadog.query_requests()) - before == 1
    assert waits == []


def test_the_fakes_own_rate_limit_answers_429_with_its_headers(
    scenario: promserver.Scenario, http: httpx.Client, last_hour: TimeWindow
) -> None:
    with FakeDatadog(rate_limit=2, rate_limit_period=3600) as fake:
        source = source_for(fake, http, sleep=lambda _: None)
        first = observe(source, "errors", last_hour)
        second = observe(source, "errors", last_hour)
        third = observe(source, "errors", last_hour)
        answer = http.get(
            fake.url + "/api/v1/query",
            params={"from": "0", "to": "60", "query": "sum:x{*}"},
            headers={"DD-API-KEY": fake.api_key, "DD-APPLICATION-KEY": fake.application_key},
        )
    assert isinstance(first, MissingObservation)
    assert not first.source_error
    assert isinstance(second, MissingObservation)
    assert not second.source_error
    assert isinstance(third, MissingObservation)
    assert third.source_error
    assert answer.status_code == 429
    assert answer.headers["X-RateLimit-Limit"] == "2"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert 0 < int(answer.headers["X-RateLimit-Reset"]) <= 3600


def test_bad_keys_are_a_source_error_and_not_retried(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    source = DatadogSource(
        base_url=fake_datadog.url, api_key="wrong", application_key="wrong", http=http
    )
    before = len(fake_datadog.query_requests())
    obs = observe(source, "latency", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "keys refused" in obs.reason
    assert "403" in obs.reason
    assert len(fake_datadog.query_requests()) - before == 1


def test_a_5xx_is_retried_then_answered(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    source = source_for(fake_datadog, http, sleep=lambda _: None)
    fake_datadog.fail_next(Fault(status=503, times=2))
    obs = observe(source, "latency", last_hour)
    assert isinstance(obs, HistogramObservation)


def test_a_5xx_storm_is_a_source_error(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    source = source_for(fake_datadog, http, sleep=lambda _: None)
    fake_datadog.fail_next(Fault(status=500, times=3))
    obs = observe(source, "latency", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "HTTP 500" in obs.reason


def test_a_timeout_is_a_source_error(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    source = source_for(
        fake_datadog, http, timeout=0.2, retry=DatadogRetryPolicy(attempts=1), sleep=lambda _: None
    )
    fake_datadog.fail_next(Fault(status=200, delay_seconds=0.6))
    obs = observe(source, "latency", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "timed out" in obs.reason


def test_a_non_json_answer_is_a_source_error(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    source = source_for(fake_datadog, http)
    fake_datadog.fail_next(Fault(status=200, body="<html>maintenance</html>"))
    obs = observe(source, "latency", last_hour)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error


def test_an_unparseable_query_is_a_source_error_not_retried(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    profile = load_profile(Path(__file__).with_name("profile-datadog.yaml"))
    broken = {
        **profile.queries,
        "cpu": type(profile.queries["cpu"])(
            expr="avg:fraud.model_cpu_utilisation{revision:{revision}}.timeshift(60)",
            language=profile.queries["cpu"].language,
        ),
    }
    source = source_for(fake_datadog, http)
    before = len(fake_datadog.query_requests())
    spec = next(m for m in profile.profile.metrics if m.name == "cpu")
    obs = source.observe(
        spec, broken["cpu"], model=MODEL, baseline=BASELINE, canary="fraud-00002", window=last_hour
    )
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "400" in obs.reason
    assert "parsing" in obs.reason
    assert len(fake_datadog.query_requests()) - before == 1


@pytest.mark.parametrize(
    ("canary", "reason"),
    [
        ("fraud-00009", "stale data"),
        ("fraud-00008", "partial histogram"),
        ("fraud-00007", "bucket layouts differ"),
        ("fraud-09999", "no selector series"),
    ],
)
def test_unusable_data_is_nodata(
    datadog_source: DatadogSource, last_hour: TimeWindow, canary: str, reason: str
) -> None:
    obs = observe(datadog_source, "latency", last_hour, canary=canary)
    assert isinstance(obs, MissingObservation)
    assert not obs.source_error
    assert reason in obs.reason


# --- refused before anything is sent -------------------------------------------------------


@pytest.mark.parametrize("bad", ["fraud-00002}", "fraud-00002,env:prod", "FRAUD", "a b", "x:y"])
def test_injection_is_refused_before_any_request(
    datadog_source: DatadogSource, fake_datadog: FakeDatadog, last_hour: TimeWindow, bad: str
) -> None:
    before = len(fake_datadog.query_requests())
    with pytest.raises(InvalidInputError):
        observe(datadog_source, "errors", last_hour, canary=bad)
    assert len(fake_datadog.query_requests()) == before


def test_a_promql_profile_is_refused_by_the_datadog_source(
    datadog_source: DatadogSource, fake_datadog: FakeDatadog, last_hour: TimeWindow
) -> None:
    before = len(fake_datadog.query_requests())
    with pytest.raises(InvalidInputError, match="promql"):
        observe(datadog_source, "errors", last_hour, profile=PROMQL_PROFILE)
    assert len(fake_datadog.query_requests()) == before


# --- wiring and the CLI ---------------------------------------------------------------------


def test_settings_build_a_datadog_source(fake_datadog: FakeDatadog, last_hour: TimeWindow) -> None:
    from analyzer.config import Settings
    from analyzer.wiring import build_looks, build_source

    settings = Settings(
        metric_source="datadog",
        datadog={
            "api_url": fake_datadog.url,
            "api_key": fake_datadog.api_key,
            "application_key": fake_datadog.application_key,
        },
    )
    closables: list[object] = []
    source = build_source(settings, closables)
    try:
        assert isinstance(source, DatadogSource)
        assert isinstance(observe(source, "latency", last_hour), HistogramObservation)
        looks = build_looks(settings, source)
        looks.close()
    finally:
        for closable in closables:
            closable.close()  # type: ignore[attr-defined]


def test_settings_without_keys_fail_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.config import Settings
    from analyzer.domain.errors import ConfigurationError
    from analyzer.wiring import build_source

    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.delenv("DD_APP_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"datadog\.api_key"):
        build_source(Settings(metric_source="datadog"), [])


def cli_analyze(
    fake: FakeDatadog, tmp_path: Path, canary: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CANARY_ANALYZER_", "DD_"))},
        "CANARY_ANALYZER_DATA_DIR": str(tmp_path),
        "CANARY_ANALYZER_DATADOG__API_URL": fake.url,
        "CANARY_ANALYZER_DATADOG__API_KEY": fake.api_key,
        "CANARY_ANALYZER_DATADOG__APPLICATION_KEY": fake.application_key,
        **env,
    }
    profile = str(Path(__file__).with_name("profile-datadog.yaml"))
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", "analyze", "--profile", profile,
         "--model", str(MODEL), "--baseline", BASELINE, "--canary", canary, "--since", "1h"],
        env=environment, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_cli_analyze_reads_datadog_for_a_datadog_profile(
    fake_datadog: FakeDatadog, tmp_path: Path
) -> None:
    slow = cli_analyze(fake_datadog, tmp_path, "fraud-00003")
    same = cli_analyze(fake_datadog, tmp_path, "fraud-00002")
    assert slow.returncode == 0, slow.stderr
    assert json.loads(slow.stdout)["verdict"] == "fail"
    assert json.loads(same.stdout)["verdict"] != "fail"


def test_cli_analyze_without_datadog_keys_exits_two(
    fake_datadog: FakeDatadog, tmp_path: Path
) -> None:
    refused = cli_analyze(
        fake_datadog, tmp_path, "fraud-00002", CANARY_ANALYZER_DATADOG__API_KEY=""
    )
    assert refused.returncode == 2
    assert "datadog.api_key" in refused.stderr


# --- presets ---------------------------------------------------------------------------------


def test_the_datadog_knative_preset_reads_the_openmetrics_check_names(
    datadog_source: DatadogSource, synthetic_source: SyntheticSource, last_hour: TimeWindow
) -> None:
    """ddload.py sends what the OpenMetrics check (namespace knative) makes of the queue-proxy."""
    from analyzer.profiles import parse_profile

    loaded = parse_profile(
        "name: dd\nmetrics:\n  - use: datadog-knative/latency\n  - use: datadog-knative/errors\n"
    )
    for metric in ("latency", "errors"):
        got = observe(datadog_source, metric, last_hour, "fraud-00004", profile=loaded)
        assert got == observe(
            synthetic_source, metric, last_hour, "fraud-00004", profile=PROMQL_PROFILE
        )
    for canary, fails in (("fraud-00002", False), ("fraud-00003", True), ("fraud-00004", True)):
        result, _ = run_analysis(
            loaded.profile, loaded.queries, datadog_source, MODEL, BASELINE, canary, last_hour
        )
        assert (result.verdict is Verdict.FAIL) == fails, (canary, result.reason)


def test_the_fake_answers_distributions_as_documented(
    fake_datadog: FakeDatadog, http: httpx.Client, last_hour: TimeWindow
) -> None:
    headers = {
        "DD-API-KEY": fake_datadog.api_key,
        "DD-APPLICATION-KEY": fake_datadog.application_key,
    }
    scope = "{revision:fraud-00001}"
    params = {
        "from": str(int(last_hour.start.timestamp())),
        "to": str(int(last_hour.end.timestamp())),
    }
    url = fake_datadog.url + "/api/v1/query"
    aggregator = http.get(
        url,
        headers=headers,
        params={**params, "query": f"p99:fraud.request_latency{scope}.rollup(avg, 3600)"},
    )
    interval = http.get(
        url,
        headers=headers,
        params={**params, "query": f"p99:fraud.request_latency{scope}.rollup(300)"},
    )
    default = http.get(
        url, headers=headers, params={**params, "query": f"avg:fraud.model_cpu_utilisation{scope}"}
    )
    assert aggregator.status_code == 400
    assert "no rollup aggregator" in aggregator.json()["errors"][0]
    assert interval.status_code == 200
    assert {s["interval"] for s in interval.json()["series"]} == {300}
    assert default.json()["series"][0]["interval"] == 20  # Datadog's API default for an hour
