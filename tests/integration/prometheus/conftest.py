"""A real Prometheus (Debian package ``prometheus``), backfilled once per test session.

Without ``/usr/bin/prometheus`` and ``promtool`` the tests are skipped locally but **fail** when
``CI`` is set: CI must install the package (``apt-get install -y --no-install-recommends
prometheus``), and a silently skipped integration suite would hide that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import ddload
import promserver

from analyzer.metrics.base import TimeWindow
from analyzer.metrics.datadog import DatadogRetryPolicy, DatadogSource
from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from tests.fakes.datadog import FakeDatadog

TICK = 15.0
TICKS = 480  # two hours of 15 s scrapes, crossing at least one 2 h block boundary
RATE = 20.0
BASE = RevisionBehaviour(weight=1.0, event_rates={"false_positives": 0.01})

REVISIONS = {
    "fraud-00001": BASE,  # baseline
    "fraud-00002": BASE,  # an identical canary (A/A)
    "fraud-00003": RevisionBehaviour(
        weight=1.0, latency_shift=0.3, event_rates={"false_positives": 0.01}
    ),
    "fraud-00004": RevisionBehaviour(
        weight=1.0, error_rate=0.02, event_rates={"false_positives": 0.01}
    ),
    "fraud-00005": RevisionBehaviour(
        weight=1.0,
        decision_mix=(0.80, 0.12, 0.08),
        event_rates={"false_positives": 0.03},
        shadow_disagreement=0.08,  # as a shadow challenger: decides 8 % of requests differently
    ),
    "fraud-00006": BASE,  # pod restart inside the window
    "fraud-00007": BASE,  # another bucket layout
    "fraud-00008": BASE,  # no +Inf bucket
    "fraud-00009": BASE,  # stopped reporting 10 minutes before the end
}
SPECIALS = {
    "fraud-00006": promserver.Special(reset_at_tick=400),
    "fraud-00007": promserver.Special(buckets_ms=(10, 50, 100, 500, 1000, float("inf"))),
    "fraud-00008": promserver.Special(drop_inf=True),
    "fraud-00009": promserver.Special(stop_before_end_ticks=40),
}


@pytest.fixture(scope="session")
def prometheus_binaries() -> tuple[str, str]:
    found = promserver.binaries()
    if found is None:
        message = (
            "prometheus/promtool not on PATH: apt-get install -y --no-install-recommends prometheus"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def scenario() -> promserver.Scenario:
    end = promserver.aligned_end(TICK)
    return promserver.Scenario(
        seed=20261127,
        origin=end - timedelta(seconds=TICK * TICKS),
        ticks=TICKS,
        tick_seconds=TICK,
        request_rate=RATE,
        revisions=REVISIONS,
        specials=SPECIALS,
    )


@pytest.fixture(scope="session")
def prometheus(
    prometheus_binaries: tuple[str, str],
    scenario: promserver.Scenario,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[promserver.RunningPrometheus]:
    prometheus_bin, promtool = prometheus_binaries
    workdir = tmp_path_factory.mktemp("prometheus")
    openmetrics = workdir / "data.om"
    promserver.write_openmetrics(openmetrics, scenario)
    promserver.backfill(promtool, openmetrics, workdir / "data")
    running = promserver.start(prometheus_bin, workdir / "data", workdir)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def prometheus_source(prometheus: promserver.RunningPrometheus) -> Iterator[PrometheusSource]:
    # as `serve` builds it: no httpx client, its own kept-alive connections (keepalive.py)
    source = PrometheusSource(
        base_url=prometheus.url, timeout=5.0, retry=RetryPolicy(attempts=2, initial_backoff=0.01)
    )
    yield source
    source.close()


@pytest.fixture
def synthetic_source(scenario: promserver.Scenario) -> SyntheticSource:
    return SyntheticSource(
        seed=scenario.seed,
        origin=scenario.origin,
        revisions=scenario.revisions,
        request_rate=scenario.request_rate,
        tick_seconds=scenario.tick_seconds,
    )


@pytest.fixture
def last_hour(scenario: promserver.Scenario) -> TimeWindow:
    return TimeWindow.ending(scenario.end, timedelta(hours=1))


@pytest.fixture(scope="session")
def fake_datadog(scenario: promserver.Scenario) -> Iterator[FakeDatadog]:
    """The fake Datadog API on 127.0.0.1, holding the scenario as the Agent would send it."""
    with FakeDatadog() as fake:
        ddload.load(fake, scenario)
        yield fake


@pytest.fixture
def datadog_source(fake_datadog: FakeDatadog, http: httpx.Client) -> Iterator[DatadogSource]:
    fake_datadog.clear_faults()
    yield DatadogSource(
        base_url=fake_datadog.url,
        api_key=fake_datadog.api_key,
        application_key=fake_datadog.application_key,
        http=http,
        timeout=5.0,
        retry=DatadogRetryPolicy(attempts=2, initial_backoff=0.01),
    )
    fake_datadog.clear_faults()
