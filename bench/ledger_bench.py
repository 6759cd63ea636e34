"""Ledger benchmark on PostgreSQL: append throughput and "serving at T" query latency.

    python bench/ledger_bench.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --entries 1000000 10000000 [--seed 7]

Creates a scratch database per size (migrated by Alembic), fills it through the real
``Ledger.append_many`` (hash chain and all) with a realistic mix of events over many models,
then measures:

* single appends, one transaction each, from 1 and from 4 processes (the driver's shape);
* batched appends (100 events per transaction, the shape of a tick that records several facts);
* independent appends through group commit (``BatchingRecorder``: each caller waits for its own
  entry's commit; concurrent callers share one transaction), 1 process × 32 threads and
  4 processes × 16 threads;
* ``serving_at(model, T)`` for random models and instants: p50/p99 over 2,000 queries.

Prints a Markdown table row per measurement; results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from analyzer.db import alembic_config, make_engine
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.ledger.group_commit import BatchingRecorder
from analyzer.ledger.store import Ledger

MODELS = [
    ModelRef(namespace=f"tenant-{i % 20}", name=f"merchant-model-{i:04d}") for i in range(1000)
]
START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """Simulated time: every read advances 50 ms, so 10 M entries span ~6 days."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=50)
        return self.now


def event(rng: random.Random, i: int) -> LedgerEvent:
    model = MODELS[rng.randrange(len(MODELS))]
    roll = rng.random()
    if roll < 0.25:
        weight = rng.choice((0, 10, 25, 50, 100))
        split = [{"revision": f"{model.name}-{i % 7}", "weight": 100 - weight},
                 {"revision": f"{model.name}-{i % 7 + 1}", "weight": weight}]  # fmt: skip
        return LedgerEvent(type=EventType.TRAFFIC_CHANGED, actor="bench", model=model,
                           rollout_id=f"r-{i // 50}", data={"split": split, "step": 1})  # fmt: skip
    data = {"verdict": "pass", "score": 100.0, "metrics": [{"name": "latency", "e": 1.2}]}
    return LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor="bench", model=model,
                       rollout_id=f"r-{i // 50}", data=data)  # fmt: skip


def fill(url: str, entries: int, seed: int) -> float:
    engine = make_engine(url)
    ledger = Ledger(engine, clock=Clock())
    rng = random.Random(seed)
    batch = 5000
    t0 = time.perf_counter()
    for start in range(0, entries, batch):
        with engine.begin() as conn:
            ledger.append_many(
                conn, [event(rng, start + k) for k in range(min(batch, entries - start))]
            )
    elapsed = time.perf_counter() - t0
    with engine.begin() as conn:
        conn.execute(text("ANALYZE ledger_entries"))
    engine.dispose()
    return entries / elapsed


def _single_appends(url: str, count: int, seed: int) -> None:
    engine = make_engine(url)
    ledger = Ledger(engine)
    rng = random.Random(seed)
    for i in range(count):
        ledger.record(event(rng, i))
    engine.dispose()


def single_throughput(url: str, processes: int, per_process: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_single_appends, args=(url, per_process, p)) for p in range(processes)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return processes * per_process / (time.perf_counter() - t0)


def _group_commit_appends(url: str, threads: int, per_thread: int, seed: int) -> None:
    engine = make_engine(url, pool_size=2)
    recorder = BatchingRecorder(Ledger(engine))
    rng = random.Random(seed)
    events = [[event(rng, t * per_thread + i) for i in range(per_thread)] for t in range(threads)]

    def run(batch: list[LedgerEvent]) -> None:
        for e in batch:
            recorder.record(e)  # returns once this entry is committed

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(run, events))
    recorder.close()
    engine.dispose()


def group_commit_throughput(url: str, processes: int, threads: int, per_thread: int) -> float:
    """Independent appends (each caller waits for its own commit) through group commit."""
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_group_commit_appends, args=(url, threads, per_thread, p))
        for p in range(processes)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return processes * threads * per_thread / (time.perf_counter() - t0)


def batched_throughput(url: str, batches: int, size: int) -> float:
    engine = make_engine(url)
    ledger = Ledger(engine)
    rng = random.Random(1)
    t0 = time.perf_counter()
    for b in range(batches):
        with engine.begin() as conn:
            ledger.append_many(conn, [event(rng, b * size + k) for k in range(size)])
    engine.dispose()
    return batches * size / (time.perf_counter() - t0)


def serving_latency(url: str, queries: int, seed: int) -> tuple[float, float]:
    engine = make_engine(url)
    ledger = Ledger(engine)
    with engine.connect() as conn:
        end = conn.execute(text("SELECT max(recorded_at) FROM ledger_entries")).scalar_one()
    span = (end - START).total_seconds()
    rng = random.Random(seed)
    timings = []
    for _ in range(queries):
        model = MODELS[rng.randrange(len(MODELS))]
        at = START + timedelta(seconds=rng.uniform(0, span))
        t0 = time.perf_counter()
        ledger.serving_at(model, at)
        timings.append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    timings.sort()
    return statistics.median(timings), timings[int(0.99 * len(timings)) - 1]


def scratch(admin_url: str, name: str) -> str:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(url), "head")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    print(
        "| entries | fill (batched 5000/tx) | single append, 1 proc | single append, 4 procs "
        "| batched 100/tx | group commit, 1 proc × 32 threads | group commit, 4 procs × 16 threads "
        "| serving_at p50 | serving_at p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for entries in args.entries:
        name = f"ca_bench_ledger_{entries}"
        url = scratch(args.url, name)
        filled = fill(url, entries, args.seed)
        one = single_throughput(url, 1, 2000)
        four = single_throughput(url, 4, 1000)
        batched = batched_throughput(url, 50, 100)
        grouped = group_commit_throughput(url, 1, 32, 200)
        grouped4 = group_commit_throughput(url, 4, 16, 100)
        p50, p99 = serving_latency(url, 2000, args.seed)
        print(
            f"| {entries:,} | {filled:,.0f}/s | {one:,.0f}/s | {four:,.0f}/s | {batched:,.0f}/s "
            f"| {grouped:,.0f}/s | {grouped4:,.0f}/s | {p50:.2f} ms | {p99:.2f} ms |",
            flush=True,
        )
        if not args.keep:
            admin = make_engine(args.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
