"""``canary-analyzer profiles import-kayenta`` as a user runs it: files, exit codes, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from analyzer.profiles import load_profile

DATA = Path(__file__).resolve().parents[2] / "data" / "kayenta"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", "profiles", "import-kayenta", *args],
        input=stdin, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_complete_import_writes_a_loadable_profile_and_exits_zero(tmp_path: Path) -> None:
    out, report = tmp_path / "profile.yaml", tmp_path / "report.json"
    done = cli(str(DATA / "kayenta-prometheus-cpu-only.json"), "-o", str(out),
               "--report-json", str(report))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_profile(out).profile.metrics[0].name == "CPU_usage_for_service"
    lines = json.loads(report.read_text())
    assert {"path": "classifier.groupWeights", "status": "exact", "target": "group_weights",
            "note": ""} in lines  # fmt: skip
    assert "classifier.scoreThresholds" in done.stderr  # the text report goes to stderr


def test_an_incomplete_import_exits_one_with_the_metric_commented_out() -> None:
    done = cli(str(DATA / "ours-prometheus-full.json"))
    assert done.returncode == 1
    profile = yaml.safe_load(done.stdout)
    assert [m["name"] for m in profile["metrics"]] == ["cpu", "memory", "error_rate", "noisy"]
    assert "# - name: legacy" in done.stdout
    assert "not_mapped" in done.stderr


def test_stdin_and_bad_input_exit_two() -> None:
    from_stdin = cli("-", stdin=(DATA / "ours-datadog.json").read_text())
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert "query_language: datadog" in from_stdin.stdout
    broken = cli("-", stdin="{not json")
    assert broken.returncode == 2
    assert "not valid JSON" in broken.stderr
    missing = cli("/nonexistent/config.json")
    assert missing.returncode == 2
    wrong = cli("-", stdin='{"name": "x"}')
    assert wrong.returncode == 2
    assert "no metrics list" in wrong.stderr
