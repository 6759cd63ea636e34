"""Driven rollouts at scale: how late the rollout engine's looks run, and what a tick costs.

Real: the ``RolloutEngine`` and its ``TickScheduler`` (1 s), PostgreSQL (``--database-url``, a
scratch database: its ``rollouts`` and ledger tables are emptied), the ledger with its hash
chain, the in-memory traffic target (its read before every look). Stubbed: the look itself.
Every look answers a canned result computed once by the real judge on the embedded synthetic
source (the ``knative`` preset: its entry in the ledger has the size of a real one), so the
bench measures the engine, not the judge (a look's own cost: bench/argo_analysisrun.py).

Scenarios:

* ``steady``: ``--rollouts`` progressing rollouts (a long 10 % step, so they wait, look after
  look) due spread evenly over one ``--interval``; the scheduler runs for ``--seconds``. Lag is
  when a look ran minus when it was due (``next_tick_at``); CPU is this process's (all its
  threads) and the PostgreSQL backends' it used, as a share of one core.
* ``drain``: all rollouts due at once; ``--replicas`` processes tick until every rollout has
  had one look. Throughput (looks/s) of one replica against two, run alternately
  ``--repeats`` times (the machine is shared and noisy: compare medians).

    .venv/bin/python bench/tick_bench.py steady --rollouts 10000 --seconds 180 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/scale_bench
    .venv/bin/python bench/tick_bench.py drain --rollouts 10000 --repeats 3 --database-url ...
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from sqlalchemy import Engine, insert, text  # noqa: E402

from analyzer.analyses.catalog import ProfileCatalog  # noqa: E402
from analyzer.analyses.looks import ThreadLooks  # noqa: E402
from analyzer.db import alembic_config, make_engine  # noqa: E402
from analyzer.domain.model import ModelRef, Tier  # noqa: E402
from analyzer.domain.rollout import Rollout, RolloutState, Step, StepPlan  # noqa: E402
from analyzer.ledger.store import Ledger  # noqa: E402
from analyzer.logging import configure_logging  # noqa: E402
from analyzer.rollouts.engine import RolloutEngine  # noqa: E402
from analyzer.rollouts.ports import AnalysisOutcome, OpenGates  # noqa: E402
from analyzer.rollouts.repository import to_row  # noqa: E402
from analyzer.rollouts.scheduler import TickScheduler  # noqa: E402
from analyzer.rollouts.tables import rollouts  # noqa: E402
from analyzer.targets.memory.target import InMemoryTarget  # noqa: E402
from analyzer.wiring import AnyRevisionSynthetic, ProfileAnalyzer  # noqa: E402

PLAN = StepPlan(
    steps=(Step(weight=10, dwell=timedelta(days=1)), Step(weight=100, dwell=timedelta(0))),
    analysis_interval=timedelta(minutes=1),
    max_bake=timedelta(days=2),
)


def canned_outcome() -> AnalysisOutcome:
    """One real look: the knative preset judged on the synthetic source at a 10 % step."""
    now = datetime.now(UTC)
    target = InMemoryTarget()
    model = ModelRef(namespace="bench", name="canned")
    target.add_model(model, stable_revision="s-1", canary_revision="c-1", weight=10)
    source = AnyRevisionSynthetic(origin=now - timedelta(hours=1), shares=target.share_of)
    looks = ThreadLooks(source)
    rollout = make_rollout(model, now - timedelta(minutes=30), now)
    try:
        analyzer = ProfileAnalyzer(ProfileCatalog(), looks)
        return analyzer.analyze(rollout, since=now - timedelta(minutes=10), now=now)
    finally:
        looks.close()


class CannedAnalyzer:
    """Answers every look with the canned outcome; records how late each look ran."""

    def __init__(self, outcome: AnalysisOutcome) -> None:
        self._outcome = outcome
        self._lock = threading.Lock()
        self.lags: list[float] = []
        self.looked: set[str] = set()

    def analyze(self, rollout: Rollout, *, since: datetime, now: datetime) -> AnalysisOutcome:
        due = rollout.next_tick_at or now
        with self._lock:
            self.lags.append((datetime.now(UTC) - due).total_seconds())
            self.looked.add(rollout.id)
        return self._outcome


def make_rollout(model: ModelRef, started: datetime, due: datetime) -> Rollout:
    return Rollout(
        id=str(uuid.uuid4()), model=model, tier=Tier.LONG_TAIL, baseline_revision="s-1",
        canary_revision="c-1", profile="knative", plan=PLAN, state=RolloutState.PROGRESSING,
        step_index=0, paused=False, initiator="bench", created_at=started, updated_at=started,
        step_started_at=started, analysis_started_at=started, next_tick_at=due,
        applied_weight=10, version=1,
    )  # fmt: skip


def model_of(i: int) -> ModelRef:
    return ModelRef(namespace=f"ns-{i % 50:02d}", name=f"model-{i:05d}")


def seed(engine: Engine, count: int, *, spread: float, revision: str = "head") -> None:
    """``count`` progressing rollouts due over the next ``spread`` seconds (0: all now), on a
    schema migrated to ``revision`` (an older one measures the code against an older schema,
    e.g. ``0016_ui_look_summaries``: the ledger's payloads pglz-compressed)."""
    now = datetime.now(UTC)
    # the ledger is append-only (triggers): a fresh schema, migrated, for every run
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    command.upgrade(alembic_config(engine.url.render_as_string(hide_password=False)), revision)
    with engine.begin() as conn:
        rows = []
        for i in range(count):
            due = now + timedelta(seconds=spread * i / count) if spread else now
            rows.append(to_row(make_rollout(model_of(i), now - timedelta(minutes=5), due)))
            if len(rows) == 1000:
                conn.execute(insert(rollouts), rows)
                rows = []
        if rows:
            conn.execute(insert(rollouts), rows)


def target_for(count: int) -> InMemoryTarget:
    target = InMemoryTarget()
    for i in range(count):
        target.add_model(model_of(i), stable_revision="s-1", canary_revision="c-1", weight=10)
    return target


def backend_cpu_seconds(engine: Engine, application: str) -> float:
    """CPU (user + system) used so far by the PostgreSQL backends of ``application``."""
    ticks = os.sysconf("SC_CLK_TCK")
    with engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"), {"a": application}
        ).scalars()
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # not on this machine, or gone
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def process_cpu() -> float:
    """User + system CPU seconds of this process, all threads (times(2))."""
    times = os.times()
    return times.user + times.system


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def steady(args: argparse.Namespace, outcome: AnalysisOutcome) -> dict[str, Any]:
    application = f"tick-bench-{os.getpid()}"
    url = with_application(args.database_url, application)
    engine = make_engine(url)
    seed(engine, args.rollouts, spread=args.interval, revision=args.schema)
    analyzer = CannedAnalyzer(outcome)
    rollout_engine = RolloutEngine(
        engine, Ledger(engine), target_for(args.rollouts), analyzer, OpenGates(),
        replica_id="bench-1",
    )  # fmt: skip
    scheduler = TickScheduler(rollout_engine, interval_seconds=1.0)
    cpu0, db0, wall0 = process_cpu(), backend_cpu_seconds(engine, application), time.time()
    scheduler.start()
    time.sleep(args.seconds)
    scheduler.shutdown()
    wall = time.time() - wall0
    cpu, db = process_cpu() - cpu0, backend_cpu_seconds(engine, application) - db0
    lags = analyzer.lags
    result = {
        "rollouts": args.rollouts, "seconds": round(wall, 1), "looks": len(lags),
        "looks_per_minute": round(len(lags) / wall * 60),
        "lag_p50_s": round(percentile(lags, 0.5), 3), "lag_p99_s": round(percentile(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "service_cpu_share_of_core": round(cpu / wall, 3),
        "database_cpu_share_of_core": round(db / wall, 3),
        "service_cpu_ms_per_look": round(1000 * cpu / max(len(lags), 1), 2),
    }  # fmt: skip
    engine.dispose()
    return result


def with_application(url: str, application: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={application}"


class TimedLedger(Ledger):
    """The ledger, timing its appends (head lock wait, inserts, head update): whether replicas
    queue on the head row shows here."""

    seconds = 0.0

    def append_many(self, conn: Any, events: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().append_many(conn, events)
        finally:
            TimedLedger.seconds += time.perf_counter() - started


def _drain_worker(
    url: str, count: int, outcome: AnalysisOutcome, replica: str, q: Any, go: Any
) -> None:
    configure_logging("warning", "console")
    application = f"tick-bench-{replica}-{os.getpid()}"
    engine = make_engine(with_application(url, application))
    analyzer = CannedAnalyzer(outcome)
    rollout_engine = RolloutEngine(
        engine, TimedLedger(engine), target_for(count), analyzer, OpenGates(), replica_id=replica,
    )  # fmt: skip
    q.put("ready")
    go.wait()
    started, cpu0 = time.monotonic(), process_cpu()
    db0 = backend_cpu_seconds(engine, application)
    while rollout_engine.tick():
        pass
    wall = time.monotonic() - started
    db = backend_cpu_seconds(engine, application) - db0  # its backends, before they close
    q.put((len(analyzer.looked), wall, process_cpu() - cpu0, db, TimedLedger.seconds))
    engine.dispose()


def drain_once(args: argparse.Namespace, outcome: AnalysisOutcome, replicas: int) -> float:
    engine = make_engine(args.database_url)
    seed(engine, args.rollouts, spread=0, revision=args.schema)
    engine.dispose()
    ctx = multiprocessing.get_context("spawn")
    # answers come back on a queue per worker; "go" is an event (on the same queue the main
    # process could read its own "go" back as a worker's answer)
    queues = [ctx.Queue() for _ in range(replicas)]
    go = ctx.Event()
    procs = [
        ctx.Process(target=_drain_worker,
                    args=(args.database_url, args.rollouts, outcome, f"bench-{i}", queues[i], go))
        for i in range(replicas)
    ]  # fmt: skip
    for p in procs:
        p.start()
    for q in queues:
        answer = q.get(timeout=300)
        assert answer == "ready", answer
    started = time.monotonic()
    go.set()
    results = [q.get(timeout=3600) for q in queues]
    wall = time.monotonic() - started
    for p in procs:
        p.join()
    looked = sum(r[0] for r in results)
    assert looked == args.rollouts, f"{looked} looks for {args.rollouts} rollouts"
    rate = looked / wall
    print(f"  {replicas} replica(s): {looked} looks in {wall:.1f} s = {rate:.0f} looks/s; per "
          f"replica looks {[r[0] for r in results]}, process CPU s "
          f"{[round(r[2], 1) for r in results]}, its PostgreSQL backends' CPU s "
          f"{[round(r[3], 1) for r in results]}, in ledger appends s "
          f"{[round(r[4], 1) for r in results]}, load {os.getloadavg()[0]:.1f}",
          flush=True)  # fmt: skip
    return rate


def drain(args: argparse.Namespace, outcome: AnalysisOutcome) -> dict[str, Any]:
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for replicas in (1, 2):
            rates[replicas].append(drain_once(args, outcome, replicas))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {
        "rollouts": args.rollouts, "one_replica_looks_per_s": [round(r) for r in rates[1]],
        "two_replicas_looks_per_s": [round(r) for r in rates[2]],
        "median_ratio": round(two / one, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("steady", "drain"))
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--schema",
        default="head",
        help="migrate the scratch database to this Alembic revision (default: head)",
    )
    args = parser.parse_args()
    configure_logging("warning", "console")
    outcome = canned_outcome()
    size = len(json.dumps(outcome.result.to_json()))
    print(f"canned look: {outcome.result.verdict.value}, result JSON {size} bytes")
    result = steady(args, outcome) if args.scenario == "steady" else drain(args, outcome)
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
