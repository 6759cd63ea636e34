"""A fleet rollout's progress from look to look: next wave on a pass, hold at a deadline, a
failed wave ends it, rollbacks are frozen, judged models become controls of later waves."""

from __future__ import annotations

from analyzer.domain.fleet import ModelPhase, RateWindows
from analyzer.domain.verdict import Verdict
from analyzer.fleets.judge import ModelJudgement, WaveJudgement
from analyzer.fleets.plan import WaveSpec, cut_waves
from analyzer.fleets.progress import (
    FleetStatus,
    abort,
    after_look,
    initial_state,
    resume,
    start_next,
    wave_look,
)

MODELS = [f"m-{i:02d}" for i in range(20)]
PLAN = [WaveSpec(percent=p, dwell_seconds=600, deadline_seconds=1800) for p in (10, 50, 100)]
WAVES = cut_waves("fleet", MODELS, PLAN)


def _judgement(
    verdict: Verdict, *, final: bool, rollbacks: tuple[str, ...] = (), wave: int = 0
) -> WaveJudgement:
    models = tuple(
        ModelJudgement(
            model=m,
            log_e=9.0 if m in rollbacks else 0.1,
            log_e_safety=None,
            rolled_back=m in rollbacks,
            rollback_now=m in rollbacks,
            reason="",
            metrics={},
        )
        for m in WAVES[wave][1]
    )
    return WaveJudgement(
        verdict=verdict,
        reason="r",
        final=final,
        rollbacks=rollbacks,
        models=models,
        pooled={},
        thresholds={},
    )


def test_a_pass_starts_the_next_wave_and_rollbacks_are_frozen() -> None:
    state, first = initial_state(WAVES, now=0.0)
    assert first == WAVES[0][1]
    assert state.models_in(ModelPhase.UPGRADED) == first
    bad = first[0]
    step = after_look(
        state, WAVES, _judgement(Verdict.INCONCLUSIVE, final=False, rollbacks=(bad,)), now=300.0
    )
    assert step.rollbacks == (bad,)
    assert step.upgrades == ()
    assert step.state.phases[bad] is ModelPhase.ROLLED_BACK
    assert step.state.frozen[bad] == 9.0
    step = after_look(step.state, WAVES, _judgement(Verdict.PASS, final=True), now=900.0)
    assert step.upgrades == WAVES[1][1]
    assert step.state.wave == 1
    assert step.state.wave_started_at == 900.0
    assert all(step.state.phases[m] is ModelPhase.JUDGED for m in first[1:])
    assert step.state.phases[bad] is ModelPhase.ROLLED_BACK


def test_judged_models_become_controls_once_their_move_predates_the_mirror_window() -> None:
    state, _ = initial_state(WAVES, now=0.0)
    state = after_look(state, WAVES, _judgement(Verdict.PASS, final=True), now=1000.0).state
    counts: dict[str, dict[str, RateWindows]] = {}
    early = wave_look(
        state, WAVES, counts, now=1600.0
    )  # mirror window starts at 400: after the move at 0
    judged = set(WAVES[0][1])
    assert judged <= set(early.controls)
    late = wave_look(state, WAVES, counts, now=2100.0)  # mirror window starts at -100: before it
    assert not judged & set(late.controls)
    assert set(WAVES[2][1]) <= set(late.controls)  # the waiting models always are
    assert late.dwell_over
    assert not late.deadline


def test_a_deadline_holds_the_fleet_and_an_operator_can_resume_it() -> None:
    state, _ = initial_state(WAVES, now=0.0)
    held = after_look(state, WAVES, _judgement(Verdict.INCONCLUSIVE, final=True), now=1800.0)
    assert held.state.status is FleetStatus.HELD
    assert held.upgrades == ()
    resumed = resume(held.state, WAVES, now=2000.0, reason="accepted by alice")
    assert resumed.state.status is FleetStatus.PROGRESSING
    assert resumed.upgrades == WAVES[1][1]


def test_a_failed_wave_ends_the_fleet_and_abort_sends_everyone_back() -> None:
    state, first = initial_state(WAVES, now=0.0)
    failed = after_look(
        state, WAVES, _judgement(Verdict.FAIL, final=True, rollbacks=first), now=60.0
    )
    assert failed.state.status is FleetStatus.FAILED
    assert failed.state.status.terminal
    assert failed.rollbacks == first
    state = after_look(state, WAVES, _judgement(Verdict.PASS, final=True), now=900.0).state
    aborted = abort(state, reason="stop")
    assert aborted.state.status is FleetStatus.ABORTED
    assert set(aborted.rollbacks) == set(WAVES[0][1]) | set(WAVES[1][1])


def test_the_last_wave_passing_completes_the_fleet() -> None:
    state, _ = initial_state(WAVES, now=0.0)
    for k in range(len(WAVES)):
        state = after_look(
            state, WAVES, _judgement(Verdict.PASS, final=True, wave=k), now=1000.0 * (k + 1)
        ).state
    assert state.status is FleetStatus.COMPLETED
    assert len(state.models_in(ModelPhase.JUDGED)) == len(MODELS)


def test_a_pass_waits_for_the_next_waves_gates() -> None:
    state, first = initial_state(WAVES, now=0.0)
    step = after_look(
        state, WAVES, _judgement(Verdict.PASS, final=True), now=900.0,
        next_open=False, gate_reason="change_window: freeze until Monday",
    )  # fmt: skip
    assert step.upgrades == ()
    assert step.state.gated
    assert step.state.wave == 0
    assert step.state.status is FleetStatus.PROGRESSING
    assert "freeze until Monday" in step.state.reason
    assert all(step.state.phases[m] is ModelPhase.JUDGED for m in first)
    assert all(step.state.phases[m] is ModelPhase.WAITING for m in WAVES[1][1])
    moved = start_next(step.state, WAVES, now=2000.0, reason="gates open")
    assert moved.upgrades == WAVES[1][1]
    assert moved.state.wave == 1
    assert not moved.state.gated
    assert moved.state.wave_started_at == 2000.0
