"""Proportions with tolerance 0 and a horizon are judged by the exact conditional test."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from analyzer.domain.observation import EventCount, ProportionObservation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import Classification, Direction, MetricKind, Verdict
from analyzer.judge import JudgeState, judge

SPEC = MetricSpec(name="errors", kind=MetricKind.PROPORTION, horizon=10_000)


def _obs(b: tuple[int, int], c: tuple[int, int]) -> ProportionObservation:
    return ProportionObservation(
        baseline=EventCount(events=b[0], total=b[1]), canary=EventCount(events=c[0], total=c[1])
    )


def _profile(spec: MetricSpec = SPEC, **kw: float) -> AnalysisProfile:
    return AnalysisProfile(name="p", metrics=(spec,), **kw)  # type: ignore[arg-type]


def test_many_more_canary_errors_fail_and_few_do_not() -> None:
    bad, _ = judge(_profile(), {"errors": _obs((1, 3000), (25, 3000))})
    assert bad.verdict is Verdict.FAIL
    assert bad.metrics[0].statistic["components"]["rate"]["test"] == "exact conditional"  # type: ignore[index,call-overload]
    fine, _ = judge(_profile(), {"errors": _obs((4, 3000), (6, 3000))})
    assert fine.verdict is Verdict.INCONCLUSIVE


def test_the_lattice_survives_the_state_json_round_trip() -> None:
    rng = np.random.default_rng(5)
    looks, b, c = [], [0, 0], [0, 0]
    for _ in range(12):
        b = [b[0] + int(rng.binomial(500, 0.002)), b[1] + 500]
        c = [c[0] + int(rng.binomial(500, 0.004)), c[1] + 500]
        looks.append(_obs((b[0], b[1]), (c[0], c[1])))
    plain: JudgeState | None = None
    carried: JudgeState | None = None
    for obs in looks:
        r1, plain = judge(_profile(), {"errors": obs}, plain)
        r2, carried = judge(_profile(), {"errors": obs}, carried)
        carried = JudgeState.from_json(json.loads(json.dumps(carried.to_json())))
        assert r1.to_json() == r2.to_json()
    stored = carried.to_json()["metrics"]["errors"]["boundaries"]["rate:exact"]
    assert stored["reference"] == [6000.0, 6000.0]  # requests of (canary, baseline)
    assert stored["info"] == b[0] + c[0]


def test_either_direction_catches_a_drop_with_its_own_lattice() -> None:
    spec = replace(SPEC, direction=Direction.EITHER)
    result, state = judge(_profile(spec), {"errors": _obs((40, 3000), (2, 3000))})
    assert result.verdict is Verdict.FAIL
    assert result.metrics[0].classification is Classification.LOW
    names = {name for name, _ in state.metric("errors").boundaries}
    assert names == {"rate+:exact", "rate-:exact"}


def test_a_tolerance_keeps_the_normal_approximation() -> None:
    spec = replace(SPEC, tolerance=0.001)
    result, state = judge(_profile(spec), {"errors": _obs((1, 3000), (25, 3000))})
    assert "test" not in result.metrics[0].statistic["components"]["rate"]  # type: ignore[operator,index,call-overload]
    assert {name for name, _ in state.metric("errors").boundaries} == {"rate"}


def test_a_projected_horizon_starts_the_lattice_from_the_start_of_the_analysis() -> None:
    """With a bake clock the lattice starts when the horizon is projected (a tenth of the
    bake); its first increment is everything since the start, not since the previous look."""
    spec = replace(SPEC, horizon=None)
    early, state = judge(_profile(spec, bake_elapsed=0.05), {"errors": _obs((3, 1000), (2, 1000))})
    assert early.metrics[0].statistic["method"] == "e-process"
    _, state = judge(
        _profile(spec, bake_elapsed=0.2), {"errors": _obs((5, 4000), (6, 4000))}, state
    )
    lattice = dict(state.metric("errors").boundaries)["rate:exact"]
    assert lattice.info == 11
    assert lattice.reference == (4000.0, 4000.0)
    # Bin(11, 1/2) from zero: what is left plus what was cut is all the null mass
    assert abs(sum(lattice.masses) + lattice.spent - 1.0) < 1e-9
    assert lattice.z_boundary == 10  # P(>= 10 of 11) = 12/2048 fits under the allowed alpha


def test_unequal_traffic_is_judged_by_each_arms_share_of_requests() -> None:
    """Canary at a tenth of the traffic (as 20 of 200 req/s): 10 of 20 errors on the canary is
    far above its 10 % share, 2 of 20 is exactly its share."""
    bad, _ = judge(_profile(), {"errors": _obs((10, 9000), (10, 1000))})
    assert bad.verdict is Verdict.FAIL
    fair, _ = judge(_profile(), {"errors": _obs((18, 9000), (2, 1000))})
    assert fair.verdict is Verdict.INCONCLUSIVE
