"""Incremental looks against the real Prometheus: a session's later looks ask only for what
moved since its previous look, and count exactly what a whole-window read (and the generator
that wrote the data) counts — across a counter reset too (issue 20)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import promserver
import pytest

from analyzer.domain.observation import MissingObservation
from analyzer.metrics.base import MetricSource, TimeWindow
from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy
from analyzer.profiles import LoadedProfile
from tests.integration.prometheus.test_prometheus_real import (  # noqa: F401 (fixture)
    loaded,
    observe,
)

pytestmark = pytest.mark.prometheus

COUNTER_METRICS = ["latency", "errors", "false_positives", "decisions"]


def fresh_source(prometheus: promserver.RunningPrometheus, http: httpx.Client) -> PrometheusSource:
    return PrometheusSource(
        base_url=prometheus.url, http=http, timeout=5.0,
        retry=RetryPolicy(attempts=2, initial_backoff=0.01),
    )  # fmt: skip


class Sent:
    """Every PromQL query sent, by an httpx event hook."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        query = request.url.params.get("query")
        if query is None and request.content:
            query = httpx.QueryParams(request.content.decode()).get("query")
        if query:
            self.queries.append(query)


@pytest.mark.parametrize("canary", ["fraud-00002", "fraud-00006"])
def test_every_look_of_a_session_counts_what_a_whole_read_counts(
    prometheus: promserver.RunningPrometheus,
    synthetic_source: MetricSource,
    loaded: LoadedProfile,  # noqa: F811
    scenario: promserver.Scenario,
    canary: str,
) -> None:
    # A 90-minute session looked at every 5 minutes; fraud-00006's pod restarts (every counter
    # back to zero) 20 minutes before the data end, at the session's minute 70: that look reads
    # the whole window (and counts the reset), the ones after it are incremental again.
    start = scenario.end - timedelta(minutes=90)
    sent = Sent()
    with httpx.Client(event_hooks={"request": [sent]}) as http, httpx.Client() as other:
        session = fresh_source(prometheus, http)
        for minutes in range(5, 91, 5):
            window = TimeWindow(start=start, end=start + timedelta(minutes=minutes))
            for metric in COUNTER_METRICS:
                sent.queries.clear()
                incremental = observe(session, loaded, metric, canary, window)
                whole = observe(fresh_source(prometheus, other), loaded, metric, canary, window)
                truth = observe(synthetic_source, loaded, metric, canary, window)
                assert not isinstance(incremental, MissingObservation), incremental
                assert incremental == whole == truth, (metric, minutes)
                if minutes > 5 and not (canary == "fraud-00006" and minutes == 70):
                    # what moved since the previous look: 5 minutes (+ staleness), never more
                    assert sent.queries, metric
                    assert all(f"[{90 * 60}s]" not in q for q in sent.queries)
                    assert "[300s]" in sent.queries[0]
    assert session.incremental_reads > 0


def test_the_reset_between_looks_is_read_whole_and_counted(
    prometheus: promserver.RunningPrometheus,
    synthetic_source: MetricSource,
    loaded: LoadedProfile,  # noqa: F811
    scenario: promserver.Scenario,
) -> None:
    start = scenario.end - timedelta(minutes=40)  # the canary's reset is at minute 20
    sent = Sent()

    def canary_queries() -> list[str]:
        return [q for q in sent.queries if 'revision_name="fraud-00006"' in q]

    with httpx.Client(event_hooks={"request": [sent]}) as http:
        session = fresh_source(prometheus, http)
        # 31: the reset is still inside the staleness margin before the new interval
        looks = ((15, "whole"), (25, "whole"), (31, "whole"), (36, "since"), (40, "since"))
        for minutes, read in looks:
            window = TimeWindow(start=start, end=start + timedelta(minutes=minutes))
            sent.queries.clear()
            found = observe(session, loaded, "errors", "fraud-00006", window)
            assert found == observe(synthetic_source, loaded, "errors", "fraud-00006", window)
            asked = canary_queries()
            if read == "whole":  # the window's endpoints (and after the reset its raw samples)
                assert any(f"offset {minutes * 60}s" in q for q in asked), asked
            else:  # the raw read after the reset is remembered: only what moved since
                assert asked
                assert all("offset" not in q and f"[{minutes * 60}s]" not in q for q in asked)


@pytest.mark.parametrize("canary", ["fraud-00003", "fraud-00006", "fraud-00009"])
def test_looks_closer_than_the_staleness_read_freshness_from_the_last_samples(
    prometheus: promserver.RunningPrometheus,
    loaded: LoadedProfile,  # noqa: F811
    scenario: promserver.Scenario,
    canary: str,
) -> None:
    # Gaps under, at and over the 300 s staleness; fraud-00006 resets at the session's minute
    # 30, fraud-00009 stops at minute 40 (fresh until 45, stale after): every look counts (or
    # misses) what a whole read does, and only a look after a gap over the staleness asks for
    # the separate freshness count.
    start = scenario.end - timedelta(minutes=50)
    sent = Sent()
    with httpx.Client(event_hooks={"request": [sent]}) as http, httpx.Client() as other:
        session = fresh_source(prometheus, http)
        minutes, over, under = 0.0, 0, 0
        for gap in (5, 1, 0.5, 7, 5, 1, 12, 1, 2, 1, 1, 3, 1, 1, 6, 1, 2):
            minutes += gap
            window = TimeWindow(start=start, end=start + timedelta(minutes=minutes))
            for metric in COUNTER_METRICS:
                sent.queries.clear()
                incremental = observe(session, loaded, metric, canary, window)
                whole = observe(fresh_source(prometheus, other), loaded, metric, canary, window)
                assert incremental == whole, (metric, minutes)
                moved = [q for q in sent.queries if "offset" not in q and "resets(" in q]
                if moved:
                    assert ("count(last_over_time" in moved[0]) is (gap * 60 > 300), (
                        metric,
                        minutes,
                    )
                    over, under = over + (gap * 60 > 300), under + (gap * 60 <= 300)
    assert session.incremental_reads > 0
    assert over  # both kinds of incremental query were asked
    assert under
