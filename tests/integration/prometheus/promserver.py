"""A real Prometheus for tests and benchmarks: backfilled from the synthetic generator.

The same seeded generator feeds ``SyntheticSource``, so a window aligned to the scrape interval
must give *identical* observations from Prometheus (exact mode) and from the synthetic source.

promtool gotchas handled here (see shared research, environment.md §1): OpenMetrics timestamps
are in **seconds**, the file must end with ``# EOF``, samples of one series must be in time order
(out-of-order ones are silently dropped), blocks are cut at 2 h boundaries, and the retention
(``30d`` here) is measured from the newest block, so a short one would delete backfilled data.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

from analyzer.metrics.synthetic.generator import (
    DEFAULT_BUCKETS_MS,
    RevisionBehaviour,
    bucket_probabilities,
    events_per_tick,
    multinomial_per_tick,
    paired_probabilities,
    samples_per_step,
    traffic,
)

NAMESPACE = "models"
MODEL = "fraud"
CATEGORIES = ("approve", "review", "decline")


@dataclass(frozen=True, kw_only=True)
class Special:
    """Ways a revision's series are broken on purpose."""

    buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS
    drop_inf: bool = False  # a partial histogram without le="+Inf"
    reset_at_tick: int | None = None  # a pod restart: every counter restarts from zero
    stop_before_end_ticks: int = 0  # series stop early: stale data
    # Single series, by a fragment of their labels and a tick: those that go away at the tick
    # while the revision's others go on (a pod scaled down), and those first scraped at it (a
    # new pod; a 5xx counter that appears with the first error), with no zero sample at birth.
    vanish: tuple[str, int] | None = None
    born: tuple[str, int] | None = None


@dataclass(frozen=True, kw_only=True)
class Scenario:
    seed: int
    origin: datetime
    ticks: int
    tick_seconds: float
    request_rate: float
    revisions: Mapping[str, RevisionBehaviour]
    specials: Mapping[str, Special] = field(default_factory=dict)
    # How the Knative request counter is named: "classic" (`revision_app_request_count`, what
    # the OpenCensus exporter writes, typed unknown) or "total" (`..._total`, a typed OpenMetrics
    # counter: what Prometheus 3, OpenMetrics ingestion and OpenTelemetry exporters store).
    counter_naming: str = "classic"

    @property
    def end(self) -> datetime:
        return self.origin + timedelta(seconds=self.ticks * self.tick_seconds)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def _cumulative(per_tick: np.ndarray, special: Special) -> np.ndarray:
    """Counter values at the end of each tick (per-tick counts summed; reset if asked)."""
    values = np.cumsum(per_tick, axis=0)
    if special.reset_at_tick is not None:
        values[special.reset_at_tick :] -= values[special.reset_at_tick - 1]
    return values


def _series_lines(
    name: str, labels: str, values: np.ndarray, scenario: Scenario, special: Special
) -> Iterator[str]:
    first, last = 0, scenario.ticks - special.stop_before_end_ticks
    if special.vanish is not None and special.vanish[0] in labels:
        last = min(last, special.vanish[1])
    if special.born is not None and special.born[0] in labels:
        first = special.born[1]
    else:
        # A zero sample at the origin gives every counter a reference point, like a scrape at
        # birth.
        yield f"{name}{{{labels}}} 0 {scenario.origin.timestamp():.0f}"
    for k in range(first, last):
        ts = scenario.origin.timestamp() + (k + 1) * scenario.tick_seconds
        yield f"{name}{{{labels}}} {float(values[k]):g} {ts:.0f}"


@dataclass(frozen=True)
class _Revision:
    """One revision's generated traffic and the series writer bound to it."""

    name: str
    behaviour: RevisionBehaviour
    scenario: Scenario
    special: Special
    requests: np.ndarray

    def series(self, name: str, labels: str, per_tick: np.ndarray) -> list[str]:
        """Lines of one counter series from its per-tick increments."""
        return list(
            _series_lines(
                name, labels, _cumulative(per_tick, self.special), self.scenario, self.special
            )
        )


def _knative_families(rev: _Revision) -> dict[str, list[str]]:
    seed, labels = rev.scenario.seed, f'namespace_name="{NAMESPACE}",revision_name="{rev.name}"'
    probs = bucket_probabilities(rev.behaviour, rev.special.buckets_ms)
    per_bucket = multinomial_per_tick(seed, "latency", rev.name, rev.requests, probs)
    # Prometheus buckets are cumulative over le as well as over time.
    cumulative_le = np.cumsum(per_bucket, axis=1)
    latencies: list[str] = []
    for i, bound in enumerate(rev.special.buckets_ms):
        if not (math.isinf(bound) and rev.special.drop_inf):
            bucket = f'{labels},le="{_le(bound)}"'
            latencies += rev.series(
                "revision_app_request_latencies_bucket", bucket, cumulative_le[:, i]
            )
    errors = events_per_tick(seed, "errors", rev.name, rev.requests, rev.behaviour.error_rate)
    counts: list[str] = []
    total = rev.scenario.counter_naming == "total"
    name = "revision_app_request_count_total" if total else "revision_app_request_count"
    for cls, per_tick in (("2xx", rev.requests - errors), ("5xx", errors)):
        counts += rev.series(name, f'{labels},response_code_class="{cls}"', per_tick)
    family = "revision_app_request_count " + ("counter" if total else "unknown")
    return {"revision_app_request_latencies histogram": latencies, family: counts}


def _business_families(rev: _Revision) -> dict[str, list[str]]:
    seed, labels = (
        rev.scenario.seed,
        f'namespace="{NAMESPACE}",model="{MODEL}",revision="{rev.name}"',
    )
    fp_rate = rev.behaviour.event_rates.get("false_positives", rev.behaviour.error_rate)
    fps = events_per_tick(seed, "false_positives", rev.name, rev.requests, fp_rate)
    mix = list(rev.behaviour.decision_mix)
    per_decision = multinomial_per_tick(seed, "decisions", rev.name, rev.requests, mix)
    decisions: list[str] = []
    for i, category in enumerate(CATEGORIES):
        decisions += rev.series(
            "model_decisions_total", f'{labels},decision="{category}"', per_decision[:, i]
        )
    cpu = samples_per_step(seed, "cpu", rev.name, rev.behaviour, rev.scenario.ticks)
    gauge = list(_series_lines("model_cpu_utilisation", labels, cpu, rev.scenario, rev.special))
    return {
        "fraud_false_positives counter": rev.series("fraud_false_positives_total", labels, fps),
        "fraud_legit_transactions_labelled counter": rev.series(
            "fraud_legit_transactions_labelled_total", labels, rev.requests
        ),
        "model_decisions counter": decisions,
        "model_cpu_utilisation gauge": gauge[1:],  # a gauge has no zero sample at birth
    }


SHADOW_METRIC = "shadow_decisions"  # the paired metric's name: the generator's stream key


def _shadow_families(rev: _Revision) -> dict[str, list[str]]:
    """The shadow path's paired counter, the revision as the challenger of the scenario's first
    revision (the incumbent, whose decision mix it uses), as the synthetic source computes it."""
    incumbent = next(iter(rev.scenario.revisions.values()))
    probabilities = paired_probabilities(incumbent.decision_mix, rev.behaviour.shadow_disagreement)
    cells = multinomial_per_tick(
        rev.scenario.seed, SHADOW_METRIC, rev.name, rev.requests, probabilities
    )
    labels = f'namespace="{NAMESPACE}",model="{MODEL}",revision="{rev.name}"'
    lines: list[str] = []
    k = len(CATEGORIES)
    for i, inc in enumerate(CATEGORIES):
        for j, chal in enumerate(CATEGORIES):
            pair = f'{labels},incumbent="{inc}",challenger="{chal}"'
            lines += rev.series("model_shadow_decisions_total", pair, cells[:, i * k + j])
    return {"model_shadow_decisions counter": lines}


def _revision_families(
    revision: str, behaviour: RevisionBehaviour, scenario: Scenario
) -> dict[str, list[str]]:
    requests = traffic(
        scenario.seed,
        revision,
        behaviour,
        ticks=scenario.ticks,
        tick=scenario.tick_seconds,
        rate=scenario.request_rate,
    )
    special = scenario.specials.get(revision, Special())
    rev = _Revision(revision, behaviour, scenario, special, requests)
    return {**_knative_families(rev), **_business_families(rev), **_shadow_families(rev)}


def write_openmetrics(path: Path, scenario: Scenario) -> int:
    """Write every revision's series as OpenMetrics; return the number of sample lines."""
    families: dict[str, list[str]] = {}
    for revision, behaviour in scenario.revisions.items():
        for family, lines in _revision_families(revision, behaviour, scenario).items():
            families.setdefault(family, []).extend(lines)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for family, lines in families.items():
            name, kind = family.split()
            out.write(f"# TYPE {name} {kind}\n")
            out.write("\n".join(lines) + "\n")
            count += len(lines)
        out.write("# EOF\n")
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binaries() -> tuple[str, str] | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        return None
    return prometheus, promtool


def backfill(promtool: str, openmetrics: Path, data_dir: Path) -> None:
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data_dir)],
        check=True,
        capture_output=True,
        timeout=120,
    )


@dataclass
class RunningPrometheus:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start(
    prometheus: str, data_dir: Path, workdir: Path, *, ready_timeout: float = 20.0
) -> RunningPrometheus:
    """Start Prometheus on 127.0.0.1 and a free port over ``data_dir``; wait for ``/-/ready``."""
    config = workdir / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s, evaluation_interval: 15s}\n")
    port = free_port()
    log = workdir / f"prometheus-{port}.log"
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
            "--query.lookback-delta=5m",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ},
    )
    running = RunningPrometheus(process=process, url=f"http://127.0.0.1:{port}", log=log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"prometheus exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            if httpx.get(f"{running.url}/-/ready", timeout=0.5).status_code == 200:
                return running
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    running.stop()
    raise RuntimeError(f"prometheus not ready after {ready_timeout} s: {log.read_text()[-2000:]}")


def aligned_end(tick_seconds: float, *, before_now: float = 60.0) -> datetime:
    now = time.time() - before_now
    return datetime.fromtimestamp(now - now % tick_seconds, tz=UTC)
