"""The judge's outputs are the ones recorded before its CPU work (issue 20), to the last bits
the CPU allows.

``tests/data/judge_bit_identity.json.gz`` holds, for a few hundred looks over every metric kind
and the judge's paths (no horizon, horizon, bake clock, exact proportions, omnibus, both
directions, SRM, missing data, regressions that fail), each look's result as JSON (what the
ledger records and Argo reads) and its ``AnalysisResult`` and ``JudgeState`` written out field
by field: every float by its ``repr`` and its exact type (a ``numpy.float64`` where a ``float``
was is a difference), every dict in its key order.

**Why floats are compared to 1e-12 and not bit for bit.** The fixture was recorded on one
machine and some numbers' last bits depended on the CPU: OpenBLAS picked its matrix-vector and
dot kernels by CPU (``radial.py``'s Simpson weights, ``np.convolve``), numpy dispatched its
array ``exp`` and ``log`` to AVX-512 or AVX2 loops and compiled its complex product (in the FFT
convolution) with or without FMA. On an AVX-512 EPYC (2026-12-07), 108 of the 288 recorded
states and 4 results (e-values near 1e15 and beyond) differed from the recording machine's in
their last bits (at most 2e-14 relative); every verdict, reason, count and type was identical.
Those operations are now :mod:`analyzer.stats.portable`'s, and
``test_the_judge_answers_the_same_bits_whichever_numpy_and_blas_kernels_run`` checks that
numpy's and OpenBLAS's kernels for other CPUs give the same bits. What still depends on the
machine is the C library's ``exp``/``log`` (glibc's variant with FMA or without: with
``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4,-AVX`` 68 states differ in their last bits,
no result) and, for a fixture kept across upgrades, the versions of glibc, numpy and scipy. So
everything but a float is compared exactly, and floats to 1e-12 relative; a state's lattice
(hundreds of masses) by its length, total mass, first two moments and largest mass. A
refactoring that changes a number beyond rounding, a type or a key's order still fails. The
ledger is unaffected: it records the results as computed and ``ledger verify`` checks what was
recorded, never recomputes it.

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
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

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


TOLERANCE = 1e-12  # relative; the machine-dependent differences measured were below 1e-13


def state_shape(x: Any, key: str = "") -> Any:
    """``canon(state)`` with each lattice (a boundary's ``masses``) replaced by its length,
    total mass, first two moments and largest mass: a lattice holds hundreds of masses, and is
    compared by what it weighs rather than mass by mass."""
    if isinstance(x, dict):
        if key == "masses" and "__floats__" in x:
            masses = [float(v) for v in x["__floats__"]]
            summary = {
                "len": len(masses),
                "sum": math.fsum(masses),
                "m1": math.fsum(i * m for i, m in enumerate(masses)),
                "m2": math.fsum(i * i * m for i, m in enumerate(masses)),
                "max": max(masses),
            }
            return {"__lattice__": summary}
        return {k: state_shape(v, k) for k, v in x.items()}
    if isinstance(x, list):
        return [state_shape(v, key) for v in x]
    return x


def _close(want: float, got: float) -> bool:
    if math.isnan(want) or math.isinf(want):
        return repr(want) == repr(got)
    return math.isclose(want, got, rel_tol=TOLERANCE, abs_tol=1e-300)


def assert_same(want: Any, got: Any, where: str) -> None:
    """Equal in structure, key order, types and every non-float value; floats (``canon``'s
    ``{"f": repr}``, its float tuples, a lattice's summary, plain JSON floats) within
    ``TOLERANCE``."""
    if type(want) is float:
        assert type(got) is float, where
        assert _close(want, got), f"{where}: {want!r} != {got!r}"
    elif isinstance(want, dict):
        assert isinstance(got, dict), where
        assert list(want) == list(got), f"{where}: keys {list(want)} != {list(got)}"
        if list(want) == ["f"]:
            assert _close(float(want["f"]), float(got["f"])), f"{where}: {want} != {got}"
        elif list(want) == ["__floats__"]:
            floats = [[float(v) for v in x["__floats__"]] for x in (want, got)]
            assert_same(*floats, where)
        else:
            for k in want:
                assert_same(want[k], got[k], f"{where}/{k}")
    elif isinstance(want, list):
        assert isinstance(got, list), where
        assert len(want) == len(got), f"{where}: length"
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            assert_same(w, g, f"{where}[{i}]")
    else:
        assert type(want) is type(got), f"{where}: {type(want)} != {type(got)}"
        assert want == got, f"{where}: {want!r} != {got!r}"


def record() -> list[dict[str, Any]]:
    """Every scenario's looks: the result's JSON (as the ledger gets it) and its typed form in
    full, and the state's typed form with its lattices summarized."""
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
                    "result": canon(result),
                    "state": state_shape(canon(state)),
                }
            )
            # as the service stores it and reads it back
            state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
    return rows


def digest() -> str:
    """SHA-256 of every look's result and state in full (every lattice mass by its ``repr``)."""
    rows = []
    for name, profile, canary, bake in _scenarios():
        state: JudgeState | None = None
        for k, observations in enumerate(_looks(profile, canary)):
            look = replace(profile, bake_elapsed=(k + 1) / 18) if bake else profile
            result, state = judge(look, observations, state)
            rows.append([name, k, json.dumps(result.to_json()), canon(result), canon(state)])
            state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


# numpy's SIMD loops (X86_V3 = AVX2 and FMA, X86_V4 = AVX-512) and OpenBLAS's kernels, chosen
# at run time, switched to older CPUs' (any x86-64 machine with AVX can run all three)
_NO_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"
CPU_VARIANTS = {
    "this CPU": {},
    "no AVX-512, Sandy Bridge BLAS": {
        "NPY_DISABLE_CPU_FEATURES": _NO_AVX512,
        "OPENBLAS_CORETYPE": "Sandybridge",
    },
    "no AVX2, Prescott BLAS": {
        "NPY_DISABLE_CPU_FEATURES": f"X86_V3 {_NO_AVX512}",
        "OPENBLAS_CORETYPE": "Prescott",
    },
}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the variants are x86-64 kernels")
def test_the_judge_answers_the_same_bits_whichever_numpy_and_blas_kernels_run() -> None:
    """The recording, replayed under numpy's and OpenBLAS's kernels for other x86-64 CPUs,
    gives the same bits in every result and state (``analyzer.stats.portable``). Before,
    such variants moved 67 to 119 of the 288 states and up to 20 results on an AVX-512 EPYC.
    What stays CPU-dependent, the C library's ``exp``/``log`` with or without FMA, is not
    varied here (glibc cannot switch it without ``GLIBC_TUNABLES``; see the module docstring)."""
    root = Path(__file__).resolve().parents[3]
    # only the variables that choose kernels differ between the runs
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")
    }
    runs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-W",
                "ignore",
                "-m",
                "tests.unit.judge.test_judge_bit_identity",
                "--digest",
            ],
            cwd=root,
            env={**base, **extra},
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, extra in CPU_VARIANTS.items()
    }
    found = {name: run.communicate(timeout=120)[0].strip() for name, run in runs.items()}
    assert all(run.returncode == 0 for run in runs.values()), found
    assert len(found["this CPU"]) == 64, found
    assert len(set(found.values())) == 1, found


def test_the_judge_answers_bit_for_bit_what_it_answered_before() -> None:
    expected = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    found = record()
    assert len(found) == len(expected)
    for want, got in zip(expected, found, strict=True):
        where = f"{want['scenario']} look {want['look']}"
        assert_same(json.loads(want["result_json"]), json.loads(got["result_json"]), where)
        assert_same(want["result"], got["result"], f"{where} result")
        assert_same(want["state"], got["state"], f"{where} state")


def test_the_comparison_refuses_a_number_moved_beyond_rounding() -> None:
    """The tolerance hides the CPU's last bits, not a changed number, type or lattice."""
    rows = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    row = rows[-1]
    assert_same(row["result"], json.loads(json.dumps(row["result"])), "itself")
    floats = [f for f in _walk(row["result"]) if list(f) == ["f"] and float(f["f"]) != 0.0]
    assert floats, "the last look's result has non-zero floats"

    moved = json.loads(json.dumps(row["result"]))
    target = next(f for f in _walk(moved) if list(f) == ["f"] and float(f["f"]) != 0.0)
    target["f"] = repr(float(target["f"]) * (1 + 1e-9))
    with pytest.raises(AssertionError):
        assert_same(row["result"], moved, "moved")

    retyped = json.loads(json.dumps(row["result"]))
    target = next(f for f in _walk(retyped) if list(f) == ["f"] and float(f["f"]) != 0.0)
    target.clear()
    target |= {"__type__": "float64", "repr": "np.float64(1.0)"}
    with pytest.raises(AssertionError):
        assert_same(row["result"], retyped, "retyped")

    state = next(r["state"] for r in rows if any("__lattice__" in f for f in _walk(r["state"])))
    heavier = json.loads(json.dumps(state))
    lattice = next(f["__lattice__"] for f in _walk(heavier) if "__lattice__" in f)
    lattice["sum"] *= 1 + 1e-9
    with pytest.raises(AssertionError):
        assert_same(state, heavier, "lattice")


def _walk(x: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside ``x``, depth first."""
    if isinstance(x, dict):
        yield x
        for v in x.values():
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)


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


if __name__ == "__main__" and sys.argv[1:] == ["--digest"]:
    print(digest())
if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    rows = record()
    FIXTURE.write_bytes(gzip.compress(json.dumps(rows).encode(), mtime=0))
    print(f"{len(rows)} looks, {FIXTURE.stat().st_size} bytes: {FIXTURE}")
