"""What the hop to a look worker costs: ``ProcessPoolExecutor`` (as ``ProcessLooks`` ran before
branch ``leanipc``) against ``WorkerPool`` (a pipe per worker, the caller's thread waiting on it).

Both hops carry the same messages: a real ``LookInput`` of the 3-metric test profile out, and a
real ``LookOutcome`` back. ``--job canned`` answers with an outcome computed once at the worker's
start (the hop and the pickling, nothing else); ``--job synthetic`` runs the look on the
synthetic source in the worker (fetches on the worker's thread pool, the judge), as a cheap
real look, and also in this process's threads (``ThreadLooks``, no hop) as a third variant.
``--callers`` threads call at once, each sequentially (``--callers 2`` with 2 workers keeps
both busy). Variants alternate ``--rounds`` times; each round times ``--calls``
calls. CPU from ``/proc``: the API process (all its threads) and the workers, per call; wall
p50/p99 of a call.

    .venv/bin/python bench/look_hop.py [--calls 2000] [--rounds 3] [--job canned|synthetic]
        [--callers 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzer.analyses.looks import (  # noqa: E402
    LookInput,
    LookOutcome,
    ProcessLooks,
    ThreadLooks,
    _fetch_executor,
    _look_handler,
)
from analyzer.analysis import check_inputs  # noqa: E402
from analyzer.domain.model import ModelRef  # noqa: E402
from analyzer.judge import JudgeState  # noqa: E402
from analyzer.metrics.base import MetricSource, TimeWindow  # noqa: E402
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource  # noqa: E402
from analyzer.profiles import parse_profile  # noqa: E402

ORIGIN = datetime(2026, 11, 27, tzinfo=UTC)
LOADED = parse_profile(
    "name: t\nmetrics:\n  - use: knative/latency\n  - use: knative/errors\n"
    "  - use: business/decisions\n"
)
TICKS = os.sysconf("SC_CLK_TCK")


def the_look() -> LookInput:
    return LookInput(
        profile=LOADED.profile,
        queries=LOADED.queries,
        model=ModelRef(namespace="models", name="fraud"),
        baseline="base",
        canary="same",
        window=TimeWindow(start=ORIGIN, end=ORIGIN + timedelta(minutes=20)),
        state=JudgeState(),
    )


def synthetic() -> MetricSource:
    behaviour = RevisionBehaviour(weight=0.5)
    return SyntheticSource(
        seed=11,
        origin=ORIGIN,
        request_rate=40.0,
        revisions={"base": behaviour, "same": behaviour},
    )


def canned_handler() -> Callable[[LookInput], LookOutcome]:
    """Answers every look with the outcome of one look run at start-up: the hop alone."""
    outcome = _look_handler(synthetic, True)(the_look())
    return lambda _look: outcome


def handler(job: str) -> Callable[[LookInput], LookOutcome]:
    return canned_handler() if job == "canned" else _look_handler(synthetic, True)


# --- the executor hop, as ProcessLooks ran it before (its run() and its worker's globals) ---

_handler: Callable[[LookInput], LookOutcome] | None = None


def _start_executor_worker(job: str) -> None:
    global _handler  # noqa: PLW0603 -- one handler per worker process, as before
    _handler = handler(job)
    _fetch_executor(True, 16, "fetch")  # as before: the worker's fetch pool built at start


def _look_in_executor_worker(look: LookInput) -> LookOutcome:
    assert _handler is not None
    return _handler(look)


class ExecutorHop:
    def __init__(self, job: str, processes: int) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_executor_worker,
            initargs=(job,),
        )
        ready = [self._pool.submit(os.getpid) for _ in range(processes)]
        for future in ready:
            future.result()

    @property
    def pids(self) -> list[int]:  # it spawns workers on demand: read them at each round
        return list(self._pool._processes)

    def run(self, look: LookInput) -> LookOutcome:
        check_inputs(look.profile, look.queries, look.baseline, look.canary)
        return self._pool.submit(_look_in_executor_worker, look).result(timeout=8.0)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _lean_looks(job: str, processes: int) -> ProcessLooks:
    looks = ProcessLooks(synthetic, processes=processes, warm=False)
    looks._pool._init = partial(handler, job)  # not started yet: the workers run this one
    looks.warm_up()
    return looks


class LeanHop:
    def __init__(self, job: str, processes: int) -> None:
        self._looks = _lean_looks(job, processes)
        self.pids = self._looks.worker_pids()

    def run(self, look: LookInput) -> LookOutcome:
        return self._looks.run(look)

    def close(self) -> None:
        self._looks.close()


class ThreadHop:
    """``ThreadLooks`` in this process: what the look costs without a process hop."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self._looks = ThreadLooks(synthetic())

    def run(self, look: LookInput) -> LookOutcome:
        return self._looks.run(look)

    def close(self) -> None:
        self._looks.close()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def one_round(hop: Any, calls: int, callers: int) -> dict[str, float]:
    look = the_look()
    for _ in range(50):  # warm
        hop.run(look)
    walls: list[float] = []
    per_caller = calls // callers

    def caller() -> None:
        mine: list[float] = []
        for _ in range(per_caller):
            started = time.perf_counter()
            hop.run(look)
            mine.append(time.perf_counter() - started)
        walls.extend(mine)

    workers_before = sum(proc_cpu(pid) for pid in hop.pids)
    api_before = time.process_time()
    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    api = time.process_time() - api_before
    workers = sum(proc_cpu(pid) for pid in hop.pids) - workers_before
    walls.sort()
    done = len(walls)
    return {
        "api_ms": api * 1000 / done,
        "workers_ms": workers * 1000 / done,
        "p50_ms": walls[done // 2] * 1000,
        "p99_ms": walls[int(done * 0.99)] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--job", choices=["canned", "synthetic"], default="canned")
    parser.add_argument("--callers", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    hops: dict[str, Any] = {
        "executor": ExecutorHop(args.job, args.processes),
        "lean": LeanHop(args.job, args.processes),
    }
    if args.job == "synthetic":  # the same look with no hop at all
        hops["threads"] = ThreadHop()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in hops}
    try:
        for round_ in range(args.rounds):
            for name, hop in hops.items():
                row = one_round(hop, args.calls, args.callers)
                results[name].append(row)
                print(f"round {round_ + 1} {name:8}", {k: round(v, 3) for k, v in row.items()})
    finally:
        for hop in hops.values():
            hop.close()
    print(f"medians over {args.rounds} rounds ({args.job}, {args.callers} caller(s)):")
    for name, rows in results.items():
        med = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
        print(f"  {name:8}", med, "service CPU/call", round(med["api_ms"] + med["workers_ms"], 3))


if __name__ == "__main__":
    main()
