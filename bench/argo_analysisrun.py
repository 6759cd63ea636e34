"""Whole Argo AnalysisRuns through the shipped template, against a real Prometheus whose data grow.

What is real: the Debian ``prometheus`` scraping, every second, an exporter in this process that
serves Knative queue-proxy metrics (``revision_app_request_count{response_code_class}``, classic
or ``_total`` naming, and ``revision_app_request_latencies_bucket`` in ms) for a stable and a
canary revision per run; the API (``create_app`` with the real ``AnalysisService``,
``PrometheusSource`` and judge, uvicorn on 127.0.0.1) over a scratch PostgreSQL database
migrated by Alembic; HTTP between them. What is emulated: the Argo controller. Each run renders
``deploy/argo/analysistemplate.yaml`` the way Argo does (args substituted JSON-escaped, the
secret resolved, ``jsonBody`` sent, ``timeoutSeconds`` as the client timeout), reads
``{$.verdict}``, evaluates ``successCondition``/``failureCondition`` with Argo's truth table,
and assesses the run with the rules of argo-rollouts' ``analysis/analysis.go``
(``assessMetricFailureInconclusiveOrError`` and ``assessMetricStatus``): after each measurement,
``failed > failureLimit`` -> Failed, ``inconclusive > inconclusiveLimit`` -> Inconclusive,
``consecutiveError > consecutiveErrorLimit`` -> Error (later checks win, as in Go); else
``count`` counted measurements (errors are not counted) -> Successful. The next measurement is
due ``interval`` after the previous one finished, 10 s after an Error; a non-2xx answer, a
timeout or a missing ``jsonPath`` is an Error; a non-JSON 2xx is Successful (released Argo).

Time is compressed by ``--compression`` (default 30): traffic is generated at the simulated
rate times the compression (one real second carries 30 simulated seconds of requests), and the
template's interval is the simulated one divided by it (1 m -> 2 s). The judge sees exactly the
counts a real 10-minute bake would produce; only wall-clock durations shrink. Decision times are
reported in simulated minutes since the run's first measurement.

Scenario (issue 12): stable 180 req/s, canary 20 req/s (weight 10 %), latency lognormal (median
80 ms, sigma 0.5), errors 0.2 %. ``healthy``: the canary behaves like stable. ``bad``: canary
errors 1 % and latency +20 %. The profile is the shipped ``knative`` preset.

    .venv/bin/python bench/argo_analysisrun.py [--runs 40] [--compression 30]
        [--counter-naming classic|total] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzer.metrics.synthetic.generator import (  # noqa: E402
    DEFAULT_BUCKETS_MS,
    RevisionBehaviour,
    bucket_probabilities,
)

TEMPLATE = ROOT / "deploy" / "argo" / "analysistemplate.yaml"
TOKEN = "bench-argo-analysis-token-0123456789"
NAMESPACE = "bench"
MODEL = "fraud-scorer"
ERROR_REASONS: Counter[str] = Counter()  # why the service answered `error`, for the report
ERROR_RETRY_SECONDS = 10.0  # argo-rollouts DefaultErrorRetryInterval (simulated seconds)
STABLE_RPS, CANARY_RPS = 180.0, 20.0
SCENARIOS = {
    "healthy": RevisionBehaviour(error_rate=0.002),
    "bad": RevisionBehaviour(error_rate=0.01, latency_shift=0.2),
}
STABLE = RevisionBehaviour(error_rate=0.002)


# --- the exporter: Knative queue-proxy metrics that grow while the runs go on ------------------


@dataclass
class _Revision:
    behaviour: RevisionBehaviour
    rps: float
    rng: np.random.Generator
    probs: np.ndarray
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(len(DEFAULT_BUCKETS_MS), int))
    ok: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0


RevisionPlan = tuple[str, RevisionBehaviour, float, int]  # name, behaviour, req/s, seed


class Exporter:
    """``/metrics`` for every revision; counters advance with (compressed) time.

    Runs in its own process (:func:`serve_exporter`): scraped every second while the service
    judges dozens of runs, it must not wait for the service's threads.
    """

    def __init__(
        self,
        plans: list[RevisionPlan],
        compression: float,
        total_named: frozenset[str],
        port: int,
    ) -> None:
        self._compression = compression
        self._total_named = total_named  # revisions whose request counter ends in ``_total``
        self._revisions: dict[str, _Revision] = {}
        self._lock = threading.Lock()
        self._last = time.monotonic()
        for name, behaviour, rps, seed in plans:
            self.add(name, behaviour, rps, seed)
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are separate writes

            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def serve(self) -> None:
        self._server.serve_forever()

    def add(self, name: str, behaviour: RevisionBehaviour, rps: float, seed: int) -> None:
        probs = np.asarray(bucket_probabilities(behaviour, DEFAULT_BUCKETS_MS), dtype=float)
        with self._lock:
            self._revisions[name] = _Revision(
                behaviour, rps, np.random.default_rng(seed), probs / probs.sum()
            )

    def _advance(self) -> None:
        now = time.monotonic()
        simulated = (now - self._last) * self._compression
        self._last = now
        for rev in self._revisions.values():
            n = int(rev.rng.poisson(rev.rps * simulated))
            errors = int(rev.rng.binomial(n, rev.behaviour.error_rate))
            rev.errors += errors
            rev.ok += n - errors
            per_bucket = rev.rng.multinomial(n, rev.probs)
            rev.buckets += per_bucket
            rev.latency_sum_ms += n * rev.behaviour.latency_median_ms

    def render(self) -> str:
        with self._lock:
            self._advance()
            lines = [
                "# TYPE revision_app_request_count counter",
                "# TYPE revision_app_request_latencies histogram",
            ]
            for name, rev in self._revisions.items():
                labels = f'namespace_name="{NAMESPACE}",revision_name="{name}"'
                count = "revision_app_request_count" + (
                    "_total" if name in self._total_named else ""
                )
                lines.append(f'{count}{{{labels},response_code_class="2xx"}} {rev.ok}')
                lines.append(f'{count}{{{labels},response_code_class="5xx"}} {rev.errors}')
                cumulative = np.cumsum(rev.buckets)
                for bound, value in zip(DEFAULT_BUCKETS_MS, cumulative, strict=True):
                    le = "+Inf" if math.isinf(bound) else f"{bound:g}"
                    lines.append(
                        f'revision_app_request_latencies_bucket{{{labels},le="{le}"}} {value}'
                    )
                lines.append(f"revision_app_request_latencies_count{{{labels}}} {cumulative[-1]}")
                lines.append(f"revision_app_request_latencies_sum{{{labels}}} {rev.latency_sum_ms}")
            return "\n".join(lines) + "\n"


def serve_exporter(
    plans: list[RevisionPlan], compression: float, total_named: frozenset[str], port: int
) -> None:
    Exporter(plans, compression, total_named, port).serve()


# --- Prometheus scraping the exporter --------------------------------------------------------


def start_prometheus(target: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 15s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: knative, static_configs: [{{targets: ['{target}']}}]}}\n"
    )
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=0.5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("prometheus did not become ready")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the service --------------------------------------------------------------------------------


class Service:
    """The API as ``serve`` builds it (Prometheus source, looks on threads) on 127.0.0.1."""

    def __init__(self, db_url: str, prometheus_url: str, cache_seconds: float) -> None:
        import uvicorn
        from prometheus_client import CollectorRegistry

        from analyzer.analyses.catalog import ProfileCatalog
        from analyzer.analyses.looks import ThreadLooks
        from analyzer.analyses.service import AnalysisService
        from analyzer.api.app import create_app
        from analyzer.api.flagger import PolicyGateEvaluator
        from analyzer.config import ApiSettings, RateLimitSettings, Settings, StaticTokenSettings
        from analyzer.db import make_engine
        from analyzer.ledger.store import Ledger
        from analyzer.logging import configure_logging
        from analyzer.metrics.prometheus import PrometheusSource
        from analyzer.rollouts.service import RolloutService
        from analyzer.targets.memory.target import InMemoryTarget
        from gates.policy import GatePolicyConfig

        configure_logging("error")
        settings = Settings(
            api=ApiSettings(
                static_tokens=(
                    StaticTokenSettings(subject="argo", roles=("analysis",), token=TOKEN),
                ),
                rate_limit_analysis=RateLimitSettings(per_second=10_000, burst=10_000),
            )
        )
        self.engine = make_engine(db_url, pool_size=40, max_overflow=40)
        ledger = Ledger(self.engine)
        limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
        source = PrometheusSource(base_url=prometheus_url, http=httpx.Client(limits=limits))
        self.looks = ThreadLooks(source)
        self.analyses = AnalysisService(
            self.engine, ledger, self.looks, cache_seconds=cache_seconds
        )
        app = create_app(
            settings,
            engine=self.engine,
            ledger=ledger,
            rollouts=RolloutService(self.engine, ledger, InMemoryTarget()),
            analyses=self.analyses,
            gate_evaluator=PolicyGateEvaluator(GatePolicyConfig(), {}),
            profiles=ProfileCatalog(None),
            registry=CollectorRegistry(),
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{self._server.servers[0].sockets[0].getsockname()[1]}"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.analyses.close()
        self.looks.close()
        self.engine.dispose()


# --- the Argo controller, emulated --------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}")
_EQUALS = re.compile(r'^result == "([a-z]+)"$')
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def template_metric(args: dict[str, str]) -> dict[str, Any]:
    """The template's one metric as Argo resolves it: args (defaults, then ours) substituted."""
    spec = yaml.safe_load(TEMPLATE.read_text())["spec"]
    values: dict[str, str] = {}
    for arg in spec["args"]:
        if "valueFrom" in arg:
            values[arg["name"]] = TOKEN  # the Secret's value
        elif arg["name"] in args:
            values[arg["name"]] = args[arg["name"]]
        else:
            values[arg["name"]] = arg["value"]
    (metric,) = spec["metrics"]
    text = _PLACEHOLDER.sub(lambda m: json.dumps(values[m.group(1)])[1:-1], json.dumps(metric))
    return dict(json.loads(text))


def _seconds(duration: str) -> float:
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"unsupported duration {duration!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def _condition(expression: str, result: Any) -> bool:
    match = _EQUALS.match(expression.strip())
    if match is None:
        raise ValueError(f'only `result == "x"` conditions are emulated, not {expression!r}')
    return bool(result == match.group(1))


def measure(http: httpx.Client, base_url: str, metric: dict[str, Any]) -> tuple[str, Any]:
    """One web-provider measurement: (phase, result) with Argo's handling of the answer."""
    web = metric["provider"]["web"]
    headers = {h["key"]: h["value"] for h in web["headers"]}
    try:
        response = http.request(
            web["method"],
            base_url + urlsplit(web["url"]).path,
            json=web["jsonBody"],
            headers=headers,
            timeout=float(web.get("timeoutSeconds", 10)),
        )
    except httpx.HTTPError as exc:
        return "Error", type(exc).__name__
    if not 200 <= response.status_code < 300:
        return "Error", response.status_code
    try:
        body = response.json()
    except ValueError:
        return "Successful", response.text  # released Argo: non-JSON 2xx passes (must not happen)
    key = re.fullmatch(r"\{\$\.([a-z_]+)\}", web["jsonPath"])
    if key is None or not isinstance(body, dict) or key.group(1) not in body:
        return "Error", "jsonPath not found"
    result = body[key.group(1)]
    if result == "error":
        for m in body.get("metrics", []):
            if m.get("verdict") == "error":
                ERROR_REASONS[f"{m.get('name')}: {str(m.get('reason', ''))[:100]}"] += 1
        if not body.get("metrics"):
            ERROR_REASONS[str(body.get("reason", ""))[:120]] += 1
    if _condition(metric["failureCondition"], result):
        return "Failed", result
    if _condition(metric["successCondition"], result):
        return "Successful", result
    return "Inconclusive", result


def assess(metric: dict[str, Any], tally: Counter[str], consecutive_errors: int) -> str | None:
    """argo-rollouts' assessment after a measurement; ``None`` while the metric runs on."""
    phase = None
    if tally["Failed"] > int(metric.get("failureLimit", 0)):
        phase = "Failed"
    if tally["Inconclusive"] > int(metric.get("inconclusiveLimit", 0)):
        phase = "Inconclusive"
    if consecutive_errors > int(metric.get("consecutiveErrorLimit", 4)):
        phase = "Error"
    if phase is not None:
        return phase
    counted = tally["Successful"] + tally["Failed"] + tally["Inconclusive"]
    return "Successful" if counted >= int(metric["count"]) else None


@dataclass
class RunResult:
    scenario: str
    phase: str
    decided_min: float  # simulated minutes from the first measurement to the run's end
    first_pass_min: float | None
    decided_look: int  # the measurement (1-based) that ended the run
    first_pass_look: int | None
    verdicts: list[str]
    answer_ms: list[float] = field(default_factory=list)  # real time of each measurement


def analysis_run(
    base_url: str, metric: dict[str, Any], compression: float, scenario: str
) -> RunResult:
    interval = _seconds(metric["interval"])
    tally: Counter[str] = Counter()
    errors = 0
    verdicts: list[str] = []
    first_pass = None
    first_pass_look = None
    started = time.monotonic()
    with httpx.Client() as http:
        answer_ms: list[float] = []
        while True:
            asked = time.monotonic()
            phase, result = measure(http, base_url, metric)
            finished = time.monotonic()
            answer_ms.append((finished - asked) * 1000)
            tally[phase] += 1
            errors = errors + 1 if phase == "Error" else 0
            verdicts.append(str(result))
            elapsed_min = (finished - started) * compression / 60
            if phase == "Successful" and first_pass is None:
                first_pass, first_pass_look = elapsed_min, len(verdicts)
            outcome = assess(metric, tally, errors)
            if outcome is not None:
                return RunResult(
                    scenario,
                    outcome,
                    elapsed_min,
                    first_pass,
                    len(verdicts),
                    first_pass_look,
                    verdicts,
                    answer_ms,
                )
            wait = ERROR_RETRY_SECONDS / compression if phase == "Error" else interval
            time.sleep(max(0.0, finished + wait - time.monotonic()))


# --- the bench ----------------------------------------------------------------------------------


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_bench(
    *,
    runs: int,
    compression: float,
    db_url: str,
    counter_naming: str = "classic",
    seed: int = 12,
) -> list[RunResult]:
    """``runs`` healthy and ``runs`` bad AnalysisRuns at once (starts spread over an interval).

    ``counter_naming`` "mixed": the even runs' revisions export the classic counter name, the
    odd runs' the ``_total`` one (both namings judged in one Prometheus, as in a cluster that
    is midway through a Knative upgrade)."""
    interval = f"{60 / compression:g}s"
    jobs: list[tuple[str, dict[str, Any]]] = []
    plans: list[RevisionPlan] = []
    total_named: set[str] = set()
    for i in range(runs):
        for scenario, behaviour in SCENARIOS.items():
            stable, canary = f"s{seed}-{scenario}-{i}-stable", f"s{seed}-{scenario}-{i}-canary"
            if counter_naming == "total" or (counter_naming == "mixed" and i % 2):
                total_named |= {stable, canary}
            plans.append((stable, STABLE, STABLE_RPS, seed * 100_003 + 4 * i))
            plans.append((canary, behaviour, CANARY_RPS, seed * 100_003 + 4 * i + 1))
            args = {
                "namespace": NAMESPACE,
                "model": MODEL,
                "rollout": f"s{seed}-{scenario}-{i}",
                "canary-hash": canary,
                "stable-hash": stable,
                "weight": "10",
                "interval": interval,
            }
            jobs.append((scenario, template_metric(args)))
    port = _free_port()
    exporter = multiprocessing.get_context("spawn").Process(
        target=serve_exporter,
        args=(plans, compression, frozenset(total_named), port),
        daemon=True,
    )
    exporter.start()
    with tempfile.TemporaryDirectory(prefix="argo-bench-") as tmp:
        process, prometheus_url = start_prometheus(f"127.0.0.1:{port}", Path(tmp))
        service = Service(db_url, prometheus_url, cache_seconds=min(1.0, 30 / compression))
        try:
            time.sleep(2.5)  # a few scrapes: every series exists before the first measurement
            rng = np.random.default_rng(seed)
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                futures = []
                for scenario, metric in jobs:
                    # Rollouts do not all start in the same second: spread over one interval.
                    delay = float(rng.uniform(0, 60 / compression))
                    futures.append(
                        pool.submit(_delayed, delay, service.url, metric, compression, scenario)
                    )
                results = [f.result() for f in futures]
        finally:
            service.close()
            process.terminate()
            process.wait(timeout=10)
            exporter.terminate()
            exporter.join(timeout=10)
    return results


def _delayed(
    delay: float, url: str, metric: dict[str, Any], compression: float, scenario: str
) -> RunResult:
    time.sleep(delay)
    return analysis_run(url, metric, compression, scenario)


def summarize(
    results: list[RunResult], *, runs: int, compression: float, wall: float, naming: str
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs_per_scenario": runs,
        "compression": compression,
        "counter_naming": naming,
        "wall_seconds": round(wall, 1),
        "scenarios": {},
        "error_reasons": dict(ERROR_REASONS.most_common(8)),
    }
    answers = [ms for r in results for ms in r.answer_ms]
    if answers:
        out["answer_ms"] = {
            "p50": round(float(np.percentile(answers, 50)), 1),
            "p99": round(float(np.percentile(answers, 99)), 1),
            "max": round(max(answers), 1),
        }
    for scenario in SCENARIOS:
        mine = [r for r in results if r.scenario == scenario]
        phases = Counter(r.phase for r in mine)
        goal = "Successful" if scenario == "healthy" else "Failed"
        lo, hi = wilson(phases[goal], len(mine))
        decided = [r.decided_min for r in mine if r.phase == goal]
        passes = [r.first_pass_min for r in mine if r.first_pass_min is not None]
        looks = [r.decided_look for r in mine if r.phase == goal]
        pass_looks = [r.first_pass_look for r in mine if r.first_pass_look is not None]
        out["scenarios"][scenario] = {
            "phases": dict(phases),
            "goal": goal,
            "rate": phases[goal] / max(len(mine), 1),
            "wilson95": [round(lo, 4), round(hi, 4)],
            "decision_min_median": round(statistics.median(decided), 2) if decided else None,
            "decision_min_p95": round(float(np.percentile(decided, 95)), 2) if decided else None,
            "first_pass_min_median": round(statistics.median(passes), 2) if passes else None,
            "decision_look_median": statistics.median(looks) if looks else None,
            "decision_look_max": max(looks) if looks else None,
            "first_pass_look_median": statistics.median(pass_looks) if pass_looks else None,
            "verdicts_example": mine[0].verdicts if mine else [],
        }
    return out


def scratch_postgres() -> tuple[str, Any]:
    """A migrated scratch database on the test server (``CANARY_ANALYZER_TEST_DATABASE_URL``)."""
    from alembic import command

    from analyzer.db import alembic_config
    from tests import pg

    server = pg.maintenance_url()
    name = f"ca_bench_{uuid.uuid4().hex[:10]}"
    url = pg.create_database(server, name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(url), "head")
    return url, lambda: pg.drop_database(server, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per scenario (healthy, bad)")
    parser.add_argument("--compression", type=float, default=30.0)
    parser.add_argument(
        "--counter-naming", choices=["classic", "total", "mixed"], default="classic"
    )
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--batches", type=int, default=1, help="run --runs per batch this often")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    url, drop = scratch_postgres()
    all_results: list[RunResult] = []
    wall = 0.0
    try:
        for batch in range(args.batches):
            started = time.monotonic()
            all_results += run_bench(
                runs=args.runs,
                compression=args.compression,
                db_url=url,
                counter_naming=args.counter_naming,
                seed=args.seed + batch,
            )
            wall += time.monotonic() - started
    finally:
        drop()
    results = summarize(
        all_results,
        runs=args.runs * args.batches,
        compression=args.compression,
        wall=wall,
        naming=args.counter_naming,
    )
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
