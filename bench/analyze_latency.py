"""End-to-end latency of one ``analyze`` look: 5 metrics fetched from a real local Prometheus,
then judged.

Starts the Debian ``prometheus`` on 127.0.0.1 (a free port, a temp dir), backfilled by
``promtool`` with two hours of 15 s scrapes for a baseline and a slower canary (the same
generator the integration tests use), then times ``run_analysis`` over a one-hour window:
five metrics (latency histogram, error proportion, false-positive proportion, decision mix,
p99 threshold). In ``exact`` mode that is 2 Prometheus queries per look (the four counter
metrics in one, the threshold's; 5 before issue 20's batching; ``increase`` mode needs 14),
fetched concurrently. Reported:
the service's shape (a long-lived thread pool) in ``exact`` and ``increase`` counter modes,
and the CLI's shape (threads started per look) in the first mode.

    /work/venv/bin/python bench/analyze_latency.py [--looks 300] [--mode exact|increase|both]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))

import promserver  # noqa: E402

from analyzer.analysis import run_analysis  # noqa: E402
from analyzer.domain.model import ModelRef  # noqa: E402
from analyzer.logging import configure_logging  # noqa: E402
from analyzer.metrics.base import CounterMode, TimeWindow  # noqa: E402
from analyzer.metrics.prometheus import PrometheusSource  # noqa: E402
from analyzer.metrics.synthetic import RevisionBehaviour  # noqa: E402
from analyzer.profiles import parse_profile  # noqa: E402

PROFILE = """
name: bench-5
metrics:
  - use: knative/latency
  - use: knative/errors
  - use: business/false_positives
  - use: business/decisions
  - use: knative/p99_latency
"""
MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)


def scenario() -> promserver.Scenario:
    end = promserver.aligned_end(15.0)
    return promserver.Scenario(
        seed=1,
        origin=end - timedelta(hours=2),
        ticks=480,
        tick_seconds=15.0,
        request_rate=20.0,
        revisions={
            "fraud-00001": RevisionBehaviour(weight=1.0),
            "fraud-00002": RevisionBehaviour(weight=1.0, latency_shift=0.2),
        },
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    url: str, prometheus_pid: int, mode: str, window: TimeWindow, looks: int, *, shared: bool
) -> dict[str, float | str]:
    loaded = parse_profile(PROFILE)
    # Every counter metric in the mode under test (threshold expressions are unaffected).
    queries = {name: replace(q, mode=CounterMode(mode)) for name, q in loaded.queries.items()}
    timings: list[float] = []
    verdict = ""
    cpu_ours = cpu_prometheus = 0.0
    # shared: the service's long-lived thread pool; otherwise threads are started per look (CLI).
    executor = ThreadPoolExecutor(max_workers=8) if shared else None
    with httpx.Client() as http:
        source = PrometheusSource(base_url=url, http=http)
        for i in range(looks + 20):
            started = time.perf_counter()
            result, _ = run_analysis(
                loaded.profile,
                queries,
                source,
                MODEL,
                "fraud-00001",
                "fraud-00002",
                window,
                executor=executor,
            )
            if i == 19:  # warm-up done: connection pool, Prometheus' caches, imports
                cpu_ours, cpu_prometheus = time.process_time(), cpu_seconds(prometheus_pid)
            if i >= 20:
                timings.append((time.perf_counter() - started) * 1000)
            verdict = result.verdict.value
    # CPU per look does not depend on what else the host runs, unlike the wall-clock tail.
    ours = (time.process_time() - cpu_ours) * 1000 / looks
    theirs = (cpu_seconds(prometheus_pid) - cpu_prometheus) * 1000 / looks
    if executor is not None:
        executor.shutdown()
    return {
        "mode": mode,
        "threads": "shared pool" if shared else "per look",
        "looks": looks,
        "verdict": verdict,
        "p50_ms": round(statistics.median(timings), 2),
        "p99_ms": round(percentile(timings, 0.99), 2),
        "max_ms": round(max(timings), 2),
        "cpu_ms_per_look_analyzer": round(ours, 2),
        "cpu_ms_per_look_prometheus": round(theirs, 2),
        "loadavg_1m": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--looks", type=int, default=300)
    parser.add_argument("--mode", choices=["exact", "increase", "both"], default="both")
    args = parser.parse_args()
    configure_logging("warning")  # as in production: per-query debug lines are not emitted
    found = promserver.binaries()
    if found is None:
        sys.exit("needs the Debian prometheus package: apt-get install -y prometheus")
    sc = scenario()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        promserver.write_openmetrics(work / "data.om", sc)
        promserver.backfill(found[1], work / "data.om", work / "data")
        running = promserver.start(found[0], work / "data", work)
        try:
            window = TimeWindow.ending(sc.end, timedelta(hours=1))
            pid = running.process.pid
            modes = ["exact", "increase"] if args.mode == "both" else [args.mode]
            for mode in modes:
                print(json.dumps(measure(running.url, pid, mode, window, args.looks, shared=True)))
            print(json.dumps(measure(running.url, pid, modes[0], window, args.looks, shared=False)))
        finally:
            running.stop()


if __name__ == "__main__":
    main()
