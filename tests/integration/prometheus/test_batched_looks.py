"""One counter query per look (issue 20): ``PrometheusSource.observe_many`` against the real
Prometheus gives exactly the observations of per-metric reads, look after look (whole, then
incremental, across a reset, a vanishing series, series born inside the window, no data, stale
data), loses only the metric at fault, fails once (not once per metric) when Prometheus is down,
and asks one counter query per look."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import httpx
import promserver
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from analyzer.analysis import run_analysis
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import MissingObservation, Observation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import MetricKind
from analyzer.judge import JudgeState
from analyzer.metrics.base import (
    BatchedMetricSource,
    MetricQuery,
    MetricSource,
    TimeWindow,
)
from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy
from analyzer.metrics.prometheus.counters import TAG_LABEL
from analyzer.metrics.synthetic import RevisionBehaviour
from analyzer.profiles import LoadedProfile, load_preset, parse_profile, preset_names

pytestmark = pytest.mark.prometheus

MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
BASELINE = "fraud-00001"
SHADOW = """
  - name: shadow_decisions
    kind: paired
    categories: [approve, review, decline]
    tolerance: 0.02
    adverse: {from: approve, to: decline}
    query:
      selector: 'model_shadow_decisions_total{namespace="{namespace}",model="{model}",
        revision="{revision}"}'
      incumbent_label: incumbent
      category_label: challenger
"""
FIVE_COUNTERS = parse_profile(
    "name: five\nmetrics:\n  - use: knative/latency\n  - use: knative/errors\n"
    "  - use: business/false_positives\n  - use: business/decisions\n" + SHADOW
)
EVERY_KIND = parse_profile(
    (Path(__file__).with_name("profile.yaml").read_text() + SHADOW).replace(
        "name: integration", "name: every-kind"
    )
)
# Canaries whose data are broken on purpose (conftest.SPECIALS), one that never existed, an
# identical one and one whose shadow decisions differ.
CANARIES = [
    "fraud-00002",  # identical to the baseline
    "fraud-00005",  # other decision mix and shadow disagreement
    "fraud-00006",  # every counter resets 20 minutes before the data end
    "fraud-00007",  # another bucket layout
    "fraud-00008",  # no le="+Inf" bucket
    "fraud-00009",  # series stop 10 minutes before the data end: vanished, then stale
    "fraud-09999",  # no series at all
]


def metrics_of(loaded: LoadedProfile) -> list[tuple[MetricSpec, MetricQuery]]:
    return [(s, loaded.queries[s.name]) for s in loaded.profile.metrics]


def shipped_profiles() -> list[LoadedProfile]:
    """Every shipped PromQL preset (those whose labels the backfill does not use have no data:
    the missing observations must agree too), and the two profiles of this module."""
    presets = [load_preset(name) for name in preset_names() if not name.startswith("datadog")]
    return [*presets, FIVE_COUNTERS, EVERY_KIND]


def per_metric(
    source: MetricSource, metrics: Sequence[tuple[MetricSpec, MetricQuery]], canary: str,
    window: TimeWindow,
) -> dict[str, Observation]:  # fmt: skip
    return {
        spec.name: source.observe(
            spec, query, model=MODEL, baseline=BASELINE, canary=canary, window=window
        )
        for spec, query in metrics
    }


def together(
    source: BatchedMetricSource, metrics: Sequence[tuple[MetricSpec, MetricQuery]], canary: str,
    window: TimeWindow,
) -> dict[str, Observation]:  # fmt: skip
    return source.observe_many(
        metrics, model=MODEL, baseline=BASELINE, canary=canary, window=window
    )


class Sent:
    """Every PromQL query sent, by an httpx event hook."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        query = httpx.QueryParams(request.content.decode()).get("query")
        if query:
            self.queries.append(query)

    def counter_queries(self) -> list[str]:
        return [q for q in self.queries if TAG_LABEL in q and "m0-" in q]


def source_at(url: str, http: httpx.Client | None = None, **kwargs: object) -> PrometheusSource:
    options: dict[str, object] = {
        "timeout": 5.0,
        "retry": RetryPolicy(attempts=2, initial_backoff=0.01),
    }
    return PrometheusSource(base_url=url, http=http, **(options | kwargs))  # type: ignore[arg-type]


@pytest.fixture
def sessions(
    prometheus: promserver.RunningPrometheus,
) -> Iterator[tuple[PrometheusSource, PrometheusSource]]:
    """Two sessions' sources over the same Prometheus: one reads batched, one per metric."""
    batched, alone = source_at(prometheus.url), source_at(prometheus.url)
    yield batched, alone
    batched.close()
    alone.close()


def assert_same_looks(
    batched: PrometheusSource,
    alone: PrometheusSource,
    metrics: Sequence[tuple[MetricSpec, MetricQuery]],
    canary: str,
    windows: Sequence[TimeWindow],
) -> None:
    for window in windows:
        got = together(batched, metrics, canary, window)
        expected = per_metric(alone, metrics, canary, window)
        assert list(got) == list(expected)
        assert got == expected, (canary, window)


# --- equivalence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", shipped_profiles(), ids=lambda p: p.profile.name)
@pytest.mark.parametrize("canary", CANARIES)
def test_a_session_of_looks_reads_what_per_metric_reads(
    sessions: tuple[PrometheusSource, PrometheusSource],
    scenario: promserver.Scenario,
    profile: LoadedProfile,
    canary: str,
) -> None:
    # A 90-minute session looked at every 5 minutes up to the data end: the first look whole,
    # the later ones incremental; fraud-00006 resets at minute 70, fraud-00009's series stop at
    # minute 80 (fresh for 5 more minutes, then stale).
    batched, alone = sessions
    start = scenario.end - timedelta(minutes=90)
    windows = [TimeWindow(start=start, end=start + timedelta(minutes=m)) for m in range(5, 91, 5)]
    assert_same_looks(batched, alone, metrics_of(profile), canary, windows)
    if canary in ("fraud-00002", "fraud-00005") and profile.profile.name in ("five", "every-kind"):
        assert batched.incremental_reads > 0
        assert batched.incremental_reads == alone.incremental_reads


def test_series_born_inside_the_window_count_from_zero_in_both(
    sessions: tuple[PrometheusSource, PrometheusSource], scenario: promserver.Scenario
) -> None:
    batched, alone = sessions
    start = scenario.origin - timedelta(minutes=10)  # before the first sample of every series
    windows = [TimeWindow(start=start, end=start + timedelta(minutes=m)) for m in (5, 15, 17, 40)]
    metrics = metrics_of(EVERY_KIND)
    assert_same_looks(batched, alone, metrics, "fraud-00003", windows)
    last = together(batched, metrics, "fraud-00003", windows[-1])
    assert not any(isinstance(o, MissingObservation) for o in last.values()), last


def test_one_metrics_unusable_data_leave_the_others_observed(
    sessions: tuple[PrometheusSource, PrometheusSource], last_hour: TimeWindow
) -> None:
    batched, _ = sessions
    got = together(batched, metrics_of(FIVE_COUNTERS), "fraud-00007", last_hour)
    latency = got.pop("latency")
    assert isinstance(latency, MissingObservation)
    assert "bucket layouts differ" in latency.reason
    assert not any(isinstance(o, MissingObservation) for o in got.values()), got


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    canary=st.sampled_from(CANARIES),
    start_back=st.integers(min_value=20 * 60, max_value=150 * 60),  # before the origin too
    gaps=st.lists(st.integers(min_value=1, max_value=40 * 60), min_size=1, max_size=5),
)
def test_any_session_reads_what_per_metric_reads(
    prometheus: promserver.RunningPrometheus,
    scenario: promserver.Scenario,
    canary: str,
    start_back: int,
    gaps: list[int],
) -> None:
    start = scenario.end - timedelta(seconds=start_back)
    windows, seconds = [], 0
    for gap in gaps:
        seconds += gap
        if seconds > start_back:
            break
        windows.append(TimeWindow(start=start, end=start + timedelta(seconds=seconds)))
    batched, alone = source_at(prometheus.url), source_at(prometheus.url)
    try:
        assert_same_looks(batched, alone, metrics_of(EVERY_KIND), canary, windows)
    finally:
        batched.close()
        alone.close()


def test_run_analysis_judges_the_same_whether_the_source_batches_or_not(
    sessions: tuple[PrometheusSource, PrometheusSource], scenario: promserver.Scenario
) -> None:
    class PerMetric:
        """The same source without ``observe_many``: every metric read on its own."""

        def __init__(self, source: PrometheusSource) -> None:
            self.observe = source.observe

    batched, alone = sessions
    assert isinstance(batched, BatchedMetricSource)
    assert not isinstance(PerMetric(alone), BatchedMetricSource)
    start = scenario.end - timedelta(minutes=60)
    for canary in ("fraud-00003", "fraud-00005", "fraud-00006"):
        states: list[JudgeState | None] = [None, None]
        for minutes in (10, 20, 30, 45, 60):
            window = TimeWindow(start=start, end=start + timedelta(minutes=minutes))
            results = []
            for i, source in enumerate((batched, PerMetric(alone))):
                result, states[i] = run_analysis(
                    EVERY_KIND.profile, EVERY_KIND.queries, source, MODEL, BASELINE,  # type: ignore[arg-type]
                    canary, window, states[i],
                )  # fmt: skip
                results.append(result)
            assert results[0] == results[1], (canary, minutes)
            assert states[0] == states[1]


@pytest.fixture(scope="module")
def comings_and_goings(
    prometheus_binaries: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[promserver.Scenario, str]]:
    """An hour of data where single series go away (fraud-00002's `review` decisions at minute
    50) or first appear (fraud-00003's 5xx at minute 40) while the revision's other series go
    on."""
    end = promserver.aligned_end(15.0)
    base = RevisionBehaviour(weight=1.0, error_rate=0.02)
    revisions = dict.fromkeys(("fraud-00001", "fraud-00002", "fraud-00003"), base)
    scenario = promserver.Scenario(
        seed=41, origin=end - timedelta(hours=1), ticks=240, tick_seconds=15.0,
        request_rate=20.0, revisions=revisions,
        specials={
            "fraud-00002": promserver.Special(vanish=('decision="review"', 200)),
            "fraud-00003": promserver.Special(born=('response_code_class="5xx"', 160)),
        },
    )  # fmt: skip
    workdir = tmp_path_factory.mktemp("comings-and-goings")
    promserver.write_openmetrics(workdir / "data.om", scenario)
    promserver.backfill(prometheus_binaries[1], workdir / "data.om", workdir / "data")
    running = promserver.start(prometheus_binaries[0], workdir / "data", workdir)
    try:
        yield scenario, running.url
    finally:
        running.stop()


@pytest.mark.parametrize("canary", ["fraud-00002", "fraud-00003"])
def test_series_that_go_away_or_appear_mid_session_read_as_per_metric(
    comings_and_goings: tuple[promserver.Scenario, str], canary: str
) -> None:
    scenario, url = comings_and_goings
    batched, alone = source_at(url), source_at(url)
    start = scenario.end - timedelta(minutes=55)
    windows = [TimeWindow(start=start, end=start + timedelta(minutes=m)) for m in range(3, 56, 3)]
    metrics = metrics_of(EVERY_KIND)
    assert_same_looks(batched, alone, metrics, canary, windows)
    assert batched.incremental_reads > 0
    # The series did come and go: fraud-00002's `review` count stops growing once its series is
    # gone (the other decisions go on); fraud-00003's 5xx count starts from nothing.
    early, *_, late = (together(batched, metrics, canary, w) for w in windows)
    assert not any(isinstance(o, MissingObservation) for o in late.values()), late
    review = [o["decisions"].canary[1] for o in (early, late)]  # type: ignore[attr-defined]
    errors = [o["errors"].canary.events for o in (early, late)]  # type: ignore[attr-defined]
    if canary == "fraud-00002":
        last_two = [together(batched, metrics, canary, w)["decisions"] for w in windows[-2:]]
        assert last_two[0].canary[1] == last_two[1].canary[1] > 0  # type: ignore[attr-defined]
    else:
        assert errors[0] == 0 < errors[1]
    assert review[0] < review[1]


# --- isolation -----------------------------------------------------------------------------------


def test_a_query_prometheus_refuses_leaves_the_other_metrics_observed(
    prometheus: promserver.RunningPrometheus, http: httpx.Client, last_hour: TimeWindow
) -> None:
    # A selector with a range already on it: every query built from it is a parse error (400).
    broken = (
        MetricSpec(name="broken", kind=MetricKind.HISTOGRAM),
        MetricQuery(
            selector='revision_app_request_latencies_bucket{revision_name="{revision}"}[5m]'
        ),
    )
    metrics = [*metrics_of(FIVE_COUNTERS)[:2], broken, *metrics_of(FIVE_COUNTERS)[2:]]
    sent = Sent()
    with httpx.Client(event_hooks={"request": [sent]}) as client, capture_logs() as logs:
        got = together(source_at(prometheus.url, client), metrics, "fraud-00002", last_hour)
    expected = per_metric(source_at(prometheus.url, http), metrics, "fraud-00002", last_hour)
    missing = got.pop("broken")
    assert isinstance(missing, MissingObservation)
    assert missing.source_error
    assert "HTTP 400" in missing.reason
    assert expected.pop("broken") == missing
    assert got == expected
    assert not any(isinstance(o, MissingObservation) for o in got.values()), got
    # the batch once, then each metric alone (the broken one's refused again)
    assert len(sent.queries) == 1 + len(metrics)
    assert [e["metrics"] for e in logs if e["event"] == "prometheus.batch.refused"] == [6]


@pytest.mark.parametrize("down", ["stopped", "timeout"])
def test_prometheus_down_misses_every_batched_metric_after_one_round_of_retries(
    prometheus_binaries: tuple[str, str],
    prometheus: promserver.RunningPrometheus,
    tmp_path: Path,
    http: httpx.Client,
    last_hour: TimeWindow,
    down: str,
) -> None:
    retry = RetryPolicy(attempts=3, initial_backoff=0.05, max_backoff=0.05)
    if down == "stopped":
        stopped = promserver.start(prometheus_binaries[0], tmp_path / "data", tmp_path)
        stopped.stop()
        source = source_at(stopped.url, http, timeout=1.0, retry=retry)
        why = "unreachable"
    else:  # a 1 µs evaluation timeout: Prometheus answers 503 errorType "timeout"
        source = source_at(prometheus.url, http, query_timeout=1e-6, retry=retry)
        why = "timeout"
    metrics = metrics_of(FIVE_COUNTERS)
    started = time.monotonic()
    with capture_logs() as logs:
        got = together(source, metrics, "fraud-00002", last_hour)
    elapsed = time.monotonic() - started
    assert list(got) == [s.name for s, _ in metrics]
    for name, observation in got.items():
        assert isinstance(observation, MissingObservation), name
        assert observation.source_error
        assert observation.reason.startswith(f"{name}: prometheus: ")
        assert why in observation.reason
    # one query's attempts, not one per metric: 3 attempts, 2 waits of 0.05 s
    assert [e["attempt"] for e in logs if e["event"] == "prometheus.query.failed"] == [1, 2, 3]
    assert elapsed < 2.0


# --- the query count -----------------------------------------------------------------------------


def test_a_look_makes_one_counter_query(
    prometheus: promserver.RunningPrometheus, scenario: promserver.Scenario
) -> None:
    start = scenario.end - timedelta(minutes=60)
    sent = Sent()
    with httpx.Client(event_hooks={"request": [sent]}) as client:
        # a source per profile: their counters' selectors are the same, and so is their memory
        sources = [source_at(prometheus.url, client) for _ in range(2)]
        for minutes in (10, 11, 20):  # whole, then incremental twice
            window = TimeWindow(start=start, end=start + timedelta(minutes=minutes))
            for source, (loaded, others) in zip(
                sources, ((FIVE_COUNTERS, 0), (EVERY_KIND, 3)), strict=True
            ):
                sent.queries.clear()
                result, _ = run_analysis(
                    loaded.profile, loaded.queries, source, MODEL, BASELINE, "fraud-00002", window
                )
                assert all(m.verdict.value != "error" for m in result.metrics), result
                # the 5 counter metrics in 1 query; cpu's 2 range queries and p99's 1 besides
                assert len(sent.counter_queries()) == 1, sent.queries
                assert len(sent.queries) == 1 + others
                assert ("offset" in sent.counter_queries()[0]) is (minutes == 10)
    assert all(s.incremental_reads > 0 for s in sources)
