"""The judge's CPU per look: ``judge()`` alone, on the 5-metric bench profile, look after look.

Inputs as a fresh Argo call gets them (issue 20): the profile of ``bench/api_load.py`` (latency
histogram, error and false-positive proportions, ordered decision mix, p99 threshold), the
canary weight 50 % the Argo template sends (so the SRM guard runs), and cumulative observations
from the seeded synthetic source (one baseline, one canary, 20 requests/s each, 15 s ticks)
at ``--looks`` looks one minute apart. The state is carried from look to look through its JSON
form, as ``AnalysisService`` stores it in the session row and reads it back. Only ``judge()`` is
timed (``time.process_time``); each round runs the whole sequence of looks, and a look's CPU is
its best over ``--rounds`` rounds (plus the median over rounds of the sequence's mean).

``--against REF`` measures the judge of a git revision too, interleaved with this checkout's
(alternating child processes, ``--pairs`` of them), so both see the same machine load:

    .venv/bin/python bench/judge_cpu.py [--looks 30] [--rounds 20] [--against main] [--pairs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The code to measure: this checkout, or another revision's export (``--against``). Put first
# so that ``analyzer`` (and every submodule, through the package's path) comes from there.
CODE = Path(os.environ.get("JUDGE_CPU_CODE", ROOT))
sys.path.insert(0, str(CODE))


def inputs(looks: int) -> tuple[Any, list[dict[str, Any]]]:
    """The bench profile (canary weight 0.5) and ``looks`` cumulative observations by metric."""
    from dataclasses import replace

    from analyzer.domain.model import ModelRef
    from analyzer.metrics.base import TimeWindow
    from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
    from analyzer.profiles import parse_profile

    sys.path.insert(1, str(ROOT / "bench"))
    sys.path.insert(2, str(ROOT / "tests" / "integration" / "prometheus"))
    from api_load import PROFILE  # after analyzer: api_load puts ROOT first on sys.path

    loaded = parse_profile(PROFILE)
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    same = RevisionBehaviour(weight=1.0)
    source = SyntheticSource(
        seed=3,
        origin=origin,
        revisions={"fraud-00001": same, "fraud-00002": same},
        request_rate=20.0,
        tick_seconds=15.0,
    )
    model = ModelRef(namespace="bench", name="fraud")
    start = origin + timedelta(minutes=5)
    sequence = []
    for k in range(looks):
        window = TimeWindow(start=start, end=start + timedelta(minutes=k + 1))
        arms = {"baseline": "fraud-00001", "canary": "fraud-00002"}
        sequence.append(
            {
                spec.name: source.observe(
                    spec, loaded.queries[spec.name], model=model, window=window, **arms
                )
                for spec in loaded.profile.metrics
            }
        )
    return replace(loaded.profile, canary_weight=0.5), sequence


def measure(looks: int, rounds: int) -> dict[str, float]:
    """CPU of ``judge()`` per look (ms): mean over looks of each look's best, and the median
    over rounds of the sequence's mean."""
    from analyzer.judge import JudgeState, judge

    profile, sequence = inputs(looks)
    best = [float("inf")] * looks
    means = []
    for _ in range(rounds):
        state = JudgeState()
        spent = 0.0
        for k, observations in enumerate(sequence):
            t0 = time.process_time()
            _, state = judge(profile, observations, state)
            cpu = time.process_time() - t0
            best[k] = min(best[k], cpu)
            spent += cpu
            state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
        means.append(spent / looks)
    return {
        "best_ms": 1000 * statistics.fmean(best),
        "median_ms": 1000 * statistics.median(means),
    }


def export(ref: str, into: Path) -> Path:
    """``ref``'s ``analyzer`` package, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "analyzer"],
        check=True,
        capture_output=True,
    ).stdout
    tar = into / "code.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into


def child(code: Path, looks: int, rounds: int) -> dict[str, float]:
    env = {**os.environ, "JUDGE_CPU_CODE": str(code)}
    out = subprocess.run(
        [sys.executable, __file__, "--looks", str(looks), "--rounds", str(rounds), "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def compare(ref: str, looks: int, rounds: int, pairs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        other = export(ref, Path(tmp))
        runs: dict[str, list[dict[str, float]]] = {ref: [], "this checkout": []}
        for _ in range(pairs):
            runs[ref].append(child(other, looks, rounds))
            runs["this checkout"].append(child(ROOT, looks, rounds))
    print(f"judge() CPU per look, ms ({looks} looks x {rounds} rounds, {pairs} interleaved pairs)")
    print(f"{'code':<16}{'best (median of pairs)':>24}{'median round':>16}")
    summary = {}
    for name, found in runs.items():
        b = statistics.median(r["best_ms"] for r in found)
        m = statistics.median(r["median_ms"] for r in found)
        summary[name] = b
        print(f"{name:<16}{b:>24.3f}{m:>16.3f}")
    before, after = summary[ref], summary["this checkout"]
    print(f"change: {100 * (after - before) / before:+.1f} % (best per look)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--looks", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--against", help="a git revision to measure too, interleaved")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="one JSON line (for --against)")
    args = ap.parse_args()
    if args.against:
        compare(args.against, args.looks, args.rounds, args.pairs)
        return
    found = measure(args.looks, args.rounds)
    if args.json:
        print(json.dumps(found))
        return
    print(
        f"judge() CPU per look: best {found['best_ms']:.3f} ms, "
        f"median round {found['median_ms']:.3f} ms ({args.looks} looks x {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
