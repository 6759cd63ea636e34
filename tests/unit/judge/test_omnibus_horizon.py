"""Unordered decision mixes with a horizon: the alpha-spending omnibus test in the judge."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analyzer.domain.observation import CategoricalObservation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import MetricKind, Verdict
from analyzer.judge import JudgeState, judge
from analyzer.judge.sequential import HORIZON_ALPHA_SHARE
from analyzer.stats.effects import pearson_chi2
from analyzer.stats.radial import radial_boundaries
from analyzer.stats.spending import SpendingFunction

CATS = ("approve", "review", "decline")
MIX = np.array([0.90, 0.07, 0.03])


def _spec(horizon: int | None = 4_000, spending: str | None = None) -> MetricSpec:
    return MetricSpec(
        name="mix", kind=MetricKind.CATEGORICAL, categories=CATS, horizon=horizon, spending=spending
    )


def _obs(baseline: np.ndarray, canary: np.ndarray) -> dict[str, CategoricalObservation]:
    return {
        "mix": CategoricalObservation(
            categories=CATS,
            baseline=tuple(int(x) for x in baseline),
            canary=tuple(int(x) for x in canary),
        )
    }


def _run(spec: MetricSpec, canary_mix: np.ndarray, seed: int, looks: int = 8, per_look: int = 500):
    rng = np.random.default_rng(seed)
    profile = AnalysisProfile(name="p", metrics=(spec,), alpha=0.05)
    b = rng.multinomial(per_look, MIX, size=looks).cumsum(axis=0)
    c = rng.multinomial(per_look, canary_mix, size=looks).cumsum(axis=0)
    state: JudgeState | None = None
    results = []
    for k in range(looks):
        result, state = judge(profile, _obs(b[k], c[k]), state)
        state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
        results.append(result)
    return results


def test_a_horizon_switches_the_unordered_test_to_alpha_spending_late_by_default() -> None:
    first = _run(_spec(), MIX, seed=1, looks=1)[0].metrics[0]
    assert first.statistic["method"] == "alpha-spending (omnibus)"
    assert first.statistic["spending"] == "hsd:-2"
    assert first.statistic["information_fraction"] == 0.125
    assert 0 < first.statistic["alpha_spent"] < 0.0375 * 0.125  # late spending: below linear
    assert first.statistic["reserve_e_process"]["threshold"] == 80.0  # the remaining quarter


def test_a_healthy_mix_passes_at_the_horizon_and_not_before() -> None:
    results = _run(_spec(), MIX, seed=2)
    assert [r.verdict for r in results[:-1]] == [Verdict.INCONCLUSIVE] * 7
    assert results[-1].verdict is Verdict.PASS
    assert "horizon was reached" in results[-1].metrics[0].reason


def test_a_shifted_mix_fails_and_names_the_category_that_moved() -> None:
    results = _run(_spec(), np.array([0.80, 0.12, 0.08]), seed=3)
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    assert failed
    metric = failed[0].metrics[0]
    assert metric.statistic["norm"] >= metric.statistic["boundary"]
    assert "approve" in metric.reason  # the largest share change


def test_the_boundary_holds_the_crossing_rate_at_alpha_for_an_unseen_category() -> None:
    # a declared category that never occurs: the lattice keeps K - 1 dimensions (conservative),
    # the e-process reserve counts the categories seen
    spec = MetricSpec(
        name="mix",
        kind=MetricKind.CATEGORICAL,
        categories=(*CATS, "escalate"),
        horizon=2_000,
    )
    profile = AnalysisProfile(name="p", metrics=(spec,), alpha=0.05)
    obs = CategoricalObservation(
        categories=spec.categories, baseline=(900, 70, 30, 0), canary=(905, 66, 29, 0)
    )
    result, _ = judge(profile, {"mix": obs})
    metric = result.metrics[0]
    assert metric.statistic["dof"] == 2
    assert metric.verdict is Verdict.INCONCLUSIVE


def test_pearson_chi_square_norm_stays_under_the_radial_boundaries_under_a_a() -> None:
    # the judge's boundaries on sqrt(X**2) of multinomial counts (the Bessel-process
    # approximation), 40 looks of 250 per arm with a rare category, seeded: the crossing rate of
    # the spending part stays within Monte Carlo error of its alpha share
    rng = np.random.default_rng(7)
    reps, looks, per_look, horizon = 4_000, 40, 250, 10_000
    b = rng.multinomial(per_look, MIX, size=(reps, looks)).cumsum(axis=1).astype(float)
    c = rng.multinomial(per_look, MIX, size=(reps, looks)).cumsum(axis=1).astype(float)
    n = np.arange(1, looks + 1) * per_look
    alpha = 0.05 * HORIZON_ALPHA_SHARE
    crit = radial_boundaries(
        list(n / horizon), list(n / horizon), alpha, SpendingFunction.parse("hsd:-2"), dof=2
    )
    rate = float((np.sqrt(pearson_chi2(b, c)) >= np.asarray(crit)).any(axis=1).mean())
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


def test_with_a_bake_clock_the_omnibus_projects_its_horizon_and_passes_at_the_end() -> None:
    # no declared horizon: the reserve watches alone until a tenth of the bake, then the radial
    # lattice starts with the projected horizon, which is kept; a healthy mix passes at the end
    rng = np.random.default_rng(11)
    spec = _spec(horizon=None)
    looks = 10
    b = rng.multinomial(400, MIX, size=looks).cumsum(axis=0)
    c = rng.multinomial(400, MIX, size=looks).cumsum(axis=0)
    state: JudgeState | None = None
    methods, horizons, verdicts = [], [], []
    for k in range(looks):
        clock = k / (looks - 1)
        profile = AnalysisProfile(name="p", metrics=(spec,), alpha=0.05, bake_elapsed=clock)
        result, state = judge(profile, _obs(b[k], c[k]), state)
        statistic = result.metrics[0].statistic
        methods.append(statistic["boundary"] is not None)
        horizons.append(state.metric("mix").horizon)
        verdicts.append(result.verdict)
    assert methods[0] is False  # clock 0: no horizon yet, no boundary
    assert all(methods[1:-1])
    assert horizons[1] == pytest.approx(2 * 400 * 9)  # 800 per arm at a ninth of the bake
    assert set(horizons[1:]) == {horizons[1]}
    assert verdicts[:-1] == [Verdict.INCONCLUSIVE] * (looks - 1)
    assert verdicts[-1] is Verdict.PASS
