"""Bake-aware judging: with the share of the bake elapsed, a healthy canary passes by the end
of the bake, a bad one fails, and the projected horizon is fixed at its first use."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from analyzer.domain.observation import EventCount, ProportionObservation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import MetricKind, Verdict
from analyzer.judge import JudgeState, judge

ERRORS = MetricSpec(name="errors", kind=MetricKind.PROPORTION, tolerance=0.001, critical=True)
PROFILE = AnalysisProfile(name="t", metrics=(ERRORS,))
LOOKS = 10
BASE_PER_LOOK, CANARY_PER_LOOK = 180 * 60, 20 * 60  # 180 and 20 req/s, one look a minute


def _run(seed: int, canary_rate: float) -> list[tuple[Verdict, JudgeState]]:
    # As Argo asks: look 1 at the start of the bake (10 s of traffic so far), then one a minute.
    rng = np.random.default_rng(seed)
    b = c = be = ce = 0
    state: JudgeState | None = None
    out = []
    for k in range(1, LOOKS + 1):
        share = 1 / 6 if k == 1 else 1.0
        nb, nc = int(BASE_PER_LOOK * share), int(CANARY_PER_LOOK * share)
        b += nb
        c += nc
        be += int(rng.binomial(nb, 0.002))
        ce += int(rng.binomial(nc, canary_rate))
        obs = ProportionObservation(
            baseline=EventCount(events=be, total=b), canary=EventCount(events=ce, total=c)
        )
        profile = replace(PROFILE, bake_elapsed=(k - 1) / (LOOKS - 1))
        result, state = judge(profile, {"errors": obs}, state)
        out.append((result.verdict, state))
    return out


def test_without_a_clock_a_healthy_canary_stays_inconclusive() -> None:
    result, _ = judge(
        PROFILE,
        {
            "errors": ProportionObservation(
                baseline=EventCount(events=22, total=10_800),
                canary=EventCount(events=2, total=1200),
            )
        },
    )
    assert result.verdict is Verdict.INCONCLUSIVE


def test_healthy_canaries_pass_by_the_end_of_the_bake() -> None:
    finals = [_run(seed, 0.002)[-1][0] for seed in range(40)]
    assert finals.count(Verdict.PASS) >= 38, finals  # fails only at the (small) false-fail rate


def test_a_bad_canary_fails_within_the_bake() -> None:
    runs = [_run(seed, 0.02) for seed in range(20)]
    assert all(any(v is Verdict.FAIL for v, _ in run) for run in runs)


def test_the_projected_horizon_is_fixed_at_its_first_use() -> None:
    run = _run(1, 0.002)
    horizons = [s.metric("errors").horizon for _, s in run]
    assert horizons[0] is None  # the first look (clock 0) cannot project
    first = horizons[1]
    assert first is not None
    total = int(CANARY_PER_LOOK / 6) + (LOOKS - 1) * CANARY_PER_LOOK  # the canary at the end
    assert abs(first - total) / total < 0.2
    assert all(h == first for h in horizons[1:])
