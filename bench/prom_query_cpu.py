"""The Prometheus query path's CPU per look: ``PrometheusSource.observe`` of the 5 bench metrics.

Real: the Debian ``prometheus`` backfilled by ``promtool`` (two hours of 15 s scrapes, a baseline
and ``--sessions`` canaries, as ``bench/look_profile.py``), and the real ``PrometheusSource`` as
``serve`` builds it (no ``httpx`` client: its own kept-alive connections). Each look observes the
5 metrics of ``bench/api_load.py: PROFILE`` on the calling thread (no judge, no ledger, no
API): templates rendered, the instant queries sent, answers parsed and turned into
observations. A checkout whose source has ``observe_many`` reads the 4 counter metrics in one
query (2 queries a look), one without it (or ``--per-metric``) one query per metric (5). Each
session's window keeps its start and its end moves 6 s per round, as an AnalysisRun's looks do,
so every look after the first is incremental.

The looks run in worker processes, one per checkout: this one and, with ``--compare DIR``,
another (e.g. ``git archive main | tar -x -C /tmp/base``), both with this venv's packages. The
workers take turns, ``--batch`` rounds each, so both see the same machine load; each reports
the CPU its process spent per look (``time.process_time``: all threads), and this process
reads Prometheus' CPU over each batch from ``/proc``. Prints the medians and the best batch of
each, and their ratio.

    .venv/bin/python bench/prom_query_cpu.py [--sessions 5] [--batches 12] [--batch 3]
        [--compare DIR] [--profile] [--per-metric]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEP = timedelta(seconds=6)


def worker(
    root: Path, url: str, end: str, sessions: int, *, profiled: bool, per_metric: bool
) -> None:
    """Answer ``rounds N`` lines on stdin with the CPU per look of N more rounds (JSON)."""
    sys.path.insert(0, str(root))  # ahead of the editable install's finder
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))
    import promserver
    from api_load import PROFILE

    import analyzer
    from analyzer.domain.model import ModelRef
    from analyzer.logging import configure_logging
    from analyzer.metrics.base import TimeWindow
    from analyzer.metrics.prometheus import PrometheusSource
    from analyzer.profiles import parse_profile

    assert Path(analyzer.__file__).resolve().is_relative_to(root.resolve()), analyzer.__file__
    configure_logging("warning")
    loaded = parse_profile(PROFILE)
    model = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
    source = PrometheusSource(base_url=url)  # as `serve` builds it
    now = datetime.fromisoformat(end) - timedelta(minutes=20)
    # AnalysisRuns start at unrelated times: sessions sharing a window start share its memory
    starts = [now - timedelta(minutes=30, milliseconds=10 * i) for i in range(sessions)]
    canaries = [f"fraud-{i + 2:05d}" for i in range(sessions)]

    metrics = [(spec, loaded.queries[spec.name]) for spec in loaded.profile.metrics]
    batched = hasattr(source, "observe_many") and not per_metric

    def look(canary: str, window: TimeWindow) -> None:
        arms = {"model": model, "baseline": "fraud-00001", "canary": canary, "window": window}
        if batched:
            found = source.observe_many(metrics, **arms)  # type: ignore[attr-defined]
        else:
            found = {s.name: source.observe(s, q, **arms) for s, q in metrics}  # type: ignore[arg-type]
        for name, observation in found.items():
            if type(observation).__name__ == "MissingObservation":
                raise RuntimeError(f"{name}: {observation}")

    for canary, start in zip(canaries, starts, strict=True):  # first looks: whole windows
        look(canary, TimeWindow(start=start, end=now))
    print(json.dumps({"ready": str(root), "batched": batched}), flush=True)
    profile = cProfile.Profile(time.process_time) if profiled else None
    for line in sys.stdin:
        rounds = int(line.split()[1])
        cpu0, looks = time.process_time(), 0
        if profile is not None:
            profile.enable()
        for _ in range(rounds):
            now += STEP
            for canary, start in zip(canaries, starts, strict=True):
                look(canary, TimeWindow(start=start, end=now))
                looks += 1
        if profile is not None:
            profile.disable()
        used = (time.process_time() - cpu0) * 1000 / looks
        print(json.dumps({"ms": used, "incremental": source.incremental_reads}), flush=True)
    source.close()
    if profile is not None:
        stats = pstats.Stats(profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--batch", type=int, default=3, help="rounds per batch")
    parser.add_argument("--compare", type=Path, default=None, help="another checkout")
    parser.add_argument(
        "--profile", action="store_true",
        help="run this checkout's looks under cProfile; its top functions go to stderr",
    )  # fmt: skip
    parser.add_argument(
        "--per-metric", action="store_true",
        help="this checkout's looks one query per metric even if its source batches",
    )  # fmt: skip
    parser.add_argument("--worker", nargs=4, metavar=("ROOT", "URL", "END", "SESSIONS"))
    args = parser.parse_args()
    if args.worker:
        root, url, end, sessions = args.worker
        worker(
            Path(root), url, end, int(sessions), profiled=args.profile, per_metric=args.per_metric
        )
        return
    if args.batches * args.batch * STEP > timedelta(minutes=19):
        sys.exit("the looks would run past the backfilled data: fewer batches or rounds")
    sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))
    import promserver

    from analyzer.metrics.synthetic import RevisionBehaviour

    found = promserver.binaries()
    if found is None:
        sys.exit("needs the Debian prometheus package: apt-get install -y prometheus")
    base = RevisionBehaviour(weight=1.0)
    canaries = [f"fraud-{i + 2:05d}" for i in range(args.sessions)]
    end = promserver.aligned_end(15.0)
    scenario = promserver.Scenario(
        seed=3, origin=end - timedelta(hours=2), ticks=480, tick_seconds=15.0,
        request_rate=20.0, revisions={"fraud-00001": base, **dict.fromkeys(canaries, base)},
    )  # fmt: skip
    checkouts = {"this": ROOT} | ({"compare": args.compare} if args.compare else {})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        promserver.write_openmetrics(work / "data.om", scenario)
        promserver.backfill(found[1], work / "data.om", work / "data")
        prometheus = promserver.start(found[0], work / "data", work)
        workers: dict[str, subprocess.Popen[str]] = {}
        try:
            for name, root in checkouts.items():
                command = [sys.executable, __file__, "--worker", str(root), prometheus.url,
                           end.astimezone(UTC).isoformat(), str(args.sessions)]  # fmt: skip
                if args.profile and name == "this":
                    command.append("--profile")
                if args.per_metric and name == "this":
                    command.append("--per-metric")
                workers[name] = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                )
                print(name, _answer(workers[name]))
            per_look: dict[str, list[float]] = {name: [] for name in workers}
            prom_per_look: dict[str, list[float]] = {name: [] for name in workers}
            for i in range(args.batches):
                order = list(workers) if i % 2 == 0 else list(reversed(workers))
                for name in order:
                    assert workers[name].stdin is not None
                    prom0 = _process_cpu(prometheus.process.pid)
                    workers[name].stdin.write(f"rounds {args.batch}\n")
                    workers[name].stdin.flush()
                    per_look[name].append(_answer(workers[name])["ms"])
                    spent = _process_cpu(prometheus.process.pid) - prom0
                    prom_per_look[name].append(spent * 1000 / (args.batch * args.sessions))
        finally:
            for process in workers.values():
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(timeout=30)
            prometheus.stop()
    looks = args.batches * args.batch * args.sessions
    for what, table in (("CPU", per_look), ("Prometheus' CPU", prom_per_look)):
        print(f"{what} per 5-metric look (ms), {looks} incremental looks per checkout:")
        for name, values in table.items():
            print(f"  {name:8} median {statistics.median(values):6.2f}  best {min(values):6.2f}  "
                  f"batches {' '.join(f'{v:.2f}' for v in values)}")  # fmt: skip
        if args.compare:
            ratio = statistics.median(
                t / c for t, c in zip(table["this"], table["compare"], strict=True)
            )
            print(f"  this / compare: median of the batch ratios {ratio:.3f}")


def _process_cpu(pid: int) -> float:
    """A process' user+system CPU seconds so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answer(process: subprocess.Popen[str]) -> Any:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the worker exited ({process.wait()})")
    return json.loads(line)


if __name__ == "__main__":
    main()
