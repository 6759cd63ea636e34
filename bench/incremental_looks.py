"""What a look costs Prometheus as its window grows: whole-window reads against incremental ones.

Real: the Debian ``prometheus`` backfilled by ``promtool`` with ``--hours`` of 15 s scrapes of
the seeded generator (baseline ``fraud-00001`` and canary ``fraud-00002``: Knative latency
histogram and request counters, business counters), and the ``PrometheusSource`` over HTTP.

For each window length W, one look of the four counter metrics of the 5-metric bench profile
(latency histogram, errors, false positives, decision mix; the threshold metric is an
expression, not a counter, and is left out) is timed two ways, ``--repeats`` times each:

* **whole**: a source with no memory reads ``[end − W, end]`` (every look before issue 20);
* **incremental**: a source that looked at the same session one minute earlier (``end − 60 s``)
  reads only what moved since.

Both must give the same observations (checked on every repeat). Reported: the median wall time
of a look (all its queries, sequential) and Prometheus' own CPU per look (``/proc`` of the
server process). The machine is shared: compare the two columns, not the absolutes.

    .venv/bin/python bench/incremental_looks.py --hours 6 --windows 10,60,180,340 --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))

import promserver  # noqa: E402

from analyzer.domain.model import ModelRef  # noqa: E402
from analyzer.logging import configure_logging  # noqa: E402
from analyzer.metrics.base import TimeWindow  # noqa: E402
from analyzer.metrics.prometheus import PrometheusSource  # noqa: E402
from analyzer.metrics.synthetic import RevisionBehaviour  # noqa: E402
from analyzer.profiles import LoadedProfile, parse_profile  # noqa: E402

PROFILE = """
name: bench-counters
metrics:
  - use: knative/latency
  - use: knative/errors
  - use: business/false_positives
  - use: business/decisions
"""
MODEL = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def look(source: PrometheusSource, loaded: LoadedProfile, window: TimeWindow) -> list[Any]:
    return [
        source.observe(spec, loaded.queries[spec.name], model=MODEL, baseline="fraud-00001",
                       canary="fraud-00002", window=window)
        for spec in loaded.profile.metrics
    ]  # fmt: skip


def measure(
    url: str, pid: int, loaded: LoadedProfile, end: Any, minutes: int, repeats: int
) -> dict[str, Any]:
    window = TimeWindow(start=end - timedelta(minutes=minutes), end=end)
    earlier = TimeWindow(start=window.start, end=end - timedelta(seconds=60))
    times: dict[str, list[float]] = {"whole": [], "incremental": []}
    cpu: dict[str, float] = {"whole": 0.0, "incremental": 0.0}
    whole: list[Any] = []
    with httpx.Client() as http:
        for _ in range(repeats):
            for mode in ("whole", "incremental"):
                source = PrometheusSource(base_url=url, http=http)
                if mode == "incremental":
                    look(source, loaded, earlier)  # the session's previous look
                cpu0, t0 = process_cpu(pid), time.perf_counter()
                observed = look(source, loaded, window)
                times[mode].append((time.perf_counter() - t0) * 1000)
                cpu[mode] += process_cpu(pid) - cpu0
                if mode == "incremental":
                    assert source.incremental_reads > 0, "the second look was not incremental"
                    assert observed == whole, "incremental and whole reads differ"
                else:
                    whole = observed
    return {
        "window_min": minutes,
        "whole_ms_p50": round(statistics.median(times["whole"]), 2),
        "incremental_ms_p50": round(statistics.median(times["incremental"]), 2),
        "ratio_p50": round(statistics.median(times["whole"]) /
                           statistics.median(times["incremental"]), 2),
        "prometheus_cpu_ms_per_look_whole": round(cpu["whole"] * 1000 / repeats, 1),
        "prometheus_cpu_ms_per_look_incremental": round(cpu["incremental"] * 1000 / repeats, 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=6)
    parser.add_argument("--windows", default="10,60,180,340", help="window lengths, minutes")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("warning")
    found = promserver.binaries()
    if found is None:
        sys.exit("needs the Debian prometheus package: apt-get install -y prometheus")
    loaded = parse_profile(PROFILE)
    base = RevisionBehaviour(weight=1.0)
    end = promserver.aligned_end(15.0)
    ticks = args.hours * 240
    scenario = promserver.Scenario(
        seed=20, origin=end - timedelta(seconds=15 * ticks), ticks=ticks, tick_seconds=15.0,
        request_rate=20.0, revisions={"fraud-00001": base, "fraud-00002": base},
    )  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        promserver.write_openmetrics(work / "data.om", scenario)
        promserver.backfill(found[1], work / "data.om", work / "data")
        prometheus = promserver.start(found[0], work / "data", work)
        try:
            pid = prometheus.process.pid
            for minutes in (int(w) for w in args.windows.split(",")):
                result = measure(prometheus.url, pid, loaded, end, minutes, args.repeats)
                result["load_avg_1m"] = round(os.getloadavg()[0], 2)
                print(json.dumps(result), flush=True)
                results.append(result)
        finally:
            prometheus.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
