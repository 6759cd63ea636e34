"""One ``analyze`` look against the fake Datadog API: the Datadog source's and the judge's cost.

The fake (tests/fakes/datadog.py) runs in a child process on 127.0.0.1, loaded with two hours
of the seeded scenario (ddload.py: what the Agent would send) for a baseline and a 20 % slower
canary. Each look runs ``run_analysis`` over a one-hour window with the six-metric Datadog
profile (tests/integration/prometheus/profile-datadog.yaml: histogram, two proportions,
categorical, samples, a distribution percentile), one request per metric. Reported: wall time
per look (p50/p99/max; it includes the fake's own Python evaluation, so it says nothing about
Datadog's latency) and this process's CPU per look (the source's HTTP, parsing and the judge),
plus requests per look.

    .venv/bin/python bench/datadog_look.py [--looks 300]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))

import ddload  # noqa: E402
import promserver  # noqa: E402

from analyzer.analysis import run_analysis  # noqa: E402
from analyzer.domain.model import ModelRef  # noqa: E402
from analyzer.logging import configure_logging  # noqa: E402
from analyzer.metrics.base import TimeWindow  # noqa: E402
from analyzer.metrics.datadog import DatadogSource  # noqa: E402
from analyzer.metrics.synthetic import RevisionBehaviour  # noqa: E402
from analyzer.profiles import load_profile  # noqa: E402
from tests.fakes.datadog import FakeDatadog  # noqa: E402

PROFILE = load_profile(ROOT / "tests" / "integration" / "prometheus" / "profile-datadog.yaml")
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


def serve(chosen: promserver.Scenario, conn: Connection) -> None:
    with FakeDatadog() as fake:
        ddload.load(fake, chosen)
        conn.send((fake.url, fake.api_key, fake.application_key))
        conn.recv()  # until the parent is done
        conn.send(len(fake.query_requests()))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--looks", type=int, default=300)
    args = parser.parse_args()
    configure_logging("warning", "console")
    chosen = scenario()
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=serve, args=(chosen, child), daemon=True)
    process.start()
    url, api_key, app_key = parent.recv()
    window = TimeWindow.ending(chosen.end, timedelta(hours=1))
    walls, cpus, verdicts = [], [], set()
    with httpx.Client() as http, ThreadPoolExecutor(max_workers=8) as pool:
        source = DatadogSource(base_url=url, api_key=api_key, application_key=app_key, http=http)
        for i in range(args.looks + 20):
            wall, cpu = time.perf_counter(), time.process_time()
            result, _ = run_analysis(
                PROFILE.profile, PROFILE.queries, source, MODEL,
                "fraud-00001", "fraud-00002", window, executor=pool,
            )  # fmt: skip
            if i >= 20:
                walls.append((time.perf_counter() - wall) * 1000)
                cpus.append((time.process_time() - cpu) * 1000)
                verdicts.add(result.verdict.value)
    parent.send("done")
    requests = parent.recv()
    process.join(timeout=10)
    print(json.dumps({
        "looks": args.looks,
        "wall_ms": {"p50": round(statistics.median(walls), 1),
                    "p99": round(percentile(walls, 0.99), 1), "max": round(max(walls), 1)},
        "analyzer_cpu_ms_per_look": round(statistics.median(cpus), 2),
        "requests_per_look": round(requests / (args.looks + 20), 2),
        "verdicts": sorted(verdicts),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
