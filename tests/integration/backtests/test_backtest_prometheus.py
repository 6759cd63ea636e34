"""``backtest --from prometheus``: 20 recorded canaries in a real, backfilled Prometheus.

The summary must match the known truth (every regression caught, no harmless canary failed),
the replay must be the service's own look sequence (same verdicts as ``run_analysis`` look by
look), profiles compared side by side must differ where their settings do, and a Prometheus
that does not answer must never pass anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import history
import httpx
import promserver
import pytest
from click.testing import CliRunner, Result

from analyzer.analysis import run_analysis
from analyzer.backtests.command import load_profiles
from analyzer.backtests.manifest import parse_manifest
from analyzer.backtests.replay import profile_at
from analyzer.backtests.runner import BacktestRunner
from analyzer.cli import main
from analyzer.domain.verdict import Verdict
from analyzer.judge import JudgeState
from analyzer.metrics.base import TimeWindow
from analyzer.metrics.prometheus import PrometheusSource

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.prometheus


def in_process(*args: str) -> Result:
    """The command in this process (no interpreter start-up): exit code, stdout and stderr."""
    env = {k: None for k in os.environ if k.startswith("CANARY_ANALYZER_")}
    return CliRunner().invoke(
        main, ["backtest", *args], env=env | {"CANARY_ANALYZER_LOG_LEVEL": "warning"}
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env = {**clean, "CANARY_ANALYZER_LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", "backtest", *args], env=env,
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
    )  # fmt: skip


def latency_regressions() -> set[str]:
    """The bad canaries whose only regression is latency (+15 %, between the two profiles'
    latency tolerances: 10 % current, 40 % candidate)."""
    shifted = history.behaviours()
    return {
        f"c{i + 1:02d}"
        for i, name in enumerate(history.canary_names())
        if shifted[name].latency_shift > 0
    }


@pytest.fixture(scope="module")
def manifest(recorded: promserver.Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return history.write_manifest(
        tmp_path_factory.mktemp("manifest") / "canaries.yaml",
        recorded.origin,
        looks=6,
        interval_s=600,
    )


@pytest.fixture(scope="module")
def report(history_prometheus: promserver.RunningPrometheus, manifest: Path) -> dict[str, Any]:
    done = cli(
        "--from", "prometheus", "--canaries", str(manifest),
        "--profile", str(history.PROFILE), "--profile", str(history.CANDIDATE),
        "--prometheus-url", history_prometheus.url, "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def summary_of(report: dict[str, Any], label: str) -> dict[str, Any]:
    return next(s for s in report["summary"] if s["profile"] == label)


def test_the_summary_matches_the_known_truth(report: dict[str, Any]) -> None:
    truth = {c["id"]: c["truth"] for c in history.manifest(history.scenario().origin)["canaries"]}
    current = summary_of(report, "profile-current")
    assert current["canaries"] == 20
    assert current["outcomes"]["caught"] == sum(t == "bad" for t in truth.values()) == 10
    assert current["outcomes"]["missed"] == 0
    assert current["outcomes"]["false_abort"] == 0
    assert current["outcomes"]["passed"] == 10  # every harmless canary passes by its bake's end
    assert current["false_abort_rate"] == 0.0
    assert current["miss_rate"] == 0.0
    for row in report["canaries"]:
        if row["profile"] != "profile-current":
            continue
        expected = "fail" if truth[row["canary"]] == "bad" else "pass"
        assert row["verdict"] == expected, row
        assert row["decided_at"] is not None
        assert row["error_looks"] == 0
    # a bad canary is stopped well before its bake ends; the median says how soon
    assert current["median_seconds_to_fail_bad"] < 6 * 600


def test_profiles_side_by_side_differ_where_their_settings_do(report: dict[str, Any]) -> None:
    """The candidate's wider latency tolerance (40 %) misses exactly the +15 % latency
    regressions that the current profile (10 %) catches, and changes nothing else."""
    candidate = summary_of(report, "profile-candidate")
    missed = {
        row["canary"]
        for row in report["canaries"]
        if row["profile"] == "profile-candidate" and row["outcome"] == "missed"
    }
    assert missed == latency_regressions()
    assert missed
    assert candidate["outcomes"]["missed"] == len(missed)
    assert candidate["outcomes"]["false_abort"] == 0
    assert candidate["miss_rate"] == pytest.approx(len(missed) / 10)


def test_the_table_puts_profiles_side_by_side(
    history_prometheus: promserver.RunningPrometheus, tmp_path: Path, recorded: promserver.Scenario
) -> None:
    manifest = history.write_manifest(tmp_path / "m.yaml", recorded.origin, count=4, looks=3)
    out = tmp_path / "report.json"
    done = in_process(
        "--from", "prometheus", "--canaries", str(manifest),
        "--profile", str(history.PROFILE), "--profile", str(history.CANDIDATE),
        "--prometheus-url", history_prometheus.url, "--json-out", str(out),
    )  # fmt: skip
    assert done.exit_code == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert header[-2:] == ["profile-current", "profile-candidate"]
    assert "c02" in done.stdout
    assert "fail @" in done.stdout
    assert json.loads(out.read_text())["profiles"] == ["profile-current", "profile-candidate"]


def test_the_replay_is_the_services_own_look_sequence(
    history_prometheus: promserver.RunningPrometheus, recorded: promserver.Scenario
) -> None:
    """Each look goes through the same fetch and judge as ``run_analysis`` with its state
    carried over: the verdicts agree look for look (judged after decisions too)."""
    doc = history.manifest(recorded.origin, count=2, looks=4)
    canaries = parse_manifest(json.dumps(doc))
    (named,) = load_profiles([str(history.PROFILE)])
    with httpx.Client() as http:
        source = PrometheusSource(base_url=history_prometheus.url, http=http, timeout=10.0)
        replays = BacktestRunner(source, workers=2).run(canaries, [named], every_look=True)
        for canary, replay in zip(canaries, replays, strict=True):
            state: JudgeState | None = None
            expected: list[Verdict] = []
            for look in canary.looks:
                result, state = run_analysis(
                    profile_at(named.loaded.profile, look), named.loaded.queries, source,
                    canary.model, canary.baseline, canary.canary,
                    TimeWindow(start=look.start, end=look.end), state,
                )  # fmt: skip
                expected.append(result.verdict)
            assert replay.verdicts == expected
    assert replays[1].verdict is Verdict.FAIL  # c02 is bad: the check is not vacuous


def test_a_prometheus_that_does_not_answer_never_passes(
    manifest: Path, recorded: promserver.Scenario, tmp_path: Path
) -> None:
    small = history.write_manifest(tmp_path / "m.yaml", recorded.origin, count=2, looks=2)
    done = in_process(
        "--from", "prometheus", "--canaries", str(small), "--profile", str(history.PROFILE),
        "--prometheus-url", f"http://127.0.0.1:{promserver.free_port()}", "--format", "json",
    )  # fmt: skip
    assert done.exit_code == 3, done.stderr
    assert "answered no look" in done.stderr
    report = json.loads(done.stdout)
    assert {row["verdict"] for row in report["canaries"]} == {"error"}
    assert summary_of(report, "profile-current")["verdicts"]["pass"] == 0


def test_bad_manifest_and_options_exit_2_naming_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("canaries:\n  - model: a/b\n    baseline: x\n    canary: Y!\n"
                   "    start: 2026-01-01T00:00:00Z\n    looks: 3\n")  # fmt: skip
    done = in_process(
        "--from", "prometheus", "--canaries", str(bad), "--profile", str(history.PROFILE)
    )
    assert done.exit_code == 2
    assert "canaries[0].canary" in done.stderr
    no_zone = tmp_path / "zone.yaml"
    no_zone.write_text(bad.read_text().replace("Y!", "y").replace("00Z", "00"))
    done = in_process("--from", "prometheus", "--canaries", str(no_zone), "--profile", "knative")
    assert done.exit_code == 2
    assert "canaries[0].start" in done.stderr
    done = in_process("--from", "prometheus", "--profile", "knative")
    assert done.exit_code == 2
    assert "--canaries" in done.stderr
    done = in_process("--from", "prometheus", "--canaries", str(bad))
    assert done.exit_code == 2
    assert "--profile" in done.stderr


def test_an_unwritable_json_out_exits_2_naming_it(
    history_prometheus: promserver.RunningPrometheus, tmp_path: Path, recorded: promserver.Scenario
) -> None:
    manifest = history.write_manifest(tmp_path / "m.yaml", recorded.origin, count=1, looks=1)
    done = in_process(
        "--from", "prometheus", "--canaries", str(manifest), "--profile", str(history.PROFILE),
        "--prometheus-url", history_prometheus.url,
        "--json-out", str(tmp_path / "no-such-dir" / "report.json"),
    )  # fmt: skip
    assert done.exit_code == 2
    assert "--json-out" in done.stderr
