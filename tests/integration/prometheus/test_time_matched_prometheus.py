"""The blue/green time-matched baseline over a real, backfilled Prometheus: the previous
revision's arm is exactly what Prometheus holds for the shifted window, the new revision's arm
exactly what it holds now, and the judge sees the latency regression."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import promserver
import pytest

from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    HistogramObservation,
    MissingObservation,
    ProportionObservation,
)
from analyzer.domain.verdict import Verdict
from analyzer.judge import judge
from analyzer.metrics.base import CounterMode, TimeWindow
from analyzer.metrics.prometheus import PrometheusSource
from analyzer.metrics.prometheus.counted import COUNTED
from analyzer.metrics.prometheus.counters import TAG_LABEL
from analyzer.metrics.synthetic import SyntheticSource
from analyzer.metrics.time_matched import TimeMatchedBaseline
from analyzer.profiles import load_profile

PROFILE = load_profile(Path(__file__).with_name("profile.yaml"))
MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
OFFSET = timedelta(minutes=30)

pytestmark = pytest.mark.prometheus


def test_the_baseline_arm_is_read_from_the_shifted_window(
    prometheus_source: PrometheusSource, scenario: promserver.Scenario
) -> None:
    now = TimeWindow.ending(scenario.end, timedelta(minutes=20))
    then = TimeWindow(start=now.start - OFFSET, end=now.end - OFFSET)
    matched = TimeMatchedBaseline(prometheus_source, OFFSET)
    observations = {}
    for spec in PROFILE.profile.metrics:
        if spec.name not in ("latency", "errors"):
            continue
        query = PROFILE.queries[spec.name]
        args = {"model": MODEL, "baseline": "fraud-00001", "canary": "fraud-00003"}
        got = matched.observe(spec, query, window=now, **args)
        direct_now = prometheus_source.observe(spec, query, window=now, **args)
        direct_then = prometheus_source.observe(spec, query, window=then, **args)
        assert isinstance(got, HistogramObservation | ProportionObservation), got
        assert isinstance(direct_now, type(got))
        assert isinstance(direct_then, type(got))
        assert got.canary == direct_now.canary
        assert got.baseline == direct_then.baseline
        assert got.baseline != direct_now.baseline  # another window's counts
        observations[spec.name] = got
    latency = next(m for m in PROFILE.profile.metrics if m.name == "latency")
    errors = next(m for m in PROFILE.profile.metrics if m.name == "errors")
    profile = replace(PROFILE.profile, name="bg", metrics=(latency, errors))
    result, _ = judge(profile, observations)
    assert result.verdict is Verdict.FAIL  # fraud-00003's latency is 30 % higher


def test_batched_time_matched_looks_read_what_per_metric_looks_read_in_two_counter_queries(
    prometheus: promserver.RunningPrometheus, scenario: promserver.Scenario
) -> None:
    """Over a batching source the wrapper batches too: every metric's observation is the one
    ``observe`` gives, and a look's counter metrics cost one query per window (2), not two per
    metric. A canary with no data is missing without reading the shifted window."""
    sent: list[tuple[str, float]] = []  # (query, evaluation time) of each counter query

    def record(request: httpx.Request) -> None:
        form = httpx.QueryParams(request.content.decode())
        query = form.get("query", "")
        if TAG_LABEL in query and "m0-" in query:
            sent.append((query, float(form["time"])))

    metrics = [(s, PROFILE.queries[s.name]) for s in PROFILE.profile.metrics]
    counted = [s for s, q in metrics if s.kind in COUNTED and q.mode is CounterMode.EXACT]
    assert len(counted) >= 3  # the profile has several counter metrics to batch
    start = scenario.end - timedelta(minutes=40)
    with httpx.Client(event_hooks={"request": [record]}) as client:
        batched = TimeMatchedBaseline(
            PrometheusSource(base_url=prometheus.url, http=client), OFFSET
        )
        one_by_one = TimeMatchedBaseline(PrometheusSource(base_url=prometheus.url), OFFSET)
        assert all(batched.batchable(s, PROFILE.queries[s.name]) for s in counted)
        for canary in ("fraud-00002", "fraud-00003", "fraud-09999"):
            for minutes in (10, 11):  # a whole read, then an incremental one
                window = TimeWindow(start=start, end=start + timedelta(minutes=minutes))
                args = {"model": MODEL, "baseline": "fraud-00001", "canary": canary}
                sent.clear()
                together = batched.observe_many(metrics, window=window, **args)
                each = {s.name: one_by_one.observe(s, q, window=window, **args) for s, q in metrics}
                assert together == each, canary
                # one counter query per window (two when a window's selectors are partly
                # remembered from another session's looks and partly read whole)
                at = [when for _, when in sent]
                now, then = window.end.timestamp(), (window.end - OFFSET).timestamp()
                assert set(at) <= {now, then}
                assert 1 <= at.count(now) <= 2, sent
                if canary == "fraud-09999":  # no data now: the shifted window is not read
                    assert then not in at
                    assert all(isinstance(together[s.name], MissingObservation) for s in counted)
                else:
                    assert 1 <= at.count(then) <= 2, sent
                    assert len(at) < 2 * len(counted)
                    assert not any(isinstance(o, MissingObservation) for o in together.values())


def test_a_wrapper_over_a_source_that_does_not_batch_reads_metric_by_metric(
    synthetic_source: SyntheticSource, scenario: promserver.Scenario
) -> None:
    matched = TimeMatchedBaseline(synthetic_source, OFFSET)
    metrics = [(s, PROFILE.queries[s.name]) for s in PROFILE.profile.metrics]
    assert not any(matched.batchable(s, q) for s, q in metrics)
    window = TimeWindow.ending(scenario.end, timedelta(minutes=20))
    args = {"model": MODEL, "baseline": "fraud-00001", "canary": "fraud-00003"}
    together = matched.observe_many(metrics, window=window, **args)
    assert together == {s.name: matched.observe(s, q, window=window, **args) for s, q in metrics}
