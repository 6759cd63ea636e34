"""A fresh look's compaction and ledger entry, CPU per look, on real judge results.

The results are the judge's on the 5-metric bench profile (``bench/judge_cpu.py``'s inputs:
``bench/api_load.py`` PROFILE, the seeded synthetic source, the state carried from look to look),
``--looks`` looks one minute apart, made once by this checkout and handed to every child as
JSON. Each look's data is built as ``AnalysisService._look`` builds it; a look whose verdicts
equal the previous look's is compacted over the last whole look (``CompactBase.compact`` with
the result's canonical text, as the service passes it), any other is written whole and becomes
the base. Timed per look (``time.process_time``): the compaction, and the pure part of
``Ledger.append_with`` (``prepare`` + ``build_entry``) for the event written. Each round makes
its bases afresh (``CompactBase.of``, not timed), so work a base does once is paid in the round.
A look's CPU is its best over ``--rounds`` rounds; the figure is the mean over looks.

``--against REF`` measures a git revision too (its ``analyzer`` exported by ``git archive``),
interleaved with this checkout's in alternating child processes (``--pairs``), and checks that
both wrote the same bytes (a digest of every compact data and entry hash):

    .venv/bin/python bench/compact_cpu.py [--looks 30] [--rounds 30] [--against main] [--pairs 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(os.environ.get("COMPACT_CPU_CODE", ROOT))
sys.path.insert(0, str(CODE))


def results(looks: int) -> list[dict[str, Any]]:
    """``looks`` consecutive judge results (JSON, as the service stores them)."""
    from analyzer.judge import JudgeState, judge

    sys.path.insert(1, str(ROOT / "bench"))
    from judge_cpu import inputs

    profile, sequence = inputs(looks)
    state = JudgeState()
    found = []
    for observations in sequence:
        result, state = judge(profile, observations, state)
        found.append(json.loads(json.dumps(result.to_json())))
        state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
    return found


def _data(k: int, result: dict[str, Any]) -> dict[str, Any]:
    start = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    return {
        "session": 17,
        "look": k + 1,
        "canary": "fraud-00002",
        "baseline": "fraud-00001",
        "profile": "bench-5",
        "profile_digest": "0" * 16,
        "weight": 50,
        "rollout": "bench/fraud-rollout",
        "window": {
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=k + 1)).isoformat(),
        },
        "cached": False,
        "late": False,
        "result": result,
    }


def measure(found: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    from analyzer.domain.events import EventType, LedgerEvent
    from analyzer.domain.model import ModelRef
    from analyzer.ledger.chain import GENESIS_HASH, build_entry, canonical_json, prepare
    from analyzer.ledger.compact import verdicts_of
    from analyzer.ledger.compact_base import CompactBase

    looks = len(found)
    texts = [canonical_json(r) for r in found]
    model = ModelRef(namespace="bench", name="fraud")
    at = datetime(2026, 1, 1, 1, tzinfo=UTC)
    best_compact = [float("inf")] * looks
    best_entry = [float("inf")] * looks
    digest = ""
    compacts = 0
    for _ in range(rounds):
        written = hashlib.sha256()
        compacts = 0
        base = None
        prev_hash = GENESIS_HASH
        for k, result in enumerate(found):
            data = _data(k, result)
            compact = None
            t0 = time.process_time()
            if base is not None and verdicts_of(found[k - 1]) == verdicts_of(result):
                compact = base.compact(data, stored=texts[k])
            t1 = time.process_time()
            event = LedgerEvent(
                type=EventType.ANALYSIS_RECORDED,
                actor="argo",
                model=model,
                revision="fraud-00002",
                data=compact if compact is not None else data,
            )
            t2 = time.process_time()
            entry = build_entry(
                prev_seq=k, prev_hash=prev_hash, event=prepare(event), recorded_at=at
            )
            t3 = time.process_time()
            best_compact[k] = min(best_compact[k], t1 - t0)
            best_entry[k] = min(best_entry[k], t3 - t2)
            prev_hash = entry.hash
            written.update(entry.payload.encode())
            if compact is None:  # a whole look: the session's new base (cut once, untimed)
                base = CompactBase.of(k + 1, result, stored=texts[k])
            else:
                compacts += 1
        digest = written.hexdigest()
    return {
        "compact_us": 1e6 * statistics.fmean(best_compact[1:]),
        "entry_us": 1e6 * statistics.fmean(best_entry),
        "compacts": compacts,
        "digest": digest,
    }


def export(ref: str, into: Path) -> Path:
    """``ref``'s ``analyzer`` package, extracted under ``into``."""
    sys.path.insert(1, str(ROOT / "bench"))
    from judge_cpu import export as judge_export

    return judge_export(ref, into)


def child(code: Path, inputs_file: Path, rounds: int) -> dict[str, Any]:
    env = {**os.environ, "COMPACT_CPU_CODE": str(code)}
    out = subprocess.run(
        [sys.executable, __file__, "--from", str(inputs_file), "--rounds", str(rounds), "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def compare(ref: str, looks: int, rounds: int, pairs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inputs_file = Path(tmp) / "results.json"
        inputs_file.write_text(json.dumps(results(looks)))
        other = export(ref, Path(tmp))
        runs: dict[str, list[dict[str, Any]]] = {ref: [], "this checkout": []}
        for _ in range(pairs):
            runs[ref].append(child(other, inputs_file, rounds))
            runs["this checkout"].append(child(ROOT, inputs_file, rounds))
    digests = {r["digest"] for found in runs.values() for r in found}
    compacts = runs[ref][0]["compacts"]
    print(
        f"CPU per look, µs ({looks} looks, {compacts} compact; best of {rounds} rounds, "
        f"median of {pairs} interleaved pairs)"
    )
    print(f"{'code':<16}{'compact':>10}{'entry':>10}{'both':>10}")
    summary = {}
    for name, found in runs.items():
        c = statistics.median(r["compact_us"] for r in found)
        e = statistics.median(r["entry_us"] for r in found)
        summary[name] = (c, e)
        print(f"{name:<16}{c:>10.1f}{e:>10.1f}{c + e:>10.1f}")
    (bc, be), (ac, ae) = summary[ref], summary["this checkout"]
    print(
        f"change: compact {100 * (ac - bc) / bc:+.1f} %, entry {100 * (ae - be) / be:+.1f} %, "
        f"both {100 * (ac + ae - bc - be) / (bc + be):+.1f} %"
    )
    print("same entries written:", "yes" if len(digests) == 1 else f"NO ({len(digests)} digests)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--looks", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--against", help="a git revision to measure too, interleaved")
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--from", dest="inputs", help="results made by the parent (for --against)")
    ap.add_argument("--json", action="store_true", help="one JSON line (for --against)")
    args = ap.parse_args()
    if args.against:
        compare(args.against, args.looks, args.rounds, args.pairs)
        return
    found = json.loads(Path(args.inputs).read_text()) if args.inputs else results(args.looks)
    measured = measure(found, args.rounds)
    if args.json:
        print(json.dumps(measured))
        return
    print(
        f"CPU per look: compact {measured['compact_us']:.1f} µs "
        f"({measured['compacts']} of {len(found)} looks compact), "
        f"entry {measured['entry_us']:.1f} µs, best of {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
