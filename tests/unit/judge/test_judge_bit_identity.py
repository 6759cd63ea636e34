"""The judge's outputs are bit-identical to those recorded before its CPU work (issue 20).

``tests/data/judge_bit_identity.json.gz`` holds, for a few hundred looks over every metric kind
and the judge's paths (no horizon, horizon, bake clock, exact proportions, omnibus, both
directions, SRM, missing data, regressions that fail), each look's ``AnalysisResult`` and
``JudgeState`` written out field by field: every float by its ``repr`` and its exact type (a
``numpy.float64`` where a ``float`` was is a difference), every dict in its key order. The
ledger hashes the canonical JSON of results, so any change of a float's last bit, a key's order
or a value's type would break ``ledger verify`` of old entries; this test catches it.

Regenerate only for an intended change of the judge's numbers (never to make this test pass
after a refactoring):

    .venv/bin/python -m tests.unit.judge.test_judge_bit_identity --write
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analyzer.domain.model import ModelRef
from analyzer.domain.observation import MissingObservation, Observation
from analyzer.domain.profile import AnalysisProfile, MetricSpec, ThresholdBound
from analyzer.domain.verdict import Direction, MetricKind
from analyzer.judge import JudgeState, judge
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "judge_bit_identity.json.gz"
CATS = ("approve", "review", "decline")
LOOKS = 24
ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)


def canon(x: Any) -> Any:
    """``x`` as JSON with every type spelled out where JSON would lose it."""
    t = type(x)
    if t is float:
        return {"f": repr(x)}
    if t in (int, str, bool) or x is None:
        return x
    if t is tuple:
        if all(type(v) is float for v in x):  # lattice masses: long, and all floats
            return {"__floats__": [repr(v) for v in x]}
        return {"__tuple__": [canon(v) for v in x]}
    if t is list:
        return [canon(v) for v in x]
    if t is dict:
        return {"__dict__": [[canon(k), canon(v)] for k, v in x.items()]}
    if isinstance(x, enum.Enum):
        return {"__enum__": f"{t.__name__}.{x.name}"}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {
            "__class__": t.__name__,
            **{f.name: canon(getattr(x, f.name)) for f in dataclasses.fields(x)},
        }
    return {"__type__": t.__name__, "repr": repr(x)}


def _spec(name: str, kind: MetricKind, **kw: Any) -> MetricSpec:
    return MetricSpec(name=name, kind=kind, **kw)


H, P, C = MetricKind.HISTOGRAM, MetricKind.PROPORTION, MetricKind.CATEGORICAL
T = MetricKind.THRESHOLD
UP, DOWN, EITHER = Direction.INCREASE, Direction.DECREASE, Direction.EITHER

BENCH = (  # bench/api_load.py's profile
    _spec("latency", H, tolerance=0.1),
    _spec("errors", P, tolerance=0.001),
    _spec("false_positives", P, tolerance=0.002),
    _spec("decisions", C, categories=CATS, ordered=True),
    _spec("p99_latency", T, bound=ThresholdBound(max=0.5)),
)
WIDE = (
    _spec("latency", H, tolerance=0.05, direction=EITHER),
    _spec("latency_down", H, tolerance=0.2, direction=DOWN, mixture_scale=0.1),
    _spec("errors", P, tolerance=0.0, direction=EITHER),
    _spec("decisions", C, categories=CATS, ordered=True, direction=EITHER, tolerance=0.01),
    _spec("mix", C, categories=CATS),
    _spec("shadow", MetricKind.PAIRED, categories=CATS, tolerance=0.02),
    _spec("cpu", MetricKind.SAMPLES, must_have_data=False),
)
HORIZON = (
    _spec("latency", H, tolerance=0.1, horizon=6000),
    _spec("errors", P, tolerance=0.0, horizon=6000),
    _spec("errors_tol", P, tolerance=0.001, horizon=8000, spending="obrien-fleming"),
    _spec("decisions", C, categories=CATS, ordered=True, horizon=5000, spending="hsd:-4"),
    _spec("mix", C, categories=CATS, horizon=5000),
    _spec("shadow", MetricKind.PAIRED, categories=CATS, tolerance=0.02, horizon=4000),
)

SAME = RevisionBehaviour(weight=1.0)
WORSE = RevisionBehaviour(
    weight=1.0,
    latency_shift=0.3,
    tail_fraction=0.02,
    error_rate=0.006,
    event_rates={"false_positives": 0.01},
    decision_mix=(0.84, 0.10, 0.06),
    shadow_disagreement=0.05,
    sample_mean=0.45,
)
FASTER = RevisionBehaviour(weight=1.0, latency_shift=-0.3, error_rate=0.0005)
SKEWED = RevisionBehaviour(weight=0.6)  # traffic split off the expected weight: SRM


def _scenarios() -> Iterator[tuple[str, AnalysisProfile, RevisionBehaviour, bool]]:
    """(name, profile, canary behaviour, bake clock) per scenario."""
    for canary_name, canary in (("same", SAME), ("worse", WORSE), ("faster", FASTER)):
        bench = AnalysisProfile(name="bench", metrics=BENCH, canary_weight=0.5)
        yield f"bench-{canary_name}", bench, canary, False
        yield f"wide-{canary_name}", AnalysisProfile(name="wide", metrics=WIDE), canary, False
        horizon = AnalysisProfile(name="horizon", metrics=HORIZON, canary_weight=0.5)
        yield f"horizon-{canary_name}", horizon, canary, False
    bake = AnalysisProfile(name="bake", metrics=(*BENCH, _spec("mix", C, categories=CATS)))
    yield "bake-same", bake, SAME, True
    yield "bake-worse", bake, WORSE, True
    yield "srm", AnalysisProfile(name="srm", metrics=BENCH, canary_weight=0.5), SKEWED, False


def _looks(profile: AnalysisProfile, canary: RevisionBehaviour) -> list[dict[str, Observation]]:
    source = SyntheticSource(
        seed=11,
        origin=ORIGIN,
        revisions={"base": SAME, "canary": canary},
        request_rate=20.0,
        tick_seconds=15.0,
    )
    model = ModelRef(namespace="ns", name="m")
    start = ORIGIN + timedelta(minutes=3)
    queries = {
        m.name: MetricQuery(unit_scale=0.001 if m.kind in (H, T) else 1.0) for m in profile.metrics
    }
    out = []
    for k in range(LOOKS):
        window = TimeWindow(start=start, end=start + timedelta(seconds=75 * (k + 1)))
        obs = {
            m.name: source.observe(
                m, queries[m.name], model=model, baseline="base", canary="canary", window=window
            )
            for m in profile.metrics
        }
        if k in (7, 8):  # a source outage: missing data, the state must carry over it
            obs["errors"] = MissingObservation(reason="outage", source_error=k == 7)
        if k == 15:  # a repeated look: the same counts as the previous one
            obs = dict(out[-1])
        out.append(obs)
    return out


def _digest(x: Any) -> str:
    return hashlib.sha256(json.dumps(x).encode()).hexdigest()


def record() -> list[dict[str, Any]]:
    """Every scenario's looks: the result's JSON (as the ledger gets it) in full, and digests
    of the typed forms of the result and the state, and of the state's JSON (its lattices are
    long)."""
    rows = []
    for name, profile, canary, bake in _scenarios():
        state: JudgeState | None = None
        for k, observations in enumerate(_looks(profile, canary)):
            look = replace(profile, bake_elapsed=(k + 1) / 18) if bake else profile
            result, state = judge(look, observations, state)
            rows.append(
                {
                    "scenario": name,
                    "look": k,
                    "result_json": json.dumps(result.to_json()),
                    "result_sha256": _digest(canon(result)),
                    "state_sha256": _digest(canon(state)),
                    "state_json_sha256": _digest(state.to_json()),
                }
            )
            # as the service stores it and reads it back
            state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
    return rows


def test_the_judge_answers_bit_for_bit_what_it_answered_before() -> None:
    expected = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    found = record()
    assert len(found) == len(expected)
    for want, got in zip(expected, found, strict=True):
        where = f"{want['scenario']} look {want['look']}"
        assert got["result_json"] == want["result_json"], where
        assert got["result_sha256"] == want["result_sha256"], where
        assert got["state_json_sha256"] == want["state_json_sha256"], where
        assert got["state_sha256"] == want["state_sha256"], where


def test_the_recorded_looks_cover_every_path() -> None:
    expected = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    text = "\n".join(row["result_json"] for row in expected)
    for needle in (
        '"verdict": "fail"',
        '"verdict": "pass"',
        '"verdict": "error"',
        '"method": "e-process"',
        '"method": "alpha-spending"',
        "exact conditional",
        "alpha-spending (omnibus)",
        "e-process (omnibus)",
        "sample_ratio_mismatch",
        "tail_q0.99",
        "tail_q0.1-",
        '"kind": "paired"',
        '"kind": "samples"',
    ):
        assert needle in text, needle


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    rows = record()
    FIXTURE.write_bytes(gzip.compress(json.dumps(rows).encode(), mtime=0))
    print(f"{len(rows)} looks, {FIXTURE.stat().st_size} bytes: {FIXTURE}")
