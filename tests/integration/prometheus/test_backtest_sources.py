"""``backtest`` over both metric sources at once: a PromQL profile read from the real Prometheus
and its Datadog twin read from the fake Datadog API, side by side over the same canaries; and a
Datadog rate-limit storm during a backtest, which must never pass anything."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import promserver
import pytest
import yaml
from click.testing import CliRunner, Result

from analyzer.cli import main
from tests.fakes.datadog import FakeDatadog, Fault

HERE = Path(__file__).parent
PROMQL, DATADOG = HERE / "profile.yaml", HERE / "profile-datadog.yaml"
TRUTH = {"fraud-00002": "good", "fraud-00003": "bad", "fraud-00004": "bad", "fraud-00005": "bad"}
pytestmark = pytest.mark.prometheus


def manifest(path: Path, scenario: promserver.Scenario) -> Path:
    start = (scenario.end - timedelta(hours=1)).isoformat()
    canaries = [
        {"model": f"{promserver.NAMESPACE}/{promserver.MODEL}", "baseline": "fraud-00001",
         "canary": canary, "start": start, "interval": "20m", "looks": 3, "truth": truth}
        for canary, truth in TRUTH.items()
    ]  # fmt: skip
    path.write_text(yaml.safe_dump({"canaries": canaries}))
    return path


def backtest(fake: FakeDatadog, prometheus_url: str, *args: str) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("CANARY_", "DD_"))}
    env |= {
        "CANARY_ANALYZER_LOG_LEVEL": "warning",
        "CANARY_ANALYZER_DATADOG__API_URL": fake.url,
        "CANARY_ANALYZER_DATADOG__API_KEY": fake.api_key,
        "CANARY_ANALYZER_DATADOG__APPLICATION_KEY": fake.application_key,
        "CANARY_ANALYZER_DATADOG__RETRIES": "1",
    }
    return CliRunner().invoke(main, ["backtest", "--from", "prometheus", *args,
                                     "--prometheus-url", prometheus_url, "--format", "json"],
                              env=env)  # fmt: skip


def rows(report: dict[str, Any], profile: str) -> dict[str, dict[str, Any]]:
    return {r["canary_revision"]: r for r in report["canaries"] if r["profile"] == profile}


def test_a_promql_and_a_datadog_profile_side_by_side(
    prometheus: promserver.RunningPrometheus, fake_datadog: FakeDatadog,
    scenario: promserver.Scenario, tmp_path: Path,
) -> None:  # fmt: skip
    fake_datadog.clear_faults()
    done = backtest(fake_datadog, prometheus.url, "--canaries",
                    str(manifest(tmp_path / "m.yaml", scenario)),
                    "--profile", str(PROMQL), "--profile", str(DATADOG))  # fmt: skip
    assert done.exit_code == 0, (done.stderr, done.exception)
    report = json.loads(done.stdout)
    for profile in ("profile", "profile-datadog"):
        mine = rows(report, profile)
        for canary, truth in TRUTH.items():
            assert (mine[canary]["verdict"] == "fail") == (truth == "bad"), (profile, canary)
        summary = next(s for s in report["summary"] if s["profile"] == profile)
        assert summary["outcomes"]["caught"] == 3
        assert summary["outcomes"]["false_abort"] == 0


def test_a_429_storm_during_a_backtest_never_passes(
    prometheus: promserver.RunningPrometheus, fake_datadog: FakeDatadog,
    scenario: promserver.Scenario, tmp_path: Path,
) -> None:  # fmt: skip
    fake_datadog.fail_next(Fault(status=429, times=100_000, headers={"X-RateLimit-Reset": "0"}))
    try:
        path = manifest(tmp_path / "m.yaml", scenario)
        both = backtest(fake_datadog, prometheus.url, "--canaries", str(path),
                        "--profile", str(PROMQL), "--profile", str(DATADOG))  # fmt: skip
        alone = backtest(fake_datadog, prometheus.url, "--canaries", str(path),
                         "--profile", str(DATADOG))  # fmt: skip
    finally:
        fake_datadog.clear_faults()
    assert both.exit_code == 0, both.stderr  # Prometheus answered: the PromQL column stands
    report = json.loads(both.stdout)
    assert {r["verdict"] for r in rows(report, "profile-datadog").values()} == {"error"}
    assert rows(report, "profile")["fraud-00003"]["verdict"] == "fail"
    assert alone.exit_code == 3  # nothing answered: no summary to trust
    assert "answered no look" in alone.stderr
    assert {r["verdict"] for r in json.loads(alone.stdout)["canaries"]} == {"error"}
