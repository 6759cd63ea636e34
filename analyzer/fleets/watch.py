"""Watching the models of waves that passed, until the fleet ends (pure).

A model upgraded in wave *k* keeps being judged after its wave passes — through the later waves
and, when the fleet names one, a post-completion watch — because a quiet model gathers too
little evidence in its own wave's dwell. Its evidence is the same process continued: the
difference in differences on its wave's windows (the window since its wave's upgrade, and the
mirror window of the same length before the wave's first move), which both keep growing. Its
e-process therefore keeps accumulating, and Ville's inequality — the reason the
e-Bonferroni bound ``m / (a * model_share)`` may be acted on at any look — holds over the whole
horizon, so a watched model that crosses it goes back at once without a new budget. The exact
safety e-process goes on the same way on the counts since the upgrade.

Controls are picked by the clock alone, as in the wave's own looks: models serving the same
version in both of the watched wave's windows (still waiting, or moved before the mirror window
began). The mirror window grows backwards, so once the last wave has started a watched wave
runs out of controls; from then on its difference-in-differences e-process is *stopped* (its
last value is kept) — a stopping time set by the clock, so the stopped value is still an
e-value — rather than continued on the model's own past alone, which a time effect would turn
into false rollbacks. The safety e-process needs no controls and runs on.

At the watch's end (the look that ends the fleet) e-BH is applied once per watched wave, at the
wave's level, to every model's stopped e-value. Every model rolled back earlier — at once, or by
the e-BH at its wave's end — keeps its frozen e-value, which is at or above what that rejection
needed, so it is in this final e-BH set too: each wave's total set of rollbacks is the e-BH set
at the fleet's end, and its FDR stays at most ``a * model_share``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analyzer.domain.fleet import FleetCounts, ModelPhase
from analyzer.domain.verdict import Verdict
from analyzer.fleets.judge import (
    FleetMetric,
    FleetPolicy,
    WaveJudgement,
    WaveLook,
    model_evidence,
    model_judgements,
)
from analyzer.fleets.plan import WaveSpec
from analyzer.fleets.progress import FleetState
from analyzer.stats.fleet import e_bh_from_log


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchTarget:
    """A passed wave whose models are watched, and the two ends of its windows (unix seconds):
    the mirror window ends at ``before_end``, the window since the upgrade starts at
    ``after_start``."""

    wave: int
    before_end: float
    after_start: float


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchLook:
    """One look at one watched wave. ``frozen``: stopped e-values of its models rolled back;
    ``stopped``: the last e-values of the others (used when the wave has no controls left);
    ``final``: the watch ends with this look (e-BH acts once)."""

    wave: int
    models: tuple[str, ...]
    controls: tuple[str, ...]
    counts: FleetCounts
    frozen: Mapping[str, float]
    stopped: Mapping[str, float]
    final: bool


def watch_targets(
    state: FleetState, waves: Sequence[tuple[WaveSpec, tuple[str, ...]]]
) -> tuple[WatchTarget, ...]:
    """The passed waves that still have a model on the new version."""
    return tuple(
        WatchTarget(wave=k, before_end=started, after_start=ready)
        for k, (started, ready) in sorted(state.windows.items())
        if any(state.phases[m] is ModelPhase.JUDGED for m in waves[k][1])
    )


def watch_look(
    state: FleetState,
    waves: Sequence[tuple[WaveSpec, tuple[str, ...]]],
    target: WatchTarget,
    counts: FleetCounts,
    *,
    now: float,
    final: bool,
) -> WatchLook:
    """The watched wave's input at ``now``: controls by the clock, as ``progress.wave_look``."""
    models = waves[target.wave][1]
    members = set(models)
    mirror_start = target.before_end - (now - target.after_start)
    controls = tuple(
        m
        for m, p in state.phases.items()
        if m not in members
        and (
            p is ModelPhase.WAITING
            or (p is ModelPhase.JUDGED and state.upgraded_at.get(m, now) <= mirror_start)
        )
    )
    return WatchLook(
        wave=target.wave,
        models=models,
        controls=controls,
        counts=counts,
        frozen={m: v for m, v in state.frozen.items() if m in members},
        stopped={m: v for m, v in state.last_log_e.items() if m in members},
        final=final,
    )


def judge_watch(
    metrics: Sequence[FleetMetric], policy: FleetPolicy, look: WatchLook
) -> WaveJudgement:
    """Judge one watched wave (pure): at-once rollbacks on the e-Bonferroni and safety bounds
    of the wave, e-BH at the watch's end. The verdict is ``inconclusive`` while watching and
    ``pass`` at the end (a watched wave never fails whole: it passed)."""
    as_wave = WaveLook(
        wave=look.models, controls=look.controls, counts=look.counts, frozen=look.frozen
    )
    limits = policy.thresholds(len(look.models))
    ev = model_evidence(metrics, policy, as_wave)
    if look.controls:
        live = ev.log_e
    else:  # no controls left: the e-process is stopped at its last value
        live = np.array([look.stopped.get(m, 0.0) for m in look.models], dtype=np.float64)
    decision = np.array(
        [look.frozen.get(m, float(v)) for m, v in zip(look.models, live, strict=True)]
    )
    marks = ev.at_once(decision, as_wave, limits)
    reason = "watching the models of a passed wave"
    if look.final:
        level = policy.wave_alpha * policy.model_share
        marks.add(
            e_bh_from_log(decision, level), "harmful: in the e-BH discoveries at the watch's end"
        )
        reason = "the watch is over"
    return WaveJudgement(
        verdict=Verdict.PASS if look.final else Verdict.INCONCLUSIVE,
        reason=reason,
        final=look.final,
        rollbacks=tuple(look.models[i] for i in np.flatnonzero(marks.now)),
        models=model_judgements(look.models, decision, ev, marks),
        pooled={"watch": {"wave": float(look.wave), "controls": float(len(look.controls))}},
        thresholds={k: round(v, 6) for k, v in limits.items()},
    )
