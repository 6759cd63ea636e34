"""Load on ``POST /api/v1/analyses``: open-loop requests at a fixed rate, p50/p99 latency.

Everything is real and local: the Debian ``prometheus`` backfilled by ``promtool`` with two hours
of 15 s scrapes (the generator the integration tests use) for one baseline and ``--sessions``
canary revisions; a scratch PostgreSQL database migrated by Alembic; the API (uvicorn, one
process, built by ``create_app`` with the real ``AnalysisService`` and ``PrometheusSource``, fresh
looks in ``--look-processes`` worker processes, start-up objects frozen out of the GC, as
``serve`` runs) in a child process; the load generator (aiohttp, asyncio) in this one. The
profile has 5 metrics (latency histogram, error and false-positive proportions, decision mix,
p99 threshold).

Requests are *scheduled* at ``--rate`` per second and latency is measured from the scheduled
send time, so a stalled server cannot hide its queue (no coordinated omission). Requests cycle
over ``--sessions`` (model, canary) pairs, as many concurrent Argo AnalysisRuns would.

Scenarios:

* ``cached``: the service's default 10 s answer cache; at 200 req/s over 20 sessions each
  session gets a fresh look (2 Prometheus queries: the 4 counter metrics' in one, the p99
  threshold's; then the judge) every 10 s, the rest are answered from the replica's memo of
  the last look. Every call still appends a ledger entry (group
  commit) before it is answered.
* ``fresh``: cache off, every request is a full look (the worst case; real Argo traffic is one
  request per AnalysisRun per ``interval``, i.e. far below this rate).

    /work/venv/bin/python bench/api_load.py [--rate 200] [--seconds 30] [--sessions 20]
        [--scenario cached|fresh|both] [--workers 1] [--look-processes 2] [--no-freeze]
        [--repeat N] [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))

import promserver  # noqa: E402

from analyzer.metrics.synthetic import RevisionBehaviour  # noqa: E402

TOKEN = "bench-analysis-token-0123456789"
PROFILE = """
name: bench-5
metrics:
  - use: knative/latency
  - use: knative/errors
  - use: business/false_positives
  - use: business/decisions
  - use: knative/p99_latency
"""


def canaries(sessions: int) -> list[str]:
    return [f"fraud-{i + 2:05d}" for i in range(sessions)]


def scenario(sessions: int) -> promserver.Scenario:
    end = promserver.aligned_end(15.0)
    revisions = {"fraud-00001": RevisionBehaviour(weight=1.0)}
    for name in canaries(sessions):
        revisions[name] = RevisionBehaviour(weight=1.0)
    return promserver.Scenario(
        seed=3,
        origin=end - timedelta(hours=2),
        ticks=480,
        tick_seconds=15.0,
        request_rate=20.0,
        revisions=revisions,
    )


def app_factory() -> Any:
    """The API as production builds it, minus Kubernetes; config from ``API_LOAD_CONFIG``.

    The clock runs from ``epoch`` (five minutes before the backfilled data ends) at real speed,
    so every window ends inside the data, as it would against a live Prometheus.
    """
    from prometheus_client import CollectorRegistry

    from analyzer.analyses.catalog import ProfileCatalog
    from analyzer.analyses.looks import LookRunner, ProcessLooks, ThreadLooks
    from analyzer.analyses.service import AnalysisService
    from analyzer.api.app import create_app
    from analyzer.api.flagger import PolicyGateEvaluator
    from analyzer.api.server import freeze_startup_objects
    from analyzer.config import ApiSettings, RateLimitSettings, Settings, StaticTokenSettings
    from analyzer.db import make_engine
    from analyzer.ledger.store import Ledger
    from analyzer.logging import configure_logging
    from analyzer.rollouts.service import RolloutService
    from analyzer.targets.memory.target import InMemoryTarget
    from gates.policy import GatePolicyConfig

    config = json.loads(os.environ["API_LOAD_CONFIG"])
    configure_logging("warning")
    started = time.time()

    def clock() -> datetime:
        return datetime.fromtimestamp(config["epoch"] + time.time() - started, tz=UTC)

    profiles_dir = Path(config["profiles_dir"])
    settings = Settings(
        api=ApiSettings(
            static_tokens=(StaticTokenSettings(subject="argo", roles=("analysis",), token=TOKEN),),
            rate_limit_analysis=RateLimitSettings(per_second=10_000, burst=10_000),
            profiles_dir=profiles_dir,
        )
    )
    engine = make_engine(config["db_url"], pool_size=20, max_overflow=20)
    ledger = Ledger(engine, clock=clock)
    looks: LookRunner
    if config["look_processes"] > 0:  # as `serve` runs Prometheus looks by default
        looks = ProcessLooks(
            partial(bench_source, config["prometheus_url"]),
            processes=config["look_processes"],
            concurrent_fetches=config["concurrent_fetches"],
        )
    else:
        looks = ThreadLooks(
            bench_source(config["prometheus_url"]),
            concurrent_fetches=config["concurrent_fetches"],
        )
    analyses = AnalysisService(
        engine,
        ledger,
        looks,
        clock=clock,
        cache_seconds=config["cache"],
        lookback=timedelta(minutes=30),
    )
    app = create_app(
        settings,
        engine=engine,
        ledger=ledger,
        rollouts=RolloutService(engine, ledger, InMemoryTarget()),
        analyses=analyses,
        gate_evaluator=PolicyGateEvaluator(GatePolicyConfig(), {}),
        profiles=ProfileCatalog(profiles_dir),
        registry=CollectorRegistry(),
        clock=clock,
    )
    app.router.on_shutdown.append(looks.close)  # uvicorn stops on SIGTERM: stop the workers
    if config["freeze"]:
        freeze_startup_objects()
    return app


def bench_source(prometheus_url: str) -> Any:
    """The Prometheus source of the API process or of a look worker (picklable by name)."""
    from analyzer.logging import configure_logging
    from analyzer.metrics.prometheus import PrometheusSource

    configure_logging("warning")  # a spawned worker starts without the API's logging
    # as `serve` builds it: no httpx client, kept-alive http.client connections (issue 20)
    return PrometheusSource(base_url=prometheus_url)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(url: str, rate: float, seconds: float, sessions: int) -> dict[str, Any]:
    # aiohttp, not httpx: httpx's async client alone saturated a CPU below 200 req/s here, and
    # the generator must not be what is measured.
    import aiohttp

    names = canaries(sessions)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    cached: Counter[bool] = Counter()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=10.0)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def one(i: int, scheduled: float) -> None:
            body = {
                "model": {"namespace": promserver.NAMESPACE, "name": promserver.MODEL},
                "canary": names[i % sessions],
                "baseline": "fraud-00001",
                "profile": "bench-5",
                "weight": 50,
                "rollout": f"bench-{i % sessions}",
            }
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                async with client.post(
                    f"{url}/api/v1/analyses", json=body, headers=headers
                ) as response:
                    statuses[str(response.status)] += 1
                    answer = await response.json()
                    if response.status == 200:
                        cached[bool(answer["cached"])] += 1
                        statuses[answer["verdict"]] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        total = int(rate * seconds)
        start = time.perf_counter() + 0.5
        await asyncio.gather(*(one(i, start + i / rate) for i in range(total)))
        elapsed = time.perf_counter() - start
    return {
        "requests": total,
        "achieved_rate": round(total / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p90_ms": round(percentile(latencies, 0.90), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "cached_share": round(cached[True] / max(1, sum(cached.values())), 3),
        "outcomes": dict(statuses),
    }


def direct_looks(
    prom_url: str, sessions: int, interval: float, samples: int, epoch: float
) -> dict[str, float]:
    """The same looks' Prometheus queries issued directly (no service), one after another: for
    ``samples`` sessions, a whole read of a 30-minute window (the session's first look) and the
    incremental read ``interval`` later (its next look), each timed; p50 of each in ms. Both as
    per-metric reads (one counter query per metric, as before issue 20's batching) and, when the
    source has ``observe_many``, batched (one counter query per look), alternating."""
    from analyzer.domain.model import ModelRef
    from analyzer.metrics.base import TimeWindow
    from analyzer.profiles import parse_profile

    loaded = parse_profile(PROFILE)
    metrics = [(spec, loaded.queries[spec.name]) for spec in loaded.profile.metrics]
    model = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
    source = bench_source(prom_url)
    batched = hasattr(source, "observe_many")
    now = datetime.fromtimestamp(epoch, tz=UTC) + timedelta(minutes=2)  # inside the data
    times: dict[str, list[float]] = {}
    for i in range(samples):
        canary = canaries(sessions)[i % sessions]
        start = now - timedelta(minutes=30)
        for way in ("", "batched_") if batched else ("",):
            args = {"model": model, "baseline": "fraud-00001", "canary": canary}
            for end, look in ((now, "whole"), (now + timedelta(seconds=interval), "incremental")):
                window = TimeWindow(start=start, end=end)
                t0 = time.perf_counter()
                if way:
                    source.observe_many(metrics, window=window, **args)
                else:
                    for spec, query in metrics:
                        source.observe(spec, query, window=window, **args)
                times.setdefault(f"direct_{way}{look}_p50_ms", []).append(
                    (time.perf_counter() - t0) * 1000
                )
            now += timedelta(milliseconds=10)  # another window start: nothing remembered
    return {name: round(statistics.median(values), 2) for name, values in times.items()}


def prometheus_queries(prom_url: str) -> float:
    """How many queries Prometheus has answered (its own request counter, both query APIs)."""
    text = httpx.get(f"{prom_url}/metrics", timeout=5).text
    handlers = ('handler="/api/v1/query"', 'handler="/api/v1/query_range"')
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{") and any(h in line for h in handlers)
    )


def cpu_seconds(root: int) -> tuple[float, float]:
    """User+system CPU of ``root`` and of its live children (look workers, uvicorn workers),
    from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    own = children = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        spent = (int(fields[11]) + int(fields[12])) / tick
        if pid == root:
            own += spent
        elif ppid == root:
            children += spent
    return own, children


def server_histogram(url: str) -> dict[float, float]:
    """Cumulative counts of the server's own latency histogram for the analyses route."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    counts: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith("canary_analyzer_http_request_duration_seconds_bucket{"):
            continue
        if 'route="/api/v1/analyses"' not in line or 'status="200"' not in line:
            continue
        le = line.split('le="', 1)[1].split('"', 1)[0]
        bound = math.inf if le == "+Inf" else float(le)
        counts[bound] = counts.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (ms) of the bucket holding quantile ``q`` of the requests in between."""
    bounds = sorted(after)
    total = after[math.inf] - before.get(math.inf, 0.0)
    for bound in bounds:
        if after[bound] - before.get(bound, 0.0) >= q * total:
            return bound * 1000
    return math.inf


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 180  # a loaded 2-core box: spawned look workers import slowly
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not become ready")


def run_scenario(
    name: str,
    args: argparse.Namespace,
    prometheus: promserver.RunningPrometheus,
    work: Path,
    epoch: float,
) -> dict[str, Any]:
    from alembic import command

    from analyzer.db import alembic_config
    from tests import pg

    cache = args.cache_seconds if name == "cached" else 0.0
    prom_url, prom_pid = prometheus.url, prometheus.process.pid
    with pg.scratch_database(pg.maintenance_url(), durable=True) as db:
        db_url = db.render_as_string(hide_password=False)
        command.upgrade(alembic_config(db_url), "head")
        port = promserver.free_port()
        config = {
            "db_url": db_url,
            "prometheus_url": prom_url,
            "profiles_dir": str(work),
            "cache": cache,
            "epoch": epoch,
            "look_processes": args.look_processes,
            "freeze": not args.no_freeze,
            "concurrent_fetches": not args.sequential_fetches,
        }
        # uvicorn in its own process(es), as deployed; workers > 1 spread the GIL.
        child = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api_load:app_factory", "--factory",
             "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(args.workers), "--log-level", "warning", "--no-access-log"],
            env={**os.environ, "API_LOAD_CONFIG": json.dumps(config),
                 "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            # Warm-up: one first look per session, spread over the cache TTL. AnalysisRuns start
            # at unrelated times, so their looks expire at unrelated times (started together,
            # every session would expire in the same instant, a herd no real fleet produces).
            # (fresh: over one round of the sessions, as their AnalysisRuns' intervals would)
            spread = min(max(cache, 1.0, args.sessions / args.rate), 30.0)
            asyncio.run(load(url, args.sessions / spread, spread, args.sessions))
            cpu_before, hist_before = cpu_seconds(child.pid), server_histogram(url)
            prom_before, queries_before = sum(cpu_seconds(prom_pid)), prometheus_queries(prom_url)
            result = asyncio.run(load(url, args.rate, args.seconds, args.sessions))
            cpu_after = cpu_seconds(child.pid)
            prom_after, queries_after = sum(cpu_seconds(prom_pid)), prometheus_queries(prom_url)
            own, children = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
            cpu = own + children
            hist = server_histogram(url)
            # The server's own view (one worker's registry when --workers > 1: a sample)
            result["server_p50_le_ms"] = bucket_quantile(hist_before, hist, 0.50)
            result["server_p99_le_ms"] = bucket_quantile(hist_before, hist, 0.99)
            result["server_cpu_ms_per_request"] = round(cpu * 1000 / result["requests"], 2)
            # where it went: the API process (HTTP, row, ledger) and its children (look workers)
            result["api_process_cpu_ms"] = round(own * 1000 / result["requests"], 2)
            result["workers_cpu_ms"] = round(children * 1000 / result["requests"], 2)
            # Prometheus' side of the same calls (its process in /proc), and its queries per call
            result["prometheus_cpu_ms_per_request"] = round(
                (prom_after - prom_before) * 1000 / result["requests"], 2
            )
            result["prometheus_queries_per_request"] = round(
                (queries_after - queries_before) / result["requests"], 2
            )
            result["load_avg_1m"] = os.getloadavg()[0]
            if args.direct_samples:
                interval = args.sessions / args.rate  # each session's calls are this far apart
                direct = direct_looks(prom_url, args.sessions, interval, args.direct_samples, epoch)
                result |= direct
                result["ratio_p50_to_direct_incremental"] = round(
                    result["p50_ms"] / direct["direct_incremental_p50_ms"], 2
                )
                result["ratio_p50_to_direct_whole"] = round(
                    result["p50_ms"] / direct["direct_whole_p50_ms"], 2
                )
                if "direct_batched_incremental_p50_ms" in direct:
                    result["ratio_p50_to_direct_batched_incremental"] = round(
                        result["p50_ms"] / direct["direct_batched_incremental_p50_ms"], 2
                    )
            settings = {
                "scenario": name, "rate": args.rate, "workers": args.workers,
                "look_processes": args.look_processes, "freeze": not args.no_freeze,
                "sequential_fetches": args.sequential_fetches,
            }  # fmt: skip
            print(json.dumps({**settings, **result}), flush=True)
            return {**settings, **result}
        finally:
            child.terminate()
            child.wait(15)


def summarize(runs: list[dict[str, Any]], goal_ms: float) -> None:
    """Per configuration: medians over the repetitions and how many met the p99 goal."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for run in runs:
        key = (run["scenario"], run["look_processes"], run["freeze"], run["sequential_fetches"])
        groups.setdefault(key, []).append(run)
    for (scenario, processes, freeze, sequential), group in groups.items():
        p99s = [r["p99_ms"] for r in group]
        print(json.dumps({
            "summary": scenario, "look_processes": processes, "freeze": freeze,
            "sequential_fetches": sequential,
            "median_cpu_ms": round(
                statistics.median(r["server_cpu_ms_per_request"] for r in group), 2
            ),
            "runs": len(group),
            "median_p50_ms": round(statistics.median(r["p50_ms"] for r in group), 2),
            "median_p99_ms": round(statistics.median(p99s), 2),
            "p99_ms": p99s,
            f"p99_at_most_{goal_ms:g}ms": sum(p <= goal_ms for p in p99s),
            "load_avg_1m": [round(r["load_avg_1m"], 2) for r in group],
        }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--cache-seconds", type=float, default=10.0, help="the service's TTL")
    parser.add_argument("--scenario", choices=["cached", "fresh", "both"], default="both")
    parser.add_argument(
        "--look-processes", type=int, default=2,
        help="worker processes for fresh looks (0: the API process's threads, as before)",
    )  # fmt: skip
    parser.add_argument(
        "--no-freeze", action="store_true", help="skip gc.freeze() after start-up (as before)"
    )
    parser.add_argument(
        "--sequential-fetches", action="store_true",
        help="a look's metric queries one after another (no thread per query)",
    )  # fmt: skip
    parser.add_argument(
        "--compare-fetches", action="store_true",
        help="run each configuration with concurrent and with sequential fetches, interleaved",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument(
        "--compare", action="store_true",
        help="also run the old configuration (--look-processes 0 --no-freeze), interleaved",
    )  # fmt: skip
    parser.add_argument("--goal-ms", type=float, default=50.0, help="the p99 goal")
    parser.add_argument(
        "--direct-samples", type=int, default=0,
        help="after each run, time this many looks' Prometheus queries issued directly",
    )  # fmt: skip
    args = parser.parse_args()
    found = promserver.binaries()
    if found is None:
        sys.exit("needs the Debian prometheus package: apt-get install -y prometheus")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bench-5.yaml").write_text(PROFILE)
        sc = scenario(args.sessions)
        epoch = (sc.end - timedelta(minutes=5)).timestamp()
        promserver.write_openmetrics(work / "data.om", sc)
        promserver.backfill(found[1], work / "data.om", work / "data")
        prometheus = promserver.start(found[0], work / "data", work)
        try:
            names = ["cached", "fresh"] if args.scenario == "both" else [args.scenario]
            # --compare: the configuration before worker processes and gc.freeze, interleaved
            # with the current one, so both see the same machine noise.
            variants = [args]
            if args.compare:
                variants = [argparse.Namespace(**{**vars(args), "look_processes": 0,
                                                  "no_freeze": True}), args]  # fmt: skip
            if args.compare_fetches:
                variants = [
                    argparse.Namespace(**{**vars(v), "sequential_fetches": sequential})
                    for v in variants
                    for sequential in (False, True)
                ]
            runs = []
            for _ in range(args.repeat):
                for variant in variants:
                    for name in names:
                        runs.append(run_scenario(name, variant, prometheus, work, epoch))
            if args.repeat > 1 or args.compare or args.compare_fetches:
                summarize(runs, args.goal_ms)
        finally:
            prometheus.stop()


if __name__ == "__main__":
    main()
