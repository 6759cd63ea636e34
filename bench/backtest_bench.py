"""How long ``backtest --from prometheus`` takes for 20 recorded canaries x 60 looks.

Starts a real Prometheus (temp dir, free port) backfilled with the 20 canaries of
``tests/integration/backtests/history.py`` (seed 20261206: ten harmless, ten regressions; two
hours of 15 s scrapes), writes a manifest of 60 looks a minute apart per canary (bake one hour),
and runs the command end to end as a user would (a fresh ``python -m analyzer.cli`` process,
the profile ``profile-current.yaml``: a 15-bucket latency histogram, two proportions, a
categorical). Each run reports wall time, the CPU of the analyzer process and of Prometheus, and
the load average; two modes:

* ``default``: as the command runs by default, a canary's looks stop at its decision (a fail,
  or a pass at the end of its bake); harmless canaries run all 60 looks.
* ``every-look``: ``--every-look`` judges all 1,200 looks (the worst case, 20 x 60).

    .venv/bin/python bench/backtest_bench.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "backtests"))

import history  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(args: list[str], prometheus_pid: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_LOG_LEVEL"] = "warning"
    load = os.getloadavg()[0]
    prom_before, started = _cpu_seconds(prometheus_pid), time.perf_counter()
    before = os.times()
    done = subprocess.run(
        [sys.executable, "-m", "analyzer.cli", "backtest", *args],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"backtest exited {done.returncode}: {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    judged = sum(row["judged_looks"] for row in report["canaries"])
    summary = report["summary"][0]
    return {
        "wall_s": wall,
        "analyzer_cpu_s": (after.children_user - before.children_user)
        + (after.children_system - before.children_system),
        "prometheus_cpu_s": _cpu_seconds(prometheus_pid) - prom_before,
        "judged_looks": judged,
        "caught": summary["outcomes"]["caught"],
        "false_aborts": summary["outcomes"]["false_abort"],
        "load_average": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--looks", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = history.scenario()
        prometheus = history.start_prometheus(Path(tmp), scenario)
        try:
            manifest = history.write_manifest(
                Path(tmp) / "canaries.yaml", scenario.origin, looks=options.looks, interval_s=60
            )
            base = [
                "--from", "prometheus", "--canaries", str(manifest),
                "--profile", str(history.PROFILE), "--prometheus-url", prometheus.url,
                "--format", "json", "--workers", str(options.workers),
            ]  # fmt: skip
            results: dict[str, list[dict[str, float]]] = {"default": [], "every-look": []}
            for _ in range(options.runs):  # interleaved: both modes see the same noise
                results["default"].append(_run(base, prometheus.process.pid))
                results["every-look"].append(_run([*base, "--every-look"], prometheus.process.pid))
        finally:
            prometheus.stop()
    for mode, runs in results.items():
        walls = [r["wall_s"] for r in runs]
        print(f"{mode}: wall median {statistics.median(walls):.1f} s "
              f"(runs {', '.join(f'{w:.1f}' for w in walls)})")  # fmt: skip
        for r in runs:
            print("  " + json.dumps({k: round(v, 2) for k, v in r.items()}))


if __name__ == "__main__":
    main()
