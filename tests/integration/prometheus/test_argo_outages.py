"""The Argo path through outages, against a real Prometheus: a fail stays a fail, and every
answer beats the caller's deadline.

* A session that failed at look 1 answers ``fail`` through ``POST /api/v1/analyses`` while
  Prometheus is stopped, so the shipped AnalysisTemplate's conditions give Argo ``Failed``, and
  Flagger's rollback hook says "roll back" during the outage.
* With a Prometheus stand-in that accepts connections and never answers, the API answers before
  its deadline with valid JSON and a non-null verdict: ``error`` for a session without a
  decision, the session's last decision (``fail``) for one that has it.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import promserver
import pytest

from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy
from analyzer.metrics.synthetic import RevisionBehaviour
from tests.integration.api.conftest import Harness, analysis_body, build_harness
from tests.integration.api.test_argo_template import measure

pytestmark = pytest.mark.postgres

TICK = 15.0
MODEL = {"namespace": promserver.NAMESPACE, "name": promserver.MODEL}
REVISIONS = {
    "base-00001": RevisionBehaviour(weight=0.9),
    "good-00002": RevisionBehaviour(weight=0.1),
    "bad-00003": RevisionBehaviour(weight=0.1, error_rate=0.05),
}


@pytest.fixture(scope="module")
def backfilled(
    prometheus_binaries: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[promserver.Scenario, Path]:
    end = promserver.aligned_end(TICK)
    scenario = promserver.Scenario(
        seed=12,
        origin=end - timedelta(hours=1),
        ticks=240,
        tick_seconds=TICK,
        request_rate=200.0,
        revisions=REVISIONS,
    )
    workdir = tmp_path_factory.mktemp("outages")
    promserver.write_openmetrics(workdir / "data.om", scenario)
    promserver.backfill(prometheus_binaries[1], workdir / "data.om", workdir / "data")
    return scenario, workdir / "data"


@pytest.fixture
def own_prometheus(
    prometheus_binaries: tuple[str, str],
    backfilled: tuple[promserver.Scenario, Path],
    tmp_path: Path,
) -> Iterator[promserver.RunningPrometheus]:
    """A Prometheus of this test's own (it gets stopped), over a copy of the backfilled data."""
    shutil.copytree(backfilled[1], tmp_path / "data")
    running = promserver.start(prometheus_binaries[0], tmp_path / "data", tmp_path)
    try:
        yield running
    finally:
        running.stop()


class Hanging:
    """A TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self._held.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


class Switchable:
    """A metric source whose backend the test swaps (a real Prometheus, then a hanging one)."""

    def __init__(self, source: PrometheusSource) -> None:
        self.source = source

    def observe(self, *args: Any, **kwargs: Any) -> Any:
        return self.source.observe(*args, **kwargs)


def _source(url: str) -> PrometheusSource:
    # What production runs: 5 s per request, 3 attempts (config defaults): a hanging server
    # costs such a look 15 s, far beyond any caller's timeout. No httpx client, as `serve`
    # builds it: kept-alive http.client connections (keepalive.py).
    return PrometheusSource(
        base_url=url, timeout=5.0, retry=RetryPolicy(attempts=3, initial_backoff=0.1)
    )


@pytest.fixture
def harness(
    pg_engine: Any, backfilled: tuple[promserver.Scenario, Path]
) -> Iterator[tuple[Harness, Switchable]]:
    scenario = backfilled[0]
    switch = Switchable(_source("http://127.0.0.1:9"))
    api = build_harness(pg_engine, fixed=False, source=switch, now=scenario.end, cache_seconds=0.0)
    try:
        yield api, switch
    finally:
        api.analyses.close()
        api.looks.close()
        api.http.close()
        api._running.stop()  # type: ignore[attr-defined]


def _bad_body(**overrides: Any) -> dict[str, Any]:
    return analysis_body(
        model=MODEL, canary="bad-00003", baseline="base-00001", weight=10, **overrides
    )


def _hook() -> dict[str, Any]:
    return {
        "name": promserver.MODEL,
        "namespace": promserver.NAMESPACE,
        "phase": "Progressing",
        "checksum": "bad-00003",
        "metadata": {"canary": "bad-00003"},
    }


def test_a_failed_canary_stays_failed_while_prometheus_is_down(
    harness: tuple[Harness, Switchable],
    own_prometheus: promserver.RunningPrometheus,
) -> None:
    api, switch = harness
    switch.source = _source(own_prometheus.url)
    # The body the shipped template sends (its default bake: 10 looks every minute), so the
    # final measurement through the template lands in this same session. A bake's window starts
    # at its first call: look 1 has no evidence yet, look 2 (a minute of traffic) fails.
    api.clock.advance(-20 * 60)  # inside the backfilled hour
    body = _bad_body(bake={"looks": "10", "interval": "1m"})
    first = api.call("POST", "/api/v1/analyses", "analysis", json=body).json()
    assert first["verdict"] in ("error", "inconclusive")
    api.clock.advance(60)
    second = api.call("POST", "/api/v1/analyses", "analysis", json=body).json()
    assert second["verdict"] == "fail", second["reason"]
    errors = next(m for m in second["metrics"] if m["name"] == "errors")
    assert errors["verdict"] == "fail"

    own_prometheus.stop()  # the outage: connection refused from now on
    for _ in range(3):
        api.clock.advance(60)
        during = api.call("POST", "/api/v1/analyses", "analysis", json=body).json()
        assert during["cached"] is False  # a fresh look, which could not reach Prometheus
        assert during["verdict"] == "fail"
        errors = next(m for m in during["metrics"] if m["name"] == "errors")
        assert errors["verdict"] == "fail"
        assert "a fail is final" in errors["reason"]
        assert "Connection refused" in errors["reason"]
    # What Argo makes of it, through the shipped template: Failed, not Inconclusive.
    api.clock.advance(60)
    phase, result = measure(
        api,
        {
            "namespace": promserver.NAMESPACE,
            "model": promserver.MODEL,
            "rollout": "fraud-rollout",
            "canary-hash": "bad-00003",
            "stable-hash": "base-00001",
            "weight": "10",
        },
    )
    assert (phase, result) == ("Failed", "fail")
    # Flagger's rollback hook reads the latest look: roll back (2xx), during the outage.
    rollback = api.call("POST", "/api/v1/flagger/rollback", "analysis", json=_hook())
    assert rollback.status_code == 200, rollback.text
    assert rollback.text.startswith("roll back models/fraud")


def test_a_hanging_prometheus_is_answered_before_the_deadline(
    harness: tuple[Harness, Switchable],
) -> None:
    api, switch = harness
    hanging = Hanging()
    try:
        switch.source = _source(hanging.url)
        started = time.monotonic()
        response = api.http.post(
            api.url + "/api/v1/analyses",
            json=analysis_body(model=MODEL, canary="good-00002", weight=10, deadline_seconds=2.0),
            headers=api.as_role("analysis"),
            timeout=10.0,
        )
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"answered after {elapsed:.2f} s, past the 2 s deadline"
        body = response.json()  # valid JSON, or this raises
        assert response.status_code == 200
        assert body["verdict"] == "error"  # no decision yet: nothing to stand on
        assert "did not finish within" in body["reason"]
    finally:
        hanging.close()


def test_the_default_deadline_keeps_the_last_decision_when_a_look_is_late(
    harness: tuple[Harness, Switchable],
    own_prometheus: promserver.RunningPrometheus,
) -> None:
    api, switch = harness
    switch.source = _source(own_prometheus.url)
    first = api.call("POST", "/api/v1/analyses", "analysis", json=_bad_body()).json()
    assert first["verdict"] == "fail"
    hanging = Hanging()
    try:
        switch.source = _source(hanging.url)
        api.clock.advance(60)
        started = time.monotonic()
        response = api.call("POST", "/api/v1/analyses", "analysis", json=_bad_body(), timeout=10)
        elapsed = time.monotonic() - started
        assert elapsed < 6.0, f"answered after {elapsed:.2f} s, past the default 6 s deadline"
        body = response.json()
        assert (response.status_code, body["verdict"]) == (200, "fail")
        assert body["look"] == 2
        assert body["cached"] is False
        assert "the decision of look 1 stands" in body["reason"]
    finally:
        hanging.close()
