"""The short version of ``bench/argo_analysisrun.py``: whole AnalysisRuns of the shipped
template, assessed with Argo's rules, against a real Prometheus scraping growing Knative
metrics (time compressed 60x: a 1 m interval takes 1 s). A healthy canary's run ends
Successful, the bad canary's Failed, both with the counter named with and without ``_total``
(one run of each scenario each way)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import argo_analysisrun as bench

pytestmark = [pytest.mark.prometheus, pytest.mark.postgres]


def test_argo_assessment_rules() -> None:
    metric: dict[str, Any] = {
        "count": "10",
        "failureLimit": 0,
        "inconclusiveLimit": "9",
        "consecutiveErrorLimit": 3,
    }
    assert bench.assess(metric, Counter(Inconclusive=9), 0) is None
    assert bench.assess(metric, Counter(Inconclusive=9, Successful=1), 0) == "Successful"
    assert bench.assess(metric, Counter(Inconclusive=10), 0) == "Inconclusive"
    assert bench.assess(metric, Counter(Inconclusive=3, Failed=1), 0) == "Failed"
    assert bench.assess(metric, Counter(Error=4), 4) == "Error"
    assert bench.assess(metric, Counter(Error=3, Successful=2), 3) is None  # errors not counted


def test_healthy_runs_succeed_and_bad_runs_fail(
    prometheus_binaries: tuple[str, str], pg_url: str
) -> None:
    # "mixed": run 0 of each scenario exports the classic counter name, run 1 the `_total` one.
    results = bench.run_bench(runs=2, compression=60.0, db_url=pg_url, counter_naming="mixed")
    phases = {(r.scenario, r.phase) for r in results}
    assert phases == {("healthy", "Successful"), ("bad", "Failed")}, [
        (r.scenario, r.phase, r.verdicts) for r in results
    ]
    for r in results:
        if r.scenario == "healthy":
            assert r.decided_look == 10  # Argo runs all `count` looks
            assert r.first_pass_look is not None
            assert "fail" not in r.verdicts
        else:
            assert r.decided_look <= 5  # the bad canary fails early in the bake
