"""Ledger bytes per look: an hour of 1,000 driven rollouts, with compact looks and without.

Real: the ``RolloutEngine`` (batches, the compaction of repeated looks), PostgreSQL (a scratch
database: ``--database-url``; its schema is dropped and migrated), the ledger with its hash
chain, the in-memory target. Time-compressed: a manual clock moves one analysis interval (60 s)
per round, and each round ticks until nothing is due, so ``--minutes`` looks per rollout take
minutes, not an hour.

The looks are real judge results, computed once: the ``knative`` preset judged by the real
``ProfileAnalyzer`` on the embedded synthetic source at a 10 % split (A/A), one look a minute
with the judge state carried, so look k of every rollout answers what the judge answered at
minute k (counts, estimates and e-values move look to look; the verdict stays inconclusive, as
in a long step). The engine compacts them exactly as in service.

Reported per mode: the payload bytes of every ``analysis_recorded`` entry (median, p90, the
whole/compact counts), and the growth of the ``ledger_entries`` table with its indexes (bytes
per look, what the disk sees). Run:

    .venv/bin/python bench/ledger_bytes.py --rollouts 1000 --minutes 60 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/scale_bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import Engine, text  # noqa: E402
from tick_bench import make_rollout, seed, target_for  # noqa: E402

from analyzer.analyses.catalog import ProfileCatalog  # noqa: E402
from analyzer.analyses.looks import ThreadLooks  # noqa: E402
from analyzer.db import make_engine  # noqa: E402
from analyzer.domain.model import ModelRef  # noqa: E402
from analyzer.domain.rollout import Rollout  # noqa: E402
from analyzer.ledger.store import Ledger  # noqa: E402
from analyzer.logging import configure_logging  # noqa: E402
from analyzer.rollouts.engine import RolloutEngine  # noqa: E402
from analyzer.rollouts.ports import AnalysisOutcome, OpenGates  # noqa: E402
from analyzer.targets.memory.target import InMemoryTarget  # noqa: E402
from analyzer.wiring import AnyRevisionSynthetic, ProfileAnalyzer  # noqa: E402


def real_looks(minutes: int, start: datetime) -> list[AnalysisOutcome]:
    """``minutes`` successive looks of one rollout at 10 %, by the real judge."""
    target = InMemoryTarget()
    model = ModelRef(namespace="bench", name="looks")
    target.add_model(model, stable_revision="s-1", canary_revision="c-1", weight=10)
    runner = ThreadLooks(AnyRevisionSynthetic(origin=start - timedelta(hours=1),
                                              shares=target.share_of))  # fmt: skip
    analyzer = ProfileAnalyzer(ProfileCatalog(), runner)
    rollout = make_rollout(model, start, start)
    outcomes = []
    try:
        for minute in range(1, minutes + 1):
            now = start + timedelta(minutes=minute)
            outcome = analyzer.analyze(rollout, since=start, now=now)
            outcomes.append(outcome)
            rollout = replace(rollout, judge_state=outcome.judge_state)
    finally:
        runner.close()
    return outcomes


class Replay:
    """Look k of each rollout answers the k-th real look."""

    def __init__(self, outcomes: list[AnalysisOutcome]) -> None:
        self._outcomes = outcomes
        self._seen: dict[str, int] = {}

    def analyze(self, rollout: Rollout, *, since: datetime, now: datetime) -> AnalysisOutcome:
        k = self._seen.get(rollout.id, 0)
        self._seen[rollout.id] = k + 1
        return self._outcomes[min(k, len(self._outcomes) - 1)]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def table_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_total_relation_size('ledger_entries')")).scalar())


def run(args: argparse.Namespace, outcomes: list[AnalysisOutcome], compact: bool) -> dict[str, Any]:
    engine = make_engine(args.database_url)
    seed(engine, args.rollouts, spread=0)  # every rollout due at once, minute after minute
    with engine.connect() as conn:
        start = conn.execute(text("SELECT min(next_tick_at) FROM rollouts")).scalar()
    clock = Clock(start)
    rollout_engine = RolloutEngine(
        engine, Ledger(engine, clock=clock), target_for(args.rollouts), Replay(outcomes),
        OpenGates(), clock=clock, replica_id="bytes-bench", compact_looks=compact,
    )  # fmt: skip
    bytes0, wall0 = table_bytes(engine), time.monotonic()
    for _ in range(args.minutes):
        while rollout_engine.tick():
            pass
        clock.now += timedelta(minutes=1)
    wall = time.monotonic() - wall0
    grown = table_bytes(engine) - bytes0
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT octet_length(payload), payload LIKE '%\"repeats\":%' FROM ledger_entries "
                "WHERE event_type = 'analysis_recorded'"
            )
        ).all()
    engine.dispose()
    sizes = sorted(int(n) for n, _ in rows)
    compacted = [int(n) for n, is_compact in rows if is_compact]
    whole = [int(n) for n, is_compact in rows if not is_compact]
    return {
        "compact_looks": compact, "looks": len(sizes), "wall_s": round(wall, 1),
        "payload_median_bytes": statistics.median(sizes),
        "payload_p90_bytes": sizes[int(0.9 * (len(sizes) - 1))],
        "whole_looks": len(whole), "compact": len(compacted),
        "whole_median_bytes": statistics.median(whole) if whole else None,
        "compact_median_bytes": statistics.median(compacted) if compacted else None,
        "table_growth_bytes_per_look": round(grown / max(len(sizes), 1)),
        "table_growth_mb_per_hour": round(grown / 1e6 * 60 / args.minutes, 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--modes", default="compact,whole")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    configure_logging("warning", "console")
    outcomes = real_looks(args.minutes, datetime.now(UTC))
    verdicts = sorted({o.result.verdict.value for o in outcomes})
    print(f"{len(outcomes)} real looks computed (verdicts {verdicts})")
    results = []
    for mode in args.modes.split(","):
        result = run(args, outcomes, compact=mode == "compact")
        print(json.dumps(result))
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
