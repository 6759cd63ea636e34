"""The blue/green time-matched baseline over a real, backfilled Prometheus: the previous
revision's arm is exactly what Prometheus holds for the shifted window, the new revision's arm
exactly what it holds now, and the judge sees the latency regression."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import promserver
import pytest

from analyzer.domain.model import ModelRef
from analyzer.domain.observation import HistogramObservation, ProportionObservation
from analyzer.domain.verdict import Verdict
from analyzer.judge import judge
from analyzer.metrics.base import TimeWindow
from analyzer.metrics.prometheus import PrometheusSource
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
