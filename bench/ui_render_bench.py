"""Rollout page render time with a 1 M-entry ledger and a rollout of 500 looks (issue 14).

    python bench/ui_render_bench.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        [--entries 1000000] [--looks 500] [--requests 200] [--keep] [--reuse]

Fills a scratch database (migrated by Alembic) through the real ``Ledger.append_many`` with
``--entries`` background entries over 1,000 other models, and interleaves one rollout's
looks among them (one ``analysis_recorded`` entry every ``entries / looks`` background
entries, each holding a real judge result of four metrics, ~5 kB; a gate check every 25 looks;
traffic changes at 10/25/50/100 %), so the rollout's entries are spread over the whole ledger
as a long bake would leave them. Then serves the app (``create_app``, uvicorn on 127.0.0.1,
the pages' static auditor token) and measures, sequentially over HTTP:

* ``fresh``: the first request of the rollout page after the server started (nothing warm in
  this process: templates compiled on first use, connection pool empty);
* ``warm``: ``--requests`` further requests of the same page: p50, p90, p99, max;
* ``nothing cached``: the same with the per-entry looks cache and the looks' charts cache
  emptied before each request (the server runs in this process) — the page of a rollout nobody
  opened since the process started, drawn from what the database keeps of its looks
  (``ui_look_summaries``, ``ui_look_charts``: docs/ui.md, *Speed*);
* ``new look``: the same with the last look's kept row and the kept charts removed — the
  page of a running rollout first viewed after its newest look (one payload decoded, the
  looks' charts drawn again and kept);
* ``first view``: the same with those two tables emptied too, i.e. every look's payload read
  and decoded and every chart drawn — the page of a rollout nobody ever opened;
* the analysis entry page of the last look, and the evidence pack (HTML) of the rollout.

The CPU columns: this process's CPU time per request (server and client; median), the client
thread's share of it (httpx), and the
PostgreSQL backends' of the scratch database (from /proc, so the server must run on this
machine; mean per request, the kernel counts in 10 ms ticks). Prints Markdown rows; results
and the command go to docs/benchmarks.md. The machine is shared
and noisy: report medians and repeat (``--reuse`` keeps and reuses the filled database).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from alembic import command
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import make_url

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.api.app import create_app
from analyzer.api.auth import Authenticator
from analyzer.api.flagger import PolicyGateEvaluator
from analyzer.api.server import freeze_startup_objects
from analyzer.api.ui.pictures import LOOK_CHARTS, LOOKS
from analyzer.config import (
    ApiSettings,
    RateLimitSettings,
    Settings,
    StaticTokenSettings,
)
from analyzer.db import alembic_config, make_engine
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import Step, StepPlan
from analyzer.judge.io import judge_document
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget
from gates.policy import GatePolicyConfig

START = datetime(2026, 1, 1, tzinfo=UTC)
TOKEN = "ui-bench-auditor-token-0123456789abcdef"
MODEL = ModelRef(namespace="risk-prod", name="bench-scorer")
OTHERS = [ModelRef(namespace=f"tenant-{i % 20}", name=f"merchant-{i:04d}") for i in range(1000)]
WEIGHTS = (10, 25, 50, 100)


class Clock:
    """Simulated time: every read advances 50 ms (1 M entries span ~14 hours)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=50)
        return self.now


def background(rng: random.Random, i: int) -> LedgerEvent:
    model = OTHERS[rng.randrange(len(OTHERS))]
    if rng.random() < 0.25:
        weight = rng.choice((0, 10, 25, 50, 100))
        split = [{"revision": f"{model.name}-{i % 7}", "weight": 100 - weight},
                 {"revision": f"{model.name}-{i % 7 + 1}", "weight": weight}]  # fmt: skip
        return LedgerEvent(type=EventType.TRAFFIC_CHANGED, actor="bench", model=model,
                           rollout_id=f"r-{i // 50}", data={"split": split, "step": 1})  # fmt: skip
    data = {"result": {"verdict": "pass", "score": 100.0, "metrics": [{"name": "latency"}]}}
    return LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor="bench", model=model,
                       rollout_id=f"r-{i // 50}", data=data)  # fmt: skip


def judged(look: int, rng: random.Random) -> dict[str, Any]:
    """A real judge result of four metrics for the look (counts grow with the look)."""
    k = look + 1
    return judge_document({
        "alpha": 0.05,
        "metrics": [
            {"name": "error_rate", "kind": "proportion", "tolerance": 0.001, "critical": True,
             "baseline": {"events": 40 * k + rng.randrange(20), "total": 9000 * k},
             "canary": {"events": 4 * k + rng.randrange(5), "total": 1000 * k}},
            {"name": "latency", "kind": "histogram", "tolerance": 0.1,
             "bounds": [5, 10, 20, 50, 100, "+Inf"],
             "baseline": [100 * k, 500 * k, 200 * k, 50 * k, 10 * k, k],
             "canary": [11 * k, 52 * k, 21 * k, 6 * k, k, 0]},
            {"name": "decisions", "kind": "categorical",
             "categories": ["approve", "review", "decline"],
             "baseline": [800 * k, 150 * k, 50 * k], "canary": [79 * k, 16 * k, 5 * k]},
            {"name": "fpr", "kind": "proportion", "tolerance": 0.002,
             "baseline": {"events": 90 * k, "total": 9000 * k},
             "canary": {"events": 10 * k, "total": 1000 * k}},
        ],
    })  # fmt: skip


def rollout_event(rollout_id: str, kind: EventType, **data: Any) -> LedgerEvent:
    return LedgerEvent(type=kind, actor="canary-analyzer/bench", model=MODEL,
                       rollout_id=rollout_id, revision="bench-00002", data=data)  # fmt: skip


def look_events(rollout_id: str, look: int, looks: int, rng: random.Random) -> list[LedgerEvent]:
    step = min(look * len(WEIGHTS) // looks, len(WEIGHTS) - 1)
    events = [rollout_event(rollout_id, EventType.ANALYSIS_RECORDED, step=step,
                            weight=WEIGHTS[step], result=judged(look, rng))]  # fmt: skip
    if look % 25 == 0:
        gate = rollout_event(rollout_id, EventType.GATE_CHECKED, target_step=step, open=True,
                             reason="gates open", evidence={"decisions": []})  # fmt: skip
        events.append(gate)
    if look * len(WEIGHTS) % looks == 0:
        weight = WEIGHTS[step]
        split = [{"revision": "bench-00001", "weight": 100 - weight},
                 {"revision": "bench-00002", "weight": weight}]  # fmt: skip
        events.append(rollout_event(rollout_id, EventType.TRAFFIC_CHANGED, split=split, step=step,
                                    canary_weight=weight, cause=f"step {step}",
                                    source="confirmed"))  # fmt: skip
    return events


def database(admin_url: str, name: str, *, reuse: bool) -> tuple[str, bool]:
    """The scratch database's URL, and whether it must be filled."""
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        present = exists.first() is not None
        if present and not reuse:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        if not present or not reuse:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(url), "head")  # a reused database may predate a migration
    return url, not (present and reuse)


def fill(url: str, entries: int, looks: int, seed: int) -> str:
    """Background entries with one rollout's looks among them; the rollout's id."""
    engine = make_engine(url)
    clock = Clock()
    ledger = Ledger(engine, clock=clock)
    target = InMemoryTarget()
    target.add_model(MODEL, stable_revision="bench-00001", canary_revision="bench-00002")
    service = RolloutService(engine, ledger, target, clock=clock)
    plan = StepPlan(
        steps=tuple(Step(weight=w, dwell=timedelta(hours=3)) for w in WEIGHTS),
        analysis_interval=timedelta(minutes=1),
        max_bake=timedelta(hours=24),
    )
    rollout = service.start(
        StartRollout(model=MODEL, tier=Tier.REGULATED, baseline_revision="bench-00001",
                     canary_revision="bench-00002", profile="fraud", plan=plan,
                     change_request="CHG0042000"),
        Actor(subject="alice", roles=frozenset({"operator"})),
    )  # fmt: skip
    rng = random.Random(seed)
    every = max(entries // looks, 1)
    look = 0
    t0 = time.perf_counter()
    batch: list[LedgerEvent] = []
    for i in range(entries):
        batch.append(background(rng, i))
        if (i + 1) % every == 0 and look < looks:
            batch.extend(look_events(rollout.id, look, looks, rng))
            look += 1
        if len(batch) >= 5000:
            with engine.begin() as conn:
                ledger.append_many(conn, batch)
            batch = []
    while look < looks:
        batch.extend(look_events(rollout.id, look, looks, rng))
        look += 1
    if batch:
        with engine.begin() as conn:
            ledger.append_many(conn, batch)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(f"filled {entries:,} entries and {looks} looks in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)  # fmt: skip
    engine.dispose()
    return rollout.id


class Server:
    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(url: str) -> tuple[Server, Any]:
    engine = make_engine(url)
    last = Ledger(engine).head()
    with engine.connect() as conn:
        newest = conn.execute(text("SELECT max(recorded_at) FROM ledger_entries")).scalar_one()
    now = newest + timedelta(minutes=1)
    ledger = Ledger(engine, clock=lambda: now)
    fast = RateLimitSettings(per_second=10_000, burst=10_000)
    token = StaticTokenSettings(subject="auditor-bench", roles=("auditor",), token=TOKEN)
    settings = Settings(api=ApiSettings(static_tokens=(token,), rate_limit_audit=fast,
                                        rate_limit_analysis=fast))  # fmt: skip

    class NoAnalyses:
        def close(self) -> None:
            return None

    app = create_app(
        settings, engine=engine, ledger=ledger,
        rollouts=RolloutService(engine, ledger, InMemoryTarget(), clock=lambda: now),
        analyses=NoAnalyses(),  # type: ignore[arg-type]
        gate_evaluator=PolicyGateEvaluator(GatePolicyConfig(), {}),
        profiles=ProfileCatalog(None),
        authenticator=Authenticator.from_settings(settings.api, clock=time.monotonic),
        registry=CollectorRegistry(), clock=lambda: now, monotonic=time.monotonic,
    )  # fmt: skip
    print(f"ledger head #{last[0]:,}", file=sys.stderr)
    freeze_startup_objects()  # as `canary-analyzer serve` does once the app is built
    return Server(app), engine


CPU: dict[str, list[float]] = {}  # label -> CPU ms of this process per request
CLIENT_CPU: dict[str, list[float]] = {}  # label -> of it, the client thread's (httpx)


class PostgresCpu:
    """CPU time of the PostgreSQL backends serving one database, from /proc (ms)."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.engine = make_engine(admin_url)
        self.name = name
        self.tick_ms = 1000 / os.sysconf("SC_CLK_TCK")

    def __call__(self) -> float:
        with self.engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": self.name}
            ).scalars()
            total = 0
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                except OSError:  # exited, or the server runs elsewhere
                    continue
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total * self.tick_ms


def timed(client: httpx.Client, url: str, label: str = "") -> tuple[float, int, int]:
    """Wall ms of one request, the page's size and its charts; the CPU time this process spent
    meanwhile (server and client: the server runs here) goes to ``CPU[label]``. On a shared,
    loaded machine the CPU time says what a page costs, the wall time what a user waited."""
    cpu0, client0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    response = client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    charts = response.text.count("<svg")
    elapsed = (time.perf_counter() - t0) * 1000
    CPU.setdefault(label, []).append((time.process_time() - cpu0) * 1000)
    CLIENT_CPU.setdefault(label, []).append((time.thread_time() - client0) * 1000)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
    return elapsed, len(response.content), charts


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--looks", type=int, default=500)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", default=None, help="scratch database name")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept, filled database")
    args = parser.parse_args()
    name = args.db or f"ca_ui_bench_{args.entries}_{args.looks}"
    url, empty = database(args.url, name, reuse=args.reuse)
    if empty:
        fill(url, args.entries, args.looks, args.seed)
    server, engine = serve(url)
    try:
        with engine.connect() as conn:
            rollout_id = conn.execute(
                text("SELECT id FROM rollouts WHERE model = :m"), {"m": str(MODEL)}
            ).scalar_one()
            last_look = conn.execute(
                text("SELECT max(seq) FROM ledger_entries WHERE rollout_id = :r "
                     "AND event_type = 'analysis_recorded'"), {"r": rollout_id},
            ).scalar_one()  # fmt: skip
        page = f"{server.url}/ui/rollouts/{rollout_id}"
        pg_cpu = PostgresCpu(args.url, name)
        pg: dict[str, float] = {}  # label -> PostgreSQL CPU ms per request (mean)

        def series(label: str, url: str, n: int, before: Any = None) -> list[float]:
            spent, values = pg_cpu(), []
            for _ in range(n):
                if before is not None:
                    before()
                values.append(timed(client, url, label)[0])
            pg[label] = (pg_cpu() - spent) / n
            return values

        def forget() -> None:
            LOOKS.clear()  # the server runs in this process: every look read again
            LOOK_CHARTS.clear()  # and every chart drawn (or read) again

        def never_seen() -> None:
            forget()
            with engine.begin() as conn:  # and nothing kept in the database either
                conn.execute(text("DELETE FROM ui_look_summaries"))
                conn.execute(text("DELETE FROM ui_look_charts"))

        def new_look() -> None:
            forget()
            with engine.begin() as conn:  # as after a new look: its row and the charts not kept
                conn.execute(text("DELETE FROM ui_look_summaries WHERE seq = :s"), {"s": last_look})
                conn.execute(text("DELETE FROM ui_look_charts"))

        with httpx.Client(timeout=60) as client:
            fresh, size, charts = timed(client, page, "fresh")
            warm = series("warm", page, args.requests)
            uncached = series("uncached", page, max(args.requests // 2, 10), forget)
            newest = series("new look", page, max(args.requests // 10, 10), new_look)
            first = series("first", page, max(args.requests // 10, 10), never_seen)
            entry = series("entry", f"{server.url}/ui/events/{last_look}", 50)
            pack = series("pack", f"{server.url}/api/v1/rollouts/{rollout_id}/evidence-pack", 10)
        load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        print("| page | n | p50 ms | p90 ms | p99 ms | max ms | CPU ms p50 | of it, client "
              f"| PostgreSQL CPU ms |  "
              f"({args.entries:,} entries, {args.looks} looks, page {size / 1024:.0f} KiB, "
              f"{charts} charts, {load})")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| rollout page, fresh (first request) | 1 | {fresh:.1f} | | | | "
              f"{CPU['fresh'][0]:.1f} | {CLIENT_CPU['fresh'][0]:.1f} | |")  # fmt: skip
        for label, key, values in (
            ("rollout page, warm", "warm", warm),
            ("rollout page, nothing cached in the process", "uncached", uncached),
            (
                "rollout page, a new look since the last view (process caches empty)",
                "new look",
                newest,
            ),
            ("rollout page, first view ever (nothing kept in the database)", "first", first),
            ("analysis entry page", "entry", entry),
            ("evidence pack (HTML)", "pack", pack),
        ):
            cpu = statistics.median(CPU[key])
            client_cpu = statistics.median(CLIENT_CPU[key])
            print(f"| {label} | {len(values)} | {statistics.median(values):.1f} | "
                  f"{quantile(values, 0.9):.1f} | {quantile(values, 0.99):.1f} | "
                  f"{max(values):.1f} | {cpu:.1f} | {client_cpu:.1f} | "
                  f"{pg[key]:.1f} |")  # fmt: skip
    finally:
        server.stop()
        engine.dispose()
        if not args.keep:
            admin = make_engine(args.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
