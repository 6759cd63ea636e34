"""One look at one wave: harmful models rolled back at once, the wave's pooled rule, e-BH at the
wave's end, concurrent controls against time effects, and the exact safety check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.fleet import RateWindows
from analyzer.domain.verdict import Verdict
from analyzer.fleets.judge import FleetMetric, FleetPolicy, WaveLook, judge_wave

ERRORS = FleetMetric(name="errors", tolerance=0.005)
POLICY = FleetPolicy(alpha=0.05, waves=4)


def _counts(
    rng: np.random.Generator,
    names: list[str],
    *,
    requests: float = 3000.0,
    rate: float = 0.01,
    after: dict[str, float] | None = None,
    drift: float = 0.0,
) -> dict[str, RateWindows]:
    """Binomial counts per model; ``after`` overrides a model's new-version rate; ``drift`` is
    a time effect added to every model's after-window rate."""
    out = {}
    for name in names:
        n_a, n_b = rng.poisson(requests), rng.poisson(requests)
        p_after = (after or {}).get(name, rate) + drift
        out[name] = RateWindows(
            after_events=float(rng.binomial(n_a, p_after)),
            after_total=float(n_a),
            before_events=float(rng.binomial(n_b, rate)),
            before_total=float(n_b),
        )
    return out


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(n)]


def test_a_harmful_model_is_rolled_back_at_once_while_the_wave_goes_on() -> None:
    rng = np.random.default_rng(1)
    wave, controls = _names("w", 40), _names("c", 200)
    counts = _counts(rng, wave + controls, after={"w-007": 0.08})
    got = judge_wave(
        [ERRORS],
        POLICY,
        WaveLook(wave=tuple(wave), controls=tuple(controls), counts={"errors": counts}),
    )
    assert got.rollbacks == ("w-007",)
    assert got.verdict is Verdict.INCONCLUSIVE
    assert not got.final
    bad = got.models[7]
    assert bad.rolled_back
    assert bad.rollback_now
    assert "harmful" in bad.reason
    assert bad.log_e >= got.thresholds["model_at_once"]
    assert sum(m.rolled_back for m in got.models) == 1


def test_an_a_a_wave_passes_after_its_dwell_with_nothing_rolled_back() -> None:
    rng = np.random.default_rng(2)
    wave, controls = _names("w", 40), _names("c", 200)
    counts = {"errors": _counts(rng, wave + controls)}
    early = judge_wave(
        [ERRORS], POLICY, WaveLook(wave=tuple(wave), controls=tuple(controls), counts=counts)
    )
    assert early.verdict is Verdict.INCONCLUSIVE  # the dwell is not over
    done = judge_wave(
        [ERRORS],
        POLICY,
        WaveLook(wave=tuple(wave), controls=tuple(controls), counts=counts, dwell_over=True),
    )
    assert done.verdict is Verdict.PASS
    assert done.final
    assert done.rollbacks == ()
    assert done.pooled["e"]["pass_log_e"] >= done.thresholds["pooled_pass"]


def test_a_wave_harmful_everywhere_fails_on_pooled_evidence_and_goes_back_whole() -> None:
    rng = np.random.default_rng(3)
    wave, controls = _names("w", 40), _names("c", 200)
    # each model a little worse: too little per model, plain when pooled
    counts = _counts(rng, wave + controls, requests=400, after=dict.fromkeys(wave, 0.03))
    got = judge_wave(
        [ERRORS],
        POLICY,
        WaveLook(wave=tuple(wave), controls=tuple(controls), counts={"errors": counts}),
    )
    assert got.verdict is Verdict.FAIL
    assert got.final
    assert "pooled" in got.reason
    assert got.rollbacks == tuple(wave)


def test_too_many_harmful_models_fail_the_wave() -> None:
    rng = np.random.default_rng(4)
    wave, controls = _names("w", 20), _names("c", 100)
    counts = _counts(rng, wave + controls, after=dict.fromkeys(wave[:5], 0.2))
    got = judge_wave(
        [ERRORS],
        FleetPolicy(waves=4, max_rollback_share=0.1, pooled_share=0.1, model_share=0.7),
        WaveLook(wave=tuple(wave), controls=tuple(controls), counts={"errors": counts}),
    )
    assert got.verdict is Verdict.FAIL
    assert set(got.rollbacks) == set(wave)


def test_a_time_effect_shared_with_the_controls_rolls_nothing_back() -> None:
    rng = np.random.default_rng(5)
    wave, controls = _names("w", 40), _names("c", 200)
    counts = {"errors": _counts(rng, wave + controls, drift=0.03)}
    with_controls = judge_wave(
        [ERRORS], POLICY, WaveLook(wave=tuple(wave), controls=tuple(controls), counts=counts)
    )
    assert with_controls.rollbacks == ()
    assert with_controls.verdict is not Verdict.FAIL
    own_past_only = judge_wave(
        [ERRORS], POLICY, WaveLook(wave=tuple(wave), controls=(), counts=counts)
    )
    assert own_past_only.verdict is Verdict.FAIL  # why the concurrent controls are there


def test_rolled_back_models_keep_their_stopped_e_value() -> None:
    rng = np.random.default_rng(6)
    wave, controls = _names("w", 40), _names("c", 100)
    counts = {"errors": _counts(rng, wave + controls)}
    got = judge_wave(
        [ERRORS],
        POLICY,
        WaveLook(wave=tuple(wave), controls=tuple(controls), counts=counts, frozen={"w-003": 12.5}),
    )
    frozen = got.models[3]
    assert frozen.log_e == 12.5
    assert frozen.rolled_back
    assert not frozen.rollback_now
    assert "w-003" not in got.rollbacks


def test_e_bh_acts_once_at_the_wave_end_on_moderate_evidence() -> None:
    # four models each below the e-Bonferroni bound m/q but above m/(4q): e-BH takes all four
    wave = tuple(_names("w", 40))
    policy = FleetPolicy(waves=1, max_rollback_share=0.2)
    limits = policy.thresholds(len(wave))
    null = RateWindows(after_events=30, after_total=3000, before_events=30, before_total=3000)

    def look(x: int, *, dwell_over: bool) -> WaveLook:
        moderate = RateWindows(
            after_events=x, after_total=3000, before_events=30, before_total=3000
        )
        per_model = {name: moderate if i < 4 else null for i, name in enumerate(wave)}
        return WaveLook(wave=wave, controls=(), counts={"errors": per_model}, dwell_over=dwell_over)

    lower = limits["model_at_once"] - math.log(4)
    x = next(
        x
        for x in range(30, 300)
        if lower + 0.1 < judge_wave([ERRORS], policy, look(x, dwell_over=False)).models[0].log_e
    )
    during = judge_wave([ERRORS], policy, look(x, dwell_over=False))
    assert during.models[0].log_e < limits["model_at_once"]
    assert during.rollbacks == ()  # not at once: below the e-Bonferroni bound
    end = judge_wave([ERRORS], policy, look(x, dwell_over=True))
    assert end.final
    assert end.rollbacks == tuple(wave[:4])
    assert all("e-BH" in m.reason for m in end.models[:4])


def test_a_low_traffic_model_far_above_its_safety_bound_is_rolled_back() -> None:
    wave = tuple(_names("w", 10))
    quiet = RateWindows(after_events=0, after_total=20, before_events=0, before_total=20)
    broken = RateWindows(after_events=12, after_total=20, before_events=0, before_total=20)
    counts = {"errors": {**dict.fromkeys(wave, quiet), "w-004": broken}}
    metric = FleetMetric(name="errors", tolerance=0.005, safety_max=0.05)
    got = judge_wave(
        [metric],
        FleetPolicy(waves=1, max_rollback_share=0.2),
        WaveLook(wave=wave, controls=(), counts=counts),
    )
    assert got.rollbacks == ("w-004",)
    assert got.models[4].log_e_safety is not None
    assert got.models[4].log_e_safety >= got.thresholds["safety"]


def test_the_deadline_without_evidence_ends_the_wave_without_a_pass() -> None:
    wave = tuple(_names("w", 5))
    counts = {
        "errors": dict.fromkeys(
            wave, RateWindows(after_events=0, after_total=3, before_events=0, before_total=3)
        )
    }
    got = judge_wave(
        [ERRORS],
        POLICY,
        WaveLook(wave=wave, controls=(), counts=counts, dwell_over=True, deadline=True),
    )
    assert got.verdict is Verdict.INCONCLUSIVE
    assert got.final
    assert "holds" in got.reason
    missing = judge_wave(
        [ERRORS], POLICY, WaveLook(wave=wave, controls=(), counts={}, dwell_over=True)
    )
    assert missing.verdict is Verdict.INCONCLUSIVE
    assert not missing.final


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        judge_wave([], POLICY, WaveLook(wave=("a",), controls=(), counts={}))
    with pytest.raises(InvalidInputError):
        judge_wave([ERRORS], POLICY, WaveLook(wave=(), controls=(), counts={}))
    with pytest.raises(InvalidInputError, match="events exceed"):
        RateWindows(after_events=5, after_total=4, before_events=0, before_total=1)
    with pytest.raises(InvalidInputError, match="sum to 1"):
        FleetPolicy(model_share=0.5, pooled_share=0.5, safety_share=0.5)
    with pytest.raises(InvalidInputError):
        FleetMetric(name="x", tolerance=-0.1)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_a_a_waves_roll_back_rarely_and_never_fail_wholesale(seed: int) -> None:
    rng = np.random.default_rng(seed)
    wave, controls = _names("w", 30), _names("c", 60)
    counts = {"errors": _counts(rng, wave + controls, requests=500)}
    got = judge_wave(
        [ERRORS],
        POLICY,
        WaveLook(wave=tuple(wave), controls=tuple(controls), counts=counts, dwell_over=True),
    )
    # one A/A look: the e-values are far below every bound (a false rollback here would be a
    # ~1-in-80 event per wave, and Hypothesis tries 40 seeds: a bug shows as many)
    assert got.verdict is not Verdict.FAIL
    assert len(got.rollbacks) <= 1


def test_false_discoveries_stay_under_the_bound_with_many_harmful_models() -> None:
    # 300 seeded waves of 40 busy models, 8 of them harmful: the share of rollbacks that hit a
    # harmless model (the FDP), averaged, must stay under e-BH's level. Seeded: a regression in
    # the rules shows as a number, not as flakiness.
    rng = np.random.default_rng(20261206)
    policy = FleetPolicy(waves=1, max_rollback_share=1.0, tolerated_rollbacks=40)
    level = policy.wave_alpha * policy.model_share
    fdp, caught = [], 0
    for _ in range(300):
        wave = _names("w", 40)
        bad = set(wave[:8])
        counts = _counts(rng, wave, requests=1500, after=dict.fromkeys(bad, 0.045))
        got = judge_wave(
            [ERRORS], policy, WaveLook(wave=tuple(wave), controls=(), counts={"errors": counts},
                                       dwell_over=True, deadline=True),
        )  # fmt: skip
        rolled = set(got.rollbacks)
        caught += len(rolled & bad)
        fdp.append(len(rolled - bad) / max(len(rolled), 1))
    assert float(np.mean(fdp)) <= level
    assert caught > 0.5 * 300 * 8  # and it finds most of the harmful ones
