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
    # wave -> (wave_started_at, wave_ready_at) of every wave that passed: the windows its
    # models keep being watched on after it (analyzer/fleets/watch.py)
    windows: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    # each judged model's latest decision log e-value: its e-process, stopped where the clock
    # leaves its wave without controls
    last_log_e: Mapping[str, float] = field(default_factory=dict)
    # every wave passed and the upgraded models are watched until then (unix seconds)
    watch_until: float | None = None

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
    watched: Sequence[WaveJudgement] = (),
    watch_seconds: float = 0.0,
) -> Step:
    """Apply one wave judgement (and the judgements of the earlier waves still watched): roll
    back who must go, and start the next wave on a pass (when ``next_open``: its gates are open;
    otherwise the fleet waits, ``gated``). The last wave's pass completes the fleet, or starts
    its post-completion watch of ``watch_seconds``."""
    phases, frozen, last = dict(state.phases), dict(state.frozen), dict(state.last_log_e)
    back = _record(phases, frozen, last, [*watched, judgement])
    wave_no = state.wave + 1
    if judgement.verdict is Verdict.FAIL:
        reason = f"wave {wave_no} failed: {judgement.reason}"
        new = replace(
            state, status=FleetStatus.FAILED, phases=phases, frozen=frozen, last_log_e=last,
            reason=reason,
        )  # fmt: skip
        return Step(state=new, rollbacks=back, upgrades=())
    if not judgement.final:
        new = replace(state, phases=phases, frozen=frozen, last_log_e=last, reason=judgement.reason)
        return Step(state=new, rollbacks=back, upgrades=())
    if judgement.verdict is not Verdict.PASS:
        reason = f"wave {wave_no} held: {judgement.reason}"
        new = replace(
            state, status=FleetStatus.HELD, phases=phases, frozen=frozen, last_log_e=last,
            reason=reason,
        )  # fmt: skip
        return Step(state=new, rollbacks=back, upgrades=())
    passed = _passed(replace(state, phases=phases, frozen=frozen, last_log_e=last), waves)
    if wave_no == len(waves):
        done = _after_last(passed, wave_no, now=now, watch_seconds=watch_seconds, reason="")
        return Step(state=done, rollbacks=back, upgrades=())
    if not next_open:
        reason = f"wave {wave_no} passed; wave {wave_no + 1} waits for its gates: {gate_reason}"
        waiting = replace(passed, gated=True, reason=reason)
        return Step(state=waiting, rollbacks=back, upgrades=())
    step = start_next(passed, waves, now=now, reason=f"wave {wave_no} passed")
    return Step(state=step.state, rollbacks=back, upgrades=step.upgrades)


def _record(
    phases: dict[str, ModelPhase],
    frozen: dict[str, float],
    last: dict[str, float],
    judgements: Sequence[WaveJudgement],
) -> tuple[str, ...]:
    """Mark the judgements' rollbacks (their e-processes stop there) and keep every other
    model's latest e-value; return the rollbacks."""
    back: list[str] = []
    for judgement in judgements:
        for j in judgement.models:
            if j.model in judgement.rollbacks:
                phases[j.model] = ModelPhase.ROLLED_BACK
                frozen[j.model] = j.log_e
            elif not j.rolled_back:
                last[j.model] = j.log_e
        back.extend(judgement.rollbacks)
    return tuple(back)


def _passed(state: FleetState, waves: Sequence[tuple[WaveSpec, tuple[str, ...]]]) -> FleetState:
    """The current wave passed: its upgraded models are judged, and its windows kept (its
    models are watched on them from now on)."""
    phases = dict(state.phases)
    for m in waves[state.wave][1]:
        if phases[m] is ModelPhase.UPGRADED:
            phases[m] = ModelPhase.JUDGED
    window = (state.wave_started_at, state.wave_ready_at)
    return replace(state, phases=phases, windows={**state.windows, state.wave: window})


def _after_last(
    passed: FleetState, waves: int, *, now: float, watch_seconds: float, reason: str
) -> FleetState:
    prefix = f"{reason}; " if reason else ""
    if watch_seconds > 0:
        return replace(
            passed,
            status=FleetStatus.PROGRESSING,
            watch_until=now + watch_seconds,
            reason=f"{prefix}all {waves} waves passed; the upgraded models are watched for "
            f"{watch_seconds:g} s more",
        )
    return replace(passed, status=FleetStatus.COMPLETED, reason=f"{prefix}all {waves} waves passed")


def after_watch(state: FleetState, watched: Sequence[WaveJudgement], *, now: float) -> Step:
    """A look in the post-completion watch: roll back who must go; at its end the fleet is
    completed."""
    phases, frozen, last = dict(state.phases), dict(state.frozen), dict(state.last_log_e)
    back = _record(phases, frozen, last, watched)
    new = replace(state, phases=phases, frozen=frozen, last_log_e=last)
    if state.watch_until is not None and now >= state.watch_until:
        new = replace(
            new, status=FleetStatus.COMPLETED, watch_until=None,
            reason="every wave passed and the watch is over",
        )  # fmt: skip
    return Step(state=new, rollbacks=back, upgrades=())


def watch_ends(
    state: FleetState,
    waves: Sequence[tuple[WaveSpec, tuple[str, ...]]],
    judgement: WaveJudgement | None,
    *,
    now: float,
    watch_seconds: float,
) -> bool:
    """Is this look the watch's stopping time (the fleet ends with it)? Then e-BH is applied
    once to every watched wave. ``judgement`` is the current wave's (None in the
    post-completion watch). A held fleet is not the end: it may be resumed."""
    if state.watch_until is not None:
        return now >= state.watch_until
    if judgement is None:
        return False
    if judgement.verdict is Verdict.FAIL:
        return True
    last = state.wave + 1 == len(waves)
    return last and judgement.final and judgement.verdict is Verdict.PASS and watch_seconds <= 0


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
    new = replace(
        state,
        status=FleetStatus.PROGRESSING,
        wave=wave_no,
        wave_started_at=now,
        wave_ready_at=now,
        phases=phases,
        upgraded_at={**state.upgraded_at, **dict.fromkeys(upgrades, now)},
        reason=f"{reason}; wave {wave_no + 1} moving",
        gated=False,
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
    watch_seconds: float = 0.0,
) -> Step:
    """An operator accepts a held wave: its upgraded models are kept and the next wave starts
    when its gates are open (else the fleet waits for them, ``gated``)."""
    if state.status is not FleetStatus.HELD:
        return Step(state=state, rollbacks=(), upgrades=())
    accepted = replace(_passed(state, waves), status=FleetStatus.PROGRESSING, reason=reason)
    if state.wave + 1 == len(waves):
        done = _after_last(
            accepted, len(waves), now=now, watch_seconds=watch_seconds, reason=reason
        )
        return Step(state=done, rollbacks=(), upgrades=())
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
