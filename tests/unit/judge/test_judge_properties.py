"""Properties of judge() on arbitrary cumulative look sequences (hypothesis, seeded)."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.domain.observation import (
    CategoricalObservation,
    EventCount,
    HistogramObservation,
    Observation,
    ProportionObservation,
)
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import Direction, MetricKind, Verdict
from analyzer.judge import JudgeState, judge

BOUNDS = (0.01, 0.02, 0.05, 0.1, math.inf)
CATS = ("approve", "review", "decline")

counts = st.lists(st.integers(0, 3000), min_size=5, max_size=5)
increments = st.lists(st.tuples(counts, counts), min_size=1, max_size=6)
settings_ = settings(max_examples=40, deadline=None, derandomize=True)


def _looks(kind: MetricKind, steps: list[tuple[list[int], list[int]]]) -> list[Observation]:
    b, c = [0] * 5, [0] * 5
    out: list[Observation] = []
    for db, dc in steps:
        b = [x + y for x, y in zip(b, db, strict=True)]
        c = [x + y for x, y in zip(c, dc, strict=True)]
        if kind is MetricKind.PROPORTION:
            out.append(
                ProportionObservation(
                    baseline=EventCount(events=b[0], total=b[0] + b[1]),
                    canary=EventCount(events=c[0], total=c[0] + c[1]),
                )
            )
        elif kind is MetricKind.HISTOGRAM:
            out.append(HistogramObservation(bounds=BOUNDS, baseline=tuple(b), canary=tuple(c)))
        else:
            out.append(
                CategoricalObservation(categories=CATS, baseline=tuple(b[:3]), canary=tuple(c[:3]))
            )
    return out


@settings_
@given(
    steps=increments,
    kind=st.sampled_from([MetricKind.PROPORTION, MetricKind.HISTOGRAM, MetricKind.CATEGORICAL]),
    direction=st.sampled_from(list(Direction)),
    horizon=st.sampled_from([None, 2000, 20_000]),
    tolerance=st.sampled_from([0.0, 0.05]),
    ordered=st.booleans(),
)
def test_every_look_gives_a_finite_public_json_and_a_round_tripping_state(
    steps: list[tuple[list[int], list[int]]],
    kind: MetricKind,
    direction: Direction,
    horizon: int | None,
    tolerance: float,
    ordered: bool,
) -> None:
    spec = MetricSpec(
        name="m",
        kind=kind,
        direction=direction,
        horizon=horizon,
        tolerance=tolerance,
        categories=CATS if kind is MetricKind.CATEGORICAL else (),
        ordered=ordered,
    )
    profile = AnalysisProfile(name="p", metrics=(spec,), canary_weight=0.5)
    state: JudgeState | None = None
    failed = False
    for obs in _looks(kind, steps):
        result, state = judge(profile, {"m": obs}, state)
        text = json.dumps(result.to_json(), allow_nan=False)  # never NaN/inf in the contract
        assert '"verdict": null' not in text
        assert 0.0 <= result.score <= 100.0
        assert JudgeState.from_json(json.loads(json.dumps(state.to_json()))) == state
        m = result.metrics[0]
        if failed:
            assert m.verdict is Verdict.FAIL  # a fail is sticky
        failed = m.verdict is Verdict.FAIL


@settings_
@given(steps=increments)
def test_replaying_a_look_is_idempotent(steps: list[tuple[list[int], list[int]]]) -> None:
    spec = MetricSpec(name="m", kind=MetricKind.HISTOGRAM, horizon=5000, tolerance=0.1)
    profile = AnalysisProfile(name="p", metrics=(spec,))
    state: JudgeState | None = None
    for obs in _looks(MetricKind.HISTOGRAM, steps):
        first, state = judge(profile, {"m": obs}, state)
        again, state_again = judge(profile, {"m": obs}, state)
        assert again.to_json() == first.to_json()
        assert state_again == state
