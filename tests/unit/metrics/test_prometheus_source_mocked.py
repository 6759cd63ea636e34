"""PrometheusSource over an httpx MockTransport: retries, failure modes, result shapes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
from structlog.testing import capture_logs

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    EventCount,
    HistogramObservation,
    MissingObservation,
    Observation,
    ProportionObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import MetricSpec, ThresholdBound
from analyzer.domain.verdict import MetricKind
from analyzer.metrics.base import CounterMode, MetricQuery, TimeWindow
from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy

END = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
WINDOW = TimeWindow(start=END - timedelta(hours=1), end=END)
MODEL = ModelRef(namespace="models", name="fraud")
HIST = MetricSpec(name="latency", kind=MetricKind.HISTOGRAM)
HIST_Q = MetricQuery(selector='lat_bucket{rev="{revision}"}', mode=CounterMode.INCREASE)
PROP = MetricSpec(name="errors", kind=MetricKind.PROPORTION)
PROP_Q = MetricQuery(
    events='req{rev="{revision}",code="5xx"}',
    total='req{rev="{revision}"}',
    mode=CounterMode.INCREASE,
)
THRESH = MetricSpec(name="p99", kind=MetricKind.THRESHOLD, bound=ThresholdBound(max=1.0))
THRESH_Q = MetricQuery(expr='p99{rev="{revision}"}')

Handler = Callable[[str], httpx.Response]


def vector(*items: tuple[dict[str, str], str]) -> httpx.Response:
    result = [{"metric": m, "value": [END.timestamp(), v]} for m, v in items]
    return httpx.Response(
        200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
    )


def make_source(handler: Handler, calls: list[str], attempts: int = 3) -> PrometheusSource:
    def transport(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.content.decode())["query"][0]
        calls.append(query)
        return handler(query)

    http = httpx.Client(transport=httpx.MockTransport(transport))
    return PrometheusSource(
        base_url="http://prom.test",
        http=http,
        timeout=1.0,
        retry=RetryPolicy(attempts=attempts, initial_backoff=0.01),
        sleep=lambda _: None,
    )


def observe(
    source: PrometheusSource, spec: MetricSpec, query: MetricQuery, canary: str = "rev-2"
) -> Observation:
    return source.observe(spec, query, model=MODEL, baseline="rev-1", canary=canary, window=WINDOW)


def test_histogram_from_increase_mode_is_per_bucket() -> None:
    def handler(query: str) -> httpx.Response:
        assert query.startswith("sum by (le) (increase(lat_bucket{")
        assert "[3600s]" in query
        return vector(({"le": "0.1"}, "10"), ({"le": "+Inf"}, "12.2"), ({"le": "1"}, "11.6"))

    calls: list[str] = []
    obs = observe(make_source(handler, calls), HIST, HIST_Q)
    assert obs == HistogramObservation(
        bounds=(0.1, 1.0, math.inf), baseline=(10, 2, 0), canary=(10, 2, 0)
    )
    assert len(calls) == 2


def test_bucket_layouts_that_differ_are_missing() -> None:
    def handler(query: str) -> httpx.Response:
        if "rev-1" in query:
            return vector(({"le": "0.1"}, "1"), ({"le": "+Inf"}, "2"))
        return vector(({"le": "0.2"}, "1"), ({"le": "+Inf"}, "2"))

    obs = observe(make_source(handler, []), HIST, HIST_Q)
    assert isinstance(obs, MissingObservation)
    assert "bucket layouts differ" in obs.reason
    assert not obs.source_error


def test_histogram_with_only_an_inf_bucket_is_nodata_not_an_exception() -> None:
    obs = observe(make_source(lambda q: vector(({"le": "+Inf"}, "10")), []), HIST, HIST_Q)
    assert isinstance(obs, MissingObservation)
    assert not obs.source_error
    assert "two buckets" in obs.reason


def test_missing_events_series_means_zero_events() -> None:
    def handler(query: str) -> httpx.Response:
        return vector() if "5xx" in query else vector(({}, "1000"))

    obs = observe(make_source(handler, []), PROP, PROP_Q)
    assert isinstance(obs, ProportionObservation)
    assert (obs.canary.events, obs.canary.total) == (0, 1000)


def test_empty_total_is_nodata() -> None:
    obs = observe(make_source(lambda q: vector(), []), PROP, PROP_Q)
    assert isinstance(obs, MissingObservation)
    assert not obs.source_error
    assert "no total series" in obs.reason


def test_events_exceeding_total_are_refused() -> None:
    def handler(query: str) -> httpx.Response:
        return vector(({}, "20")) if "5xx" in query else vector(({}, "10"))

    obs = observe(make_source(handler, []), PROP, PROP_Q)
    assert isinstance(obs, MissingObservation)
    assert "exceed total" in obs.reason


@pytest.mark.parametrize("value", ["NaN", "+Inf"])
def test_non_finite_threshold_is_nodata(value: str) -> None:
    answer = vector(({TAG: "canary"}, value), ({TAG: "baseline"}, "0.1"))
    obs = observe(make_source(lambda q: answer, []), THRESH, THRESH_Q)
    assert isinstance(obs, MissingObservation)
    assert not obs.source_error


def test_threshold_baseline_is_optional() -> None:
    calls: list[str] = []
    obs = observe(make_source(lambda q: vector(({TAG: "canary"}, "0.5")), calls), THRESH, THRESH_Q)
    assert obs == ThresholdObservation(canary=0.5, baseline=None)
    assert len(calls) == 1  # both revisions in one query
    assert 'p99{rev="rev-1"}' in calls[0]
    assert 'p99{rev="rev-2"}' in calls[0]


def test_scalar_threshold_expression_is_asked_per_revision() -> None:
    calls: list[str] = []
    bad = {"status": "error", "errorType": "bad_data", "error": "expected instant vector"}

    def handler(query: str) -> httpx.Response:
        if "label_replace" in query:
            return httpx.Response(400, json=bad)
        value = "0.3" if "rev-2" in query else "0.2"
        data = {"resultType": "scalar", "result": [END.timestamp(), value]}
        return httpx.Response(200, json={"status": "success", "data": data})

    obs = observe(make_source(handler, calls), THRESH, THRESH_Q)
    assert obs == ThresholdObservation(canary=0.3, baseline=0.2)
    assert len(calls) == 3


def test_5xx_is_retried_then_missing_with_source_error_and_every_attempt_logged() -> None:
    calls: list[str] = []
    source = make_source(lambda q: httpx.Response(503, text="overloaded"), calls, attempts=3)
    with capture_logs() as logs:
        obs = observe(source, THRESH, THRESH_Q)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "HTTP 503" in obs.reason
    assert len(calls) == 3
    attempts = [e["attempt"] for e in logs if e["event"] == "prometheus.query.failed"]
    assert attempts == [1, 2, 3]


def test_transient_failure_recovers_within_the_budget() -> None:
    answer = vector(({TAG: "canary"}, "0.25"), ({TAG: "baseline"}, "0.2"))
    responses = iter([httpx.Response(502), answer])
    obs = observe(make_source(lambda q: next(responses), []), THRESH, THRESH_Q)
    assert obs == ThresholdObservation(canary=0.25, baseline=0.2)


def test_timeouts_are_retried() -> None:
    calls: list[str] = []

    def handler(query: str) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    obs = observe(make_source(handler, calls, attempts=2), THRESH, THRESH_Q)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "timed out" in obs.reason
    assert len(calls) == 2


def test_bad_query_is_not_retried() -> None:
    calls: list[str] = []
    body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    obs = observe(make_source(lambda q: httpx.Response(400, json=body), calls), THRESH, THRESH_Q)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "bad_data" in obs.reason
    # The combined query, then the per-revision retry for scalar expressions: each tried once.
    assert len(calls) == 2


def test_non_json_body_is_a_source_error() -> None:
    obs = observe(make_source(lambda q: httpx.Response(200, text="<html>"), []), THRESH, THRESH_Q)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error


def test_malformed_success_body_is_a_source_error() -> None:
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}
    obs = observe(make_source(lambda q: httpx.Response(200, json=body), []), THRESH, THRESH_Q)
    assert isinstance(obs, MissingObservation)
    assert obs.source_error
    assert "malformed" in obs.reason


@pytest.mark.parametrize("canary", ['rev-2"}', 'x",rev=~".*', "a\nb", "a,b", "a\\b"])
def test_injection_is_refused_before_any_request(canary: str) -> None:
    calls: list[str] = []
    with pytest.raises(InvalidInputError, match="canary"):
        observe(make_source(lambda q: vector(), calls), HIST, HIST_Q, canary=canary)
    assert calls == []


def test_query_without_required_template_is_refused_before_any_request() -> None:
    calls: list[str] = []
    with pytest.raises(InvalidInputError, match=r"query\.total"):
        observe(
            make_source(lambda q: vector(), calls), PROP, MetricQuery(events='e{r="{revision}"}')
        )
    assert calls == []


def matrix(values: list[list[object]]) -> httpx.Response:
    result = [{"metric": {}, "values": values}]
    return httpx.Response(
        200, json={"status": "success", "data": {"resultType": "matrix", "result": result}}
    )


PART, TAG = "canary_analyzer_part", "canary_analyzer_tag"
TAGS = ("baseline-events", "baseline-total", "canary-events", "canary-total")


def endpoints(parts: dict[str, list[tuple[dict[str, str], str]]]) -> httpx.Response:
    """The combined endpoint answer: per tag, (labels incl. the part, value) items."""
    items = [({TAG: tag, **labels}, value) for tag, rows in parts.items() for labels, value in rows]
    return vector(*items)


def clean(last: str, ref: str | None) -> list[tuple[dict[str, str], str]]:
    rows = [({PART: "last"}, last), ({PART: "resets"}, "0"), ({PART: "alive"}, "1")]
    return rows if ref is None else [*rows, ({PART: "ref"}, ref)]


EXACT_Q = MetricQuery(events='e{r="{revision}"}', total='t{r="{revision}"}')


def test_exact_mode_reads_every_counter_of_a_metric_in_one_query() -> None:
    seen: list[str] = []
    answer = {tag: clean("150", "100") for tag in TAGS} | {"baseline-events": clean("7", None)}
    obs = observe(make_source(lambda q: endpoints(answer), seen), PROP, EXACT_Q)
    assert isinstance(obs, ProportionObservation)
    assert obs.baseline == EventCount(events=7, total=50)  # events series born in the window
    assert obs.canary == EventCount(events=50, total=50)
    assert len(seen) == 1  # both revisions, events and totals: one round trip
    assert all(f'"{tag}"' in seen[0] for tag in TAGS)
    assert "[3600s] offset 3600s" in seen[0]  # the reference: up to an hour before the start
    assert "resets(" in seen[0]


def test_exact_mode_reads_raw_samples_after_a_reset() -> None:
    seen: list[str] = []
    start = WINDOW.start.timestamp()
    answer = {tag: clean("101", "100") for tag in TAGS}
    answer["baseline-total"] = [
        ({PART: "end"}, "3"),
        ({PART: "start"}, "100"),
        ({PART: "resets"}, "1"),
    ]

    def handler(query: str) -> httpx.Response:
        if "label_replace" in query:
            return endpoints(answer)
        return matrix([[start - 15, "100"], [start + 15, "120"], [END.timestamp() - 15, "3"]])

    obs = observe(make_source(handler, seen), PROP, EXACT_Q)
    assert seen[1:] == ['t{r="rev-1"}[7200s]']  # only the reset counter, window + lookback
    assert isinstance(obs, ProportionObservation)
    assert obs.baseline.total == 20 + 3


def test_exact_mode_reads_raw_samples_when_nothing_is_fresh() -> None:
    seen: list[str] = []
    start = WINDOW.start.timestamp()
    answer = {tag: clean("101", "100") for tag in TAGS}
    answer["canary-total"] = [({PART: "last"}, "12"), ({PART: "ref"}, "10")]  # no "alive"

    def handler(query: str) -> httpx.Response:
        if "label_replace" in query:
            return endpoints(answer)
        return matrix([[start - 15, "10"], [start + 60, "12"]])

    obs = observe(make_source(handler, seen), PROP, EXACT_Q)
    assert seen[1:] == ['t{r="rev-2"}[7200s]']
    assert isinstance(obs, MissingObservation)
    assert "stale" in obs.reason


def test_request_carries_server_side_timeout() -> None:
    captured: list[dict[str, list[str]]] = []

    def transport(request: httpx.Request) -> httpx.Response:
        captured.append(parse_qs(request.content.decode()))
        return vector(({}, "1"))

    source = PrometheusSource(
        base_url="http://prom.test/",
        http=httpx.Client(transport=httpx.MockTransport(transport)),
        timeout=2.0,
        query_timeout=0.5,
    )
    observe(source, THRESH, THRESH_Q)
    assert captured[0]["timeout"] == ["0.5"]
    assert captured[0]["time"] == [f"{END.timestamp():.3f}"]
    assert json.dumps(captured)  # plain data, nothing lazy


# --- observe_many: every counter metric of a look in one query ---------------------------------

ERRORS_B = MetricSpec(name="errors_b", kind=PROP.kind)
ERRORS_C = MetricSpec(name="errors_c", kind=PROP.kind)
EXACT_B = MetricQuery(events='eb{r="{revision}"}', total='tb{r="{revision}"}')
EXACT_C = MetricQuery(events='ec{r="{revision}"}', total='tc{r="{revision}"}')
THREE = [(PROP, EXACT_Q), (ERRORS_B, EXACT_B), (ERRORS_C, EXACT_C)]


def reset(tag: str) -> dict[str, list[tuple[dict[str, str], str]]]:
    """``tag``'s endpoints with a reset: its raw samples are read."""
    return {tag: [({PART: "last"}, "3"), ({PART: "ref"}, "100"), ({PART: "resets"}, "1")]}


def many(source: PrometheusSource) -> dict[str, Observation]:
    return source.observe_many(THREE, model=MODEL, baseline="rev-1", canary="rev-2", window=WINDOW)


def test_one_query_for_every_metric_and_a_raw_read_that_fails_is_not_repeated_per_metric() -> None:
    # m0's and m1's baseline totals were reset: their raw reads are needed; Prometheus answers
    # the tagged query, then fails every raw read (503) until the retries are spent.
    seen: list[str] = []
    answer = {f"m{i}-{tag}": clean("150", "100") for i in range(3) for tag in TAGS}
    answer |= reset("m0-baseline-total") | reset("m1-baseline-total")

    def handler(query: str) -> httpx.Response:
        if "label_replace" in query:
            return endpoints(answer)
        return httpx.Response(503, json={"status": "error", "errorType": "unavailable"})

    got = many(make_source(handler, seen, attempts=3))
    assert len([q for q in seen if "label_replace" in q]) == 1  # three metrics, one query
    assert seen[1:] == ['t{r="rev-1"}[7200s]'] * 3  # m0's raw read, 3 attempts; m1's not asked
    for name in ("errors", "errors_b"):
        missing = got[name]
        assert isinstance(missing, MissingObservation)
        assert missing.source_error
        assert missing.reason.startswith(f"{name}: prometheus: HTTP 503")
    assert got["errors_c"] == ProportionObservation(
        baseline=EventCount(events=50, total=50), canary=EventCount(events=50, total=50)
    )


def test_a_metrics_unusable_request_stops_its_own_reads_not_the_others() -> None:
    # m0's baseline events and totals both need raw reads; the events' are stale, so its totals'
    # are not read (the metric is missing already); m1's raw read still is.
    seen: list[str] = []
    start = WINDOW.start.timestamp()
    answer = {f"m{i}-{tag}": clean("150", "100") for i in range(3) for tag in TAGS}
    answer |= reset("m0-baseline-events") | reset("m0-baseline-total") | reset("m1-canary-total")
    answer["m1-canary-events"] = clean("110", "100")

    def handler(query: str) -> httpx.Response:
        if "label_replace" in query:
            return endpoints(answer)
        if query.startswith("e{"):  # m0's events stopped an hour ago
            return matrix([[start - 60, "100"], [start - 15, "3"]])
        return matrix([[start - 15, "100"], [start + 15, "120"], [END.timestamp() - 15, "3"]])

    got = many(make_source(handler, seen))
    assert seen[1:] == ['e{r="rev-1"}[7200s]', 'tb{r="rev-2"}[7200s]']  # not t{r="rev-1"}
    stale = got["errors"]
    assert isinstance(stale, MissingObservation)
    assert "stale data for rev-1 events" in stale.reason
    assert not stale.source_error
    assert got["errors_b"] == ProportionObservation(
        baseline=EventCount(events=50, total=50), canary=EventCount(events=10, total=23)
    )
    assert not isinstance(got["errors_c"], MissingObservation)
