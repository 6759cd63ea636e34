"""How a fleet rollout moves from look to look (pure): the state, and what a wave's judgement
does to it. The engine performs the moves this asks for and records them; the benchmark runs
the same rules on simulated counts.

States: ``progressing`` (a wave is being judged), ``held`` (a wave reached its deadline without
passing: nothing more moves until an operator resumes or aborts), ``failed`` (a wave failed:
its models went back, later waves never start), ``completed`` (every wave passed), ``aborted``
(an operator sent every upgraded model back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from analyzer.domain.fleet import FleetCounts, ModelPhase
from analyzer.domain.verdict import Verdict
from analyzer.fleets.judge import WaveJudgement, WaveLook
from analyzer.fleets.plan import WaveSpec


class FleetStatus(StrEnum):
    PROGRESSING = "progressing"
    HELD = "held"
    FAILED = "failed"
    COMPLETED = "completed"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self in (FleetStatus.FAILED, FleetStatus.COMPLETED, FleetStatus.ABORTED)


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetState:
    """Where a fleet rollout stands. Times are unix seconds. ``wave_started_at`` ends the mirror
    window (the first move of the wave was asked then); ``wave_ready_at`` starts the window
    since the upgrade (every model of the wave was loaded and ready then)."""

    status: FleetStatus
    wave: int
    wave_started_at: float
    wave_ready_at: float
    phases: Mapping[str, ModelPhase]
    frozen: Mapping[str, float] = field(default_factory=dict)
    upgraded_at: Mapping[str, float] = field(default_factory=dict)  # when each model moved
    reason: str = ""
    # the current wave passed and the next one waits for its promotion gates to open
    gated: bool = False

    def models_in(self, phase: ModelPhase) -> tuple[str, ...]:
        return tuple(m for m, p in self.phases.items() if p is phase)


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """What the engine must do after a look: roll ``rollbacks`` back, then upgrade ``upgrades``
    (the next wave), then store ``state``."""

    state: FleetState
    rollbacks: tuple[str, ...]
    upgrades: tuple[str, ...]


def initial_state(
    waves: Sequence[tuple[WaveSpec, tuple[str, ...]]], *, now: float
) -> tuple[FleetState, tuple[str, ...]]:
    """The state at the start, and the first wave's models to upgrade."""
    phases = {m: ModelPhase.WAITING for _, models in waves for m in models}
    first = waves[0][1]
    for m in first:
        phases[m] = ModelPhase.UPGRADED
    state = FleetState(
        status=FleetStatus.PROGRESSING,
        wave=0,
        wave_started_at=now,
        wave_ready_at=now,
        phases=phases,
        upgraded_at=dict.fromkeys(first, now),
        reason="wave 1 moving",
    )
    return state, first


def wave_look(
    state: FleetState,
    waves: Sequence[tuple[WaveSpec, tuple[str, ...]]],
    counts: FleetCounts,
    *,
    now: float,
) -> WaveLook:
    """The judge's input for the current wave at ``now``: its models, its controls, the stopped
    e-values of those already rolled back, and where its clock is.

    A control is a model that serves the same version in both windows: one still waiting (old
    in both), or one judged in an earlier wave whose move came before the mirror window began
    (new in both). The latter give the last wave, when no model waits any more, its controls.
    Which models qualify depends on the clock alone, never on the data.
    """
    spec, models = waves[state.wave]
    elapsed = now - state.wave_ready_at
    mirror_start = state.wave_started_at - elapsed
    members = set(models)
    controls = tuple(
        m
        for m, p in state.phases.items()
        if p is ModelPhase.WAITING
        or (p is ModelPhase.JUDGED and state.upgraded_at.get(m, now) <= mirror_start)
    )
    return WaveLook(
        wave=models,
        controls=controls,
        counts=counts,
        frozen={m: v for m, v in state.frozen.items() if m in members},
        dwell_over=elapsed >= spec.dwell_seconds,
        deadline=elapsed >= spec.deadline_seconds,
    )


def after_look(
    state: FleetState,
    waves: Sequence[tuple[WaveSpec, tuple[str, ...]]],
    judgement: WaveJudgement,
    *,
    now: float,
    next_open: bool = True,
    gate_reason: str = "",
) -> Step:
    """Apply one wave judgement: roll back who must go, and start the next wave on a pass
    (when ``next_open``: its gates are open; otherwise the fleet waits, ``gated``)."""
    phases = dict(state.phases)
    frozen = dict(state.frozen)
    by_model = {j.model: j for j in judgement.models}
    for m in judgement.rollbacks:
        phases[m] = ModelPhase.ROLLED_BACK
        frozen[m] = by_model[m].log_e
    wave_no = state.wave + 1
    if judgement.verdict is Verdict.FAIL:
        reason = f"wave {wave_no} failed: {judgement.reason}"
        new = replace(state, status=FleetStatus.FAILED, phases=phases, frozen=frozen, reason=reason)
        return Step(state=new, rollbacks=judgement.rollbacks, upgrades=())
    if not judgement.final:
        new = replace(state, phases=phases, frozen=frozen, reason=judgement.reason)
        return Step(state=new, rollbacks=judgement.rollbacks, upgrades=())
    if judgement.verdict is not Verdict.PASS:
        reason = f"wave {wave_no} held: {judgement.reason}"
        new = replace(state, status=FleetStatus.HELD, phases=phases, frozen=frozen, reason=reason)
        return Step(state=new, rollbacks=judgement.rollbacks, upgrades=())
    for m in waves[state.wave][1]:
        if phases[m] is ModelPhase.UPGRADED:
            phases[m] = ModelPhase.JUDGED
    passed = replace(state, phases=phases, frozen=frozen)
    if wave_no == len(waves):
        done = replace(passed, status=FleetStatus.COMPLETED, reason=f"all {wave_no} waves passed")
        return Step(state=done, rollbacks=judgement.rollbacks, upgrades=())
    if not next_open:
        reason = f"wave {wave_no} passed; wave {wave_no + 1} waits for its gates: {gate_reason}"
        waiting = replace(passed, gated=True, reason=reason)
        return Step(state=waiting, rollbacks=judgement.rollbacks, upgrades=())
    step = start_next(passed, waves, now=now, reason=f"wave {wave_no} passed")
    return Step(state=step.state, rollbacks=judgement.rollbacks, upgrades=step.upgrades)


def start_next(
    state: FleetState,
    waves: Sequence[tuple[WaveSpec, tuple[str, ...]]],
    *,
    now: float,
    reason: str,
) -> Step:
    """Move on to the wave after ``state.wave`` (its gates, if any, are open)."""
    wave_no = state.wave + 1
    upgrades = waves[wave_no][1]
    phases = {**state.phases, **dict.fromkeys(upgrades, ModelPhase.UPGRADED)}
    new = FleetState(
        status=FleetStatus.PROGRESSING,
        wave=wave_no,
        wave_started_at=now,
        wave_ready_at=now,
        phases=phases,
        frozen=state.frozen,
        upgraded_at={**state.upgraded_at, **dict.fromkeys(upgrades, now)},
        reason=f"{reason}; wave {wave_no + 1} moving",
    )
    return Step(state=new, rollbacks=(), upgrades=upgrades)


def resume(
    state: FleetState,
    waves: Sequence[tuple[WaveSpec, tuple[str, ...]]],
    *,
    now: float,
    reason: str,
    next_open: bool = True,
    gate_reason: str = "",
) -> Step:
    """An operator accepts a held wave: its upgraded models are kept and the next wave starts
    when its gates are open (else the fleet waits for them, ``gated``)."""
    if state.status is not FleetStatus.HELD:
        return Step(state=state, rollbacks=(), upgrades=())
    phases = dict(state.phases)
    for m in waves[state.wave][1]:
        if phases[m] is ModelPhase.UPGRADED:
            phases[m] = ModelPhase.JUDGED
    accepted = replace(state, phases=phases, status=FleetStatus.PROGRESSING, reason=reason)
    if state.wave + 1 == len(waves):
        return Step(
            state=replace(accepted, status=FleetStatus.COMPLETED), rollbacks=(), upgrades=()
        )
    if not next_open:
        waiting = f"{reason}; wave {state.wave + 2} waits for its gates: {gate_reason}"
        return Step(state=replace(accepted, gated=True, reason=waiting), rollbacks=(), upgrades=())
    return start_next(accepted, waves, now=now, reason=reason)


def abort(state: FleetState, *, reason: str) -> Step:
    """Send every model on the new version back (upgraded or already judged)."""
    back = tuple(
        m for m, p in state.phases.items() if p in (ModelPhase.UPGRADED, ModelPhase.JUDGED)
    )
    phases = {**state.phases, **dict.fromkeys(back, ModelPhase.ROLLED_BACK)}
    new = replace(state, status=FleetStatus.ABORTED, phases=phases, reason=reason)
    return Step(state=new, rollbacks=back, upgrades=())
