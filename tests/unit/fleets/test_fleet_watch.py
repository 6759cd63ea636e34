"""The watch: models of passed waves keep being judged until the fleet ends — rolled back at
once on the wave's e-Bonferroni or safety bound, by e-BH at the watch's end — against controls
picked by the clock, and stopped (not judged on their own past alone) when none are left."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.fleet import FleetRateQuery, ModelPhase, ModelVersion, RateWindows
from analyzer.domain.verdict import Verdict
from analyzer.fleets.judge import (
    FleetMetric,
    FleetPolicy,
    ModelJudgement,
    WaveJudgement,
    WaveLook,
    judge_wave,
)
from analyzer.fleets.plan import WaveSpec, cut_waves
from analyzer.fleets.progress import (
    FleetState,
    FleetStatus,
    after_look,
    after_watch,
    initial_state,
    resume,
    watch_ends,
)
from analyzer.fleets.spec import FleetMetricSpec, FleetSpec, spec_from_json, spec_to_json
from analyzer.fleets.watch import WatchLook, judge_watch, watch_look, watch_targets

ERRORS = FleetMetric(name="errors", tolerance=0.005)
POLICY = FleetPolicy(alpha=0.05, waves=3)
MODELS = [f"m-{i:03d}" for i in range(100)]
PLAN = [WaveSpec(percent=p, dwell_seconds=600, deadline_seconds=1800) for p in (10, 50, 100)]
WAVES = cut_waves("fleet", MODELS, PLAN)


def _judgement(wave: int, verdict: Verdict, *, final: bool, log_e: float = 0.5) -> WaveJudgement:
    models = tuple(
        ModelJudgement(
            model=m, log_e=log_e, log_e_safety=None, rolled_back=False, rollback_now=False,
            reason="", metrics={},
        )
        for m in WAVES[wave][1]
    )  # fmt: skip
    return WaveJudgement(
        verdict=verdict, reason="r", final=final, rollbacks=(), models=models, pooled={},
        thresholds={},
    )  # fmt: skip


def _counts(
    rng: np.random.Generator,
    names: list[str] | tuple[str, ...],
    *,
    requests: float = 2000.0,
    after: dict[str, float] | None = None,
    drift: float = 0.0,
) -> dict[str, RateWindows]:
    out = {}
    for name in names:
        n_a, n_b = rng.poisson(requests), rng.poisson(requests)
        out[name] = RateWindows(
            after_events=float(rng.binomial(n_a, (after or {}).get(name, 0.01) + drift)),
            after_total=float(n_a),
            before_events=float(rng.binomial(n_b, 0.01)),
            before_total=float(n_b),
        )
    return out


def _first_wave_passed() -> tuple[FleetState, tuple[str, ...]]:
    state, first = initial_state(WAVES, now=0.0)
    step = after_look(state, WAVES, _judgement(0, Verdict.PASS, final=True), now=900.0)
    return step.state, first


def test_a_passed_wave_is_watched_on_its_own_windows_with_the_waiting_models_as_controls() -> None:
    state, first = _first_wave_passed()
    targets = watch_targets(state, WAVES)
    assert [(t.wave, t.before_end, t.after_start) for t in targets] == [(0, 0.0, 0.0)]
    look = watch_look(state, WAVES, targets[0], {}, now=3000.0, final=False)
    assert look.models == first
    assert set(look.controls) == set(WAVES[2][1])  # still waiting; wave 2's moved in the window
    assert look.stopped == dict.fromkeys(first, 0.5)  # its last e-values, kept at the pass


def test_a_harmful_model_found_after_its_wave_passed_goes_back_at_once() -> None:
    state, first = _first_wave_passed()
    rng = np.random.default_rng(1)
    bad = first[3]
    controls = WAVES[2][1]
    counts = {"errors": _counts(rng, first + controls, after={bad: 0.06}, drift=0.02)}
    look = WatchLook(
        wave=0, models=first, controls=controls, counts=counts, frozen={}, stopped={}, final=False
    )
    got = judge_watch([ERRORS], POLICY, look)
    assert got.rollbacks == (bad,)  # the shared +2 points are the controls', not the version's
    assert got.verdict is Verdict.INCONCLUSIVE
    assert "e-Bonferroni" in got.models[3].reason
    step = after_look(
        state, WAVES, _judgement(1, Verdict.INCONCLUSIVE, final=False), now=1500.0, watched=[got]
    )
    assert step.rollbacks == (bad,)
    assert step.state.phases[bad] is ModelPhase.ROLLED_BACK
    assert step.state.frozen[bad] == got.models[3].log_e
    assert step.state.status is FleetStatus.PROGRESSING


def test_without_controls_the_e_process_is_stopped_and_a_time_effect_rolls_nothing_back() -> None:
    first = WAVES[0][1]
    rng = np.random.default_rng(2)
    counts = {"errors": _counts(rng, first, drift=0.05)}  # everyone +5 points: time, not version
    stopped = dict.fromkeys(first, 1.25)
    look = WatchLook(
        wave=0, models=first, controls=(), counts=counts, frozen={}, stopped=stopped, final=True
    )
    got = judge_watch([ERRORS], POLICY, look)
    assert got.rollbacks == ()
    assert [m.log_e for m in got.models] == [1.25] * len(first)
    # what judging on the model's own past alone would have done
    own_past = judge_wave([ERRORS], POLICY, WaveLook(wave=first, controls=(), counts=counts))
    assert own_past.verdict is Verdict.FAIL


def test_the_safety_check_runs_on_without_controls() -> None:
    first = WAVES[0][1]
    quiet = RateWindows(after_events=0, after_total=30, before_events=0, before_total=30)
    broken = RateWindows(after_events=15, after_total=30, before_events=0, before_total=30)
    counts = {"errors": {**dict.fromkeys(first, quiet), first[1]: broken}}
    metric = FleetMetric(name="errors", tolerance=0.005, safety_max=0.05)
    look = WatchLook(
        wave=0, models=first, controls=(), counts=counts, frozen={}, stopped={}, final=False
    )
    got = judge_watch([metric], POLICY, look)
    assert got.rollbacks == (first[1],)
    assert "safety" in got.models[1].reason


def test_e_bh_acts_at_the_watch_end_and_keeps_earlier_rollbacks_in_its_set() -> None:
    first = WAVES[0][1]  # 10 models
    limits = POLICY.thresholds(len(first))
    # three models moderately above 1, below the e-Bonferroni bound: e-BH at q takes all three
    # when e >= m / (3 q); one was rolled back earlier at its wave's e-BH (frozen)
    moderate = limits["model_at_once"] - np.log(3) + 0.2
    stopped = {first[0]: moderate, first[1]: moderate, first[2]: 0.1}
    frozen = {first[3]: moderate}
    look = WatchLook(
        wave=0, models=first, controls=(), counts={}, frozen=frozen, stopped=stopped, final=False
    )
    during = judge_watch([ERRORS], POLICY, look)
    assert during.rollbacks == ()  # below the bound that may act at once
    end = judge_watch([ERRORS], POLICY, WatchLook(
        wave=0, models=first, controls=(), counts={}, frozen=frozen, stopped=stopped, final=True,
    ))  # fmt: skip
    assert end.verdict is Verdict.PASS
    assert end.final
    assert end.rollbacks == (first[0], first[1])
    assert end.models[3].rolled_back  # the earlier rollback is in the final e-BH set
    assert not end.models[3].rollback_now


def test_the_last_wave_pass_starts_the_post_completion_watch_which_completes_the_fleet() -> None:
    state, _ = initial_state(WAVES, now=0.0)
    state = after_look(state, WAVES, _judgement(0, Verdict.PASS, final=True), now=900.0).state
    state = after_look(state, WAVES, _judgement(1, Verdict.PASS, final=True), now=1800.0).state
    last = _judgement(2, Verdict.PASS, final=True)
    assert not watch_ends(state, WAVES, last, now=2700.0, watch_seconds=3600.0)
    assert watch_ends(state, WAVES, last, now=2700.0, watch_seconds=0.0)
    assert not watch_ends(
        state, WAVES, _judgement(2, Verdict.INCONCLUSIVE, final=True), now=2700.0,
        watch_seconds=0.0,
    )  # fmt: skip  # a held fleet may be resumed: the watch goes on
    watching = after_look(state, WAVES, last, now=2700.0, watch_seconds=3600.0).state
    assert watching.status is FleetStatus.PROGRESSING
    assert watching.watch_until == 6300.0
    assert [t.wave for t in watch_targets(watching, WAVES)] == [0, 1, 2]
    assert not watch_ends(watching, WAVES, None, now=6000.0, watch_seconds=3600.0)
    assert after_watch(watching, [], now=6000.0).state.status is FleetStatus.PROGRESSING
    assert watch_ends(watching, WAVES, None, now=6300.0, watch_seconds=3600.0)
    done = after_watch(watching, [], now=6300.0).state
    assert done.status is FleetStatus.COMPLETED
    without = after_look(state, WAVES, last, now=2700.0).state
    assert without.status is FleetStatus.COMPLETED


def test_a_failed_wave_ends_the_watch_and_a_resumed_last_wave_starts_it() -> None:
    state, _ = _first_wave_passed()
    assert watch_ends(state, WAVES, _judgement(1, Verdict.FAIL, final=True), now=1.0,
                      watch_seconds=60.0)  # fmt: skip
    s, _ = initial_state(WAVES, now=0.0)
    for k in (0, 1):
        s = after_look(s, WAVES, _judgement(k, Verdict.PASS, final=True), now=900.0 * (k + 1)).state
    held = after_look(s, WAVES, _judgement(2, Verdict.INCONCLUSIVE, final=True), now=4000.0).state
    assert held.status is FleetStatus.HELD
    resumed = resume(held, WAVES, now=5000.0, reason="ok", watch_seconds=600.0).state
    assert resumed.status is FleetStatus.PROGRESSING
    assert resumed.watch_until == 5600.0
    assert 2 in resumed.windows


def test_the_watch_and_a_latency_share_survive_the_specs_json() -> None:
    slow = FleetMetricSpec(
        metric=FleetMetric(name="slow", tolerance=0.02),
        query=FleetRateQuery(
            name="slow", good='lat_bucket{le="500.0"}', total='lat_bucket{le="+Inf"}',
            model_label="vModelId",
        ),
    )  # fmt: skip
    spec = FleetSpec(
        name="anomaly-v2", namespace="merchants", models=tuple(MODELS),
        version=ModelVersion(name="v2", storage_uri="s3://m/{model}/v2"), from_version="v1",
        plan=tuple(PLAN), metrics=(slow,), watch_seconds=1800.0,
    )  # fmt: skip
    again = spec_from_json(spec_to_json(spec))
    assert again == spec
    assert again.metrics[0].query.events is None
    with pytest.raises(InvalidInputError, match="zero or positive"):
        FleetSpec(**{**{f: getattr(spec, f) for f in spec.__slots__}, "watch_seconds": -1.0})
    with pytest.raises(InvalidInputError, match="either events"):
        FleetRateQuery(name="x", total="t", events="e", good="g")
    with pytest.raises(InvalidInputError, match="either events"):
        FleetRateQuery(name="x", total="t")
