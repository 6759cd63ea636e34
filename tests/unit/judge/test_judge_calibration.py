"""A small A/A calibration of the real judge consulted at every look (seeded, a few seconds).

The full calibration (thousands of replicates, 40 and 400 looks) is ``bench/judge_quality.py``;
this guards against a regression that would make repeated looks inflate false fails.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from analyzer.domain.observation import EventCount, ProportionObservation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import MetricKind, Verdict
from analyzer.judge import JudgeState, judge

REPS, LOOKS, PER_LOOK, RATE = 150, 25, 400, 0.01


def _false_fails(
    spec: MetricSpec, seed: int, per_look: tuple[int, int] = (PER_LOOK, PER_LOOK)
) -> int:
    rng = np.random.default_rng(seed)
    profile = AnalysisProfile(name="aa", metrics=(spec,), alpha=0.05)
    fails = 0
    for _ in range(REPS):
        x = rng.binomial(np.array(per_look)[:, None], RATE, size=(2, LOOKS)).cumsum(axis=1)
        state: JudgeState | None = None
        for k in range(LOOKS):
            n_b, n_c = (m * (k + 1) for m in per_look)
            obs = ProportionObservation(
                baseline=EventCount(events=int(x[0, k]), total=n_b),
                canary=EventCount(events=int(x[1, k]), total=n_c),
            )
            result, state = judge(profile, {spec.name: obs}, state)
            if result.verdict is Verdict.FAIL:
                fails += 1
                break
    return fails


def _limit() -> int:
    # fail the test only if the count is implausible for a 5 % false-fail rate (p < 0.001)
    return int(stats.binom.isf(0.001, REPS, 0.05))


def test_anytime_valid_judge_keeps_false_fails_at_alpha_under_repeated_looks() -> None:
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION)
    assert _false_fails(spec, seed=1) <= _limit()


def test_horizon_judge_keeps_false_fails_at_alpha_under_repeated_looks() -> None:
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION, horizon=PER_LOOK * LOOKS)
    assert _false_fails(spec, seed=2) <= _limit()


def test_exact_horizon_judge_keeps_false_fails_at_alpha_with_a_ten_percent_canary() -> None:
    """The exact conditional test (tolerance 0) with the canary at a tenth of the traffic, as
    in an Argo canary at weight 10: the null share of each look's errors is the canary's share
    of its requests."""
    per_look = (3600, 400)
    spec = MetricSpec(name="errors", kind=MetricKind.PROPORTION, horizon=per_look[1] * LOOKS)
    assert _false_fails(spec, seed=3, per_look=per_look) <= _limit()
