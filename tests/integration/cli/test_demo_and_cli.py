"""The command line on the embedded default: help, migrate, demo, judge, backtest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DESIGN_COMMANDS = {"serve", "migrate", "demo", "judge", "backtest", "analyze", "ledger", "rollout"}


def cli(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", *args], input=stdin, env=env,
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_help_lists_every_command_of_the_design(tmp_path: Path) -> None:
    result = cli("--help", data_dir=tmp_path)
    assert result.returncode == 0
    listed = {
        line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()
    }
    assert listed >= DESIGN_COMMANDS
    ledger = cli("ledger", "--help", data_dir=tmp_path)
    assert {"verify", "export"} <= set(ledger.stdout.split())


def test_demo_promotes_the_good_canary_and_aborts_the_bad_one(tmp_path: Path) -> None:
    unmigrated = cli("demo", data_dir=tmp_path)
    assert unmigrated.returncode == 2
    assert "canary-analyzer migrate" in unmigrated.stderr
    assert cli("migrate", data_dir=tmp_path).returncode == 0
    result = cli("demo", "--step-seconds", "1", data_dir=tmp_path)  # the default is 3
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo/fraud-scorer: canary at 100 % (promoted)" in result.stdout
    assert "demo/credit-decision: canary at 0 % (aborted)" in result.stdout
    assert "demo/credit-decision: canary at 25 %" not in result.stdout
    assert "ledger intact" in result.stdout
    assert "Next steps" in result.stdout
    assert "canary-analyzer token create --subject me --role admin" in result.stdout
    verify = cli("ledger", "verify", data_dir=tmp_path)
    assert verify.returncode == 0
    exported = json.loads(cli("ledger", "export", "--model", "demo/credit-decision",
                              data_dir=tmp_path).stdout)  # fmt: skip
    kinds = [e["event_type"] for e in exported]
    assert kinds.count("rollout_aborted") == 1
    assert "analysis_recorded" in kinds
    [registered] = [e for e in exported if e["event_type"] == "revision_registered"]
    assert registered["data"]["model_version"] == "3.2.1"
    assert registered["data"]["artifact_digest"].startswith("sha256:")
    assert "credit-decision-00008 (model version 3.2.1)" in result.stdout


DESIGN_EXAMPLE = {
    "alpha": 0.05,
    "metrics": [
        {"name": "errors", "kind": "proportion", "direction": "increase", "tolerance": 0.001,
         "baseline": {"events": 40, "total": 100000}, "canary": {"events": 9, "total": 10000}},
        {"name": "p99_slo", "kind": "threshold", "bound": {"max": 0.008}, "canary": 0.0065},
    ],
}  # fmt: skip


def test_judge_prints_one_verdict_and_exits_zero(tmp_path: Path) -> None:
    result = cli("judge", "-", data_dir=tmp_path, stdin=json.dumps(DESIGN_EXAMPLE))
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] in {"pass", "fail", "inconclusive", "error"}
    assert [m["name"] for m in verdict["metrics"]] == ["errors", "p99_slo"]
    assert {m["classification"] for m in verdict["metrics"]} <= {"pass", "high", "low", "nodata"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"metrics": [{"name": "e", "kind": "proportion", "baseline": {"events": 1}, '
         '"canary": {"events": 1, "total": 5}}]}', "metrics[0].baseline"),
        ("not json", "not valid JSON"),
    ],
)  # fmt: skip
def test_judge_invalid_input_exits_two_naming_the_field(
    tmp_path: Path, body: str, field: str
) -> None:
    result = cli("judge", "-", data_dir=tmp_path, stdin=body)
    assert result.returncode == 2
    assert field in result.stderr


def test_backtest_one_line_per_replay(tmp_path: Path) -> None:
    looks = [
        {"baseline": {"events": 2 * i, "total": 2000 * i},
         "canary": {"events": 40 * i, "total": 2000 * i}}
        for i in range(1, 6)
    ]  # fmt: skip
    metric = {"name": "errors", "kind": "proportion", "tolerance": 0.001, "critical": True}
    replay = {"alpha": 0.05, "metrics": [metric | {"looks": looks}]}
    result = cli(
        "backtest",
        "-",
        data_dir=tmp_path,
        stdin=json.dumps(replay) + "\n" + json.dumps(replay) + "\n",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0]["verdict"] == "fail"  # 2 % errors against 0.1 %
    assert lines[0]["decided_at"] is not None
    assert len(lines[0]["looks"]) == 5


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_refuses_unmigrated_then_serves_health_and_readiness(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    refused = cli("serve", data_dir=tmp_path)
    assert refused.returncode == 2
    assert "run `canary-analyzer migrate`" in refused.stderr
    assert cli("migrate", data_dir=tmp_path).returncode == 0
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_DATA_DIR"] = str(tmp_path)
    # Prometheus looks run in a worker process, which SIGTERM must close with the rest
    # (nothing needs to listen on that URL: readiness is about the database)
    env["CANARY_ANALYZER_METRIC_SOURCE"] = "prometheus"
    env["CANARY_ANALYZER_PROMETHEUS__URL"] = "http://127.0.0.1:9"
    env["CANARY_ANALYZER_PROMETHEUS__LOOK_PROCESSES"] = "1"
    env["CANARY_ANALYZER_LEDGER__VERIFY_INTERVAL_SECONDS"] = "0.2"
    # signed head checkpoints: a key, a directory, and an entry whose head there is to sign
    env["CANARY_ANALYZER_LEDGER__CHECKPOINT_KEY_FILE"] = str(_checkpoint_key(tmp_path))
    env["CANARY_ANALYZER_LEDGER__CHECKPOINT_DIR"] = str(tmp_path / "checkpoints")
    env["CANARY_ANALYZER_LEDGER__CHECKPOINT_INTERVAL_SECONDS"] = "0.3"
    _record_one_entry(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer.cli", "serve", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline, ready = time.monotonic() + 30, None
        while time.monotonic() < deadline and ready is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready is not None, "serve did not answer within 30 s"
        assert ready.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/rollouts").status_code == 401
        # the ledger's chain is re-verified on serve's timer and reported on /metrics
        checked = ""
        while time.monotonic() < deadline and "chain_intact 1.0" not in checked:
            checked = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            time.sleep(0.1)
        assert "canary_analyzer_ledger_chain_intact 1.0" in checked
        assert "canary_analyzer_ledger_checkpoints_enabled 1.0" in checked
        while time.monotonic() < deadline and not list((tmp_path / "checkpoints").glob("*.json")):
            time.sleep(0.1)
        (checkpoint,) = (tmp_path / "checkpoints").glob("checkpoint-*.json")
        assert json.loads(checkpoint.read_text())["seq"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status reflects it
    assert proc.returncode in (0, -signal.SIGTERM)
    assert b"Application shutdown complete" in stderr
    # ...after closing the scheduler, the look worker and the pool in the lifespan's shutdown
    # (uvicorn re-raises SIGTERM before `uvicorn.run` returns, so a `finally` never ran)
    assert b"rollout scheduler stopped" in stderr
    assert b"serve.stopped" in stderr
    assert b"leaked semaphore" not in stderr
    assert b'"event": "ledger.checkpoint"' in stderr  # the log is the checkpoints' second sink


def _checkpoint_key(directory: Path) -> Path:
    from analyzer.ledger.checkpoint import generate_key_pair

    path = directory / "checkpoint-key.pem"
    path.write_bytes(generate_key_pair()[0])
    return path


def _record_one_entry(data_dir: Path) -> None:
    from analyzer.db import make_engine
    from analyzer.domain.events import EventType, LedgerEvent
    from analyzer.ledger.store import Ledger

    engine = make_engine(f"sqlite:///{data_dir / 'canary-analyzer.sqlite3'}")
    Ledger(engine).record(LedgerEvent(type=EventType.ROLLOUT_STARTED, actor="test"))
    engine.dispose()
