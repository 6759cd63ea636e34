"""``backtest --from prometheus`` without a manifest: canaries found from revision traffic alone
in a real, backfilled Prometheus (one revision promoted, one rolled back), and replayed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import history
import promserver
import pytest
from click.testing import CliRunner, Result

from analyzer.cli import main

pytestmark = pytest.mark.prometheus


@pytest.fixture(scope="module")
def sequence() -> promserver.Scenario:
    return history.sequence_scenario()


@pytest.fixture(scope="module")
def sequence_prometheus(
    sequence: promserver.Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[promserver.RunningPrometheus]:
    if promserver.binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus/promtool not on PATH (apt-get install prometheus)")
        pytest.skip("prometheus/promtool not on PATH")
    running = history.start_prometheus(tmp_path_factory.mktemp("sequence"), sequence)
    try:
        yield running
    finally:
        running.stop()


def backtest(*args: str) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_LOG_LEVEL"] = "warning"
    return CliRunner().invoke(main, ["backtest", "--from", "prometheus", *args], env=env)


def test_revisions_that_followed_each_other_are_found_and_replayed(
    sequence_prometheus: promserver.RunningPrometheus, sequence: promserver.Scenario
) -> None:
    done = backtest(
        "--profile", str(history.PROFILE), "--model", f"{promserver.NAMESPACE}/{promserver.MODEL}",
        "--since", sequence.origin.isoformat(), "--until", sequence.end.isoformat(),
        "--interval", "5m", "--max-looks", "12", "--prometheus-url", sequence_prometheus.url,
        "--format", "json",
    )  # fmt: skip
    assert done.exit_code == 0, (done.stderr, done.exception)
    rows: dict[str, dict[str, Any]] = {
        r["canary_revision"]: r for r in json.loads(done.stdout)["canaries"]
    }
    assert set(rows) == {"fraud-00302", "fraud-00303"}
    promoted, rolled_back = rows["fraud-00302"], rows["fraud-00303"]
    assert promoted["baseline"] == "fraud-00301"
    assert promoted["happened"]["outcome"] == "promoted"
    assert promoted["looks"] == 6  # 30 minutes side by side, a look every 5
    assert promoted["verdict"] != "fail"
    assert rolled_back["baseline"] == "fraud-00302"
    assert rolled_back["happened"]["outcome"] == "aborted"
    assert rolled_back["verdict"] == "fail"  # the profile agrees it had to go
    assert promoted["agrees_with_what_happened"] is True
    assert rolled_back["agrees_with_what_happened"] is True


def test_discovery_needs_a_model_an_exact_matcher_and_a_reachable_prometheus(
    sequence: promserver.Scenario,
) -> None:
    since = (sequence.end - timedelta(hours=1)).isoformat()
    no_model = backtest("--profile", str(history.PROFILE), "--since", since)
    assert no_model.exit_code == 2
    assert "--model" in no_model.stderr
    regex = backtest("--profile", "kserve", "--model", "models/fraud", "--since", since)
    assert regex.exit_code == 2
    assert "exact matcher" in regex.stderr
    down = backtest("--profile", str(history.PROFILE), "--model", "models/fraud", "--since", since,
                    "--prometheus-url", f"http://127.0.0.1:{promserver.free_port()}")  # fmt: skip
    assert down.exit_code == 3
    assert "cannot read the metric source" in down.stderr
