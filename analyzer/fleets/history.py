"""Why each model of a fleet went back, and what the watch covers (pure).

Read from the fleet's ledger entries and its stored state, so an auditor gets the same answer
from the API, the pages and the CLI as from the ledger itself:

* a ``fleet_wave_judged`` entry lists every rollback of its look under ``rollbacks`` and, under
  ``watch``, those decided by the watch of a wave that had passed; the look's other rollbacks
  were decided by the judgement of the wave in progress (the model's own wave);
* a ``target_error`` entry on a move to the new version is a model that did not load: it was
  sent back at once, before any judgement;
* an abort's ``fleet_rollout_changed`` entry sent back every model still on the new version;
* the stored state says which passed waves are still watched, and until when.

A model goes back at most once, so the first entry that sends it back is its cause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.fleet import ModelPhase
from analyzer.fleets.plan import WaveSpec
from analyzer.fleets.progress import FleetState, FleetStatus
from analyzer.fleets.watch import watch_targets

Waves = Sequence[tuple[WaveSpec, tuple[str, ...]]]


class RollbackCause(StrEnum):
    OWN_WAVE = "own_wave"  # its own wave's judgement: at once, e-BH at the wave's end, or a fail
    WATCH = "watch"  # the watch of its wave, after the wave had passed
    ABORT = "abort"  # an operator aborted the fleet
    LOAD_FAILED = "load_failed"  # the new version did not load: sent back before any judgement
    # rolled back in the stored state, but no entry of the fleet says so (verify the ledger)
    UNRECORDED = "unrecorded"


class WatchPhase(StrEnum):
    NOT_STARTED = "not_started"  # no wave has passed yet
    DURING_WAVES = "during_waves"  # passed waves are watched while later waves are judged
    AFTER_LAST_WAVE = "after_last_wave"  # every wave passed; the post-completion watch runs
    PAUSED = "paused"  # the fleet is held: no look, so nothing is judged until it is resumed
    OVER = "over"  # the fleet ended: nothing is watched any more


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedEntry:
    """A ledger entry of the fleet as the history reads it: its place in the chain (``seq``),
    when it was recorded, and the event."""

    seq: int
    at: datetime
    type: EventType
    actor: str
    model: str | None  # the model's name (the fleet's namespace is implied)
    revision: str | None
    data: Mapping[str, Any]

    @classmethod
    def of(cls, event: LedgerEvent, *, seq: int, at: datetime) -> RecordedEntry:
        return cls(
            seq=seq, at=at, type=event.type, actor=event.actor,
            model=event.model.name if event.model is not None else None,
            revision=event.revision, data=event.data,
        )  # fmt: skip


# The entry types the history reads (the store asks the ledger for these only).
HISTORY_EVENTS = (
    EventType.FLEET_WAVE_JUDGED,
    EventType.FLEET_ROLLOUT_CHANGED,
    EventType.TARGET_ERROR,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Rollback:
    """Why and when a model went back. ``wave`` (0-based) is the fleet's wave when it was
    decided (for the watch: a later wave, or the last one in the post-completion watch);
    ``look`` the ledger seq of the ``fleet_wave_judged`` entry that decided it (None for an
    abort or a failed load, which no look decided); ``entry`` the seq of the entry that
    records it."""

    cause: RollbackCause
    wave: int
    at: datetime | None
    look: int | None
    entry: int | None
    reason: str
    actor: str


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveHistory:
    wave: int  # 0-based
    models: int
    moved: int  # sent to the new version (whatever happened to them since)
    judged: int  # on the new version after their wave passed
    rolled_back: int
    rolled_back_by: Mapping[RollbackCause, int]
    watched: bool  # its models are still judged at every look


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetWatch:
    phase: WatchPhase
    watched_waves: tuple[int, ...]  # 0-based
    watching_until: float | None  # unix seconds; only in the post-completion watch
    watch_seconds: float  # the post-completion watch the fleet asked for


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetHistory:
    rollbacks: Mapping[str, Rollback]
    waves: tuple[WaveHistory, ...]
    watch: FleetWatch


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchedWaveLook:
    """What one look said of one watched wave (``wave`` 0-based)."""

    wave: int
    final: bool  # the watch ended with this look (e-BH acted once)
    controls: int | None  # models that served one version in both windows; 0: stopped
    rollbacks: tuple[str, ...]
    reasons: Mapping[str, str]  # of the models it lists as notable


@dataclass(frozen=True, kw_only=True, slots=True)
class LookWatch:
    """One look's rollbacks split by cause: its current wave's own, and each watched wave's."""

    own_rollbacks: tuple[str, ...]
    watched: tuple[WatchedWaveLook, ...]


def look_watch(summary: Mapping[str, Any]) -> LookWatch:
    """Split a look's summary (``entries.look_summary``, as the ledger entry and the look row
    hold it) into its own wave's rollbacks and the watch's. Looks recorded before the watch
    have no ``watch``: all their rollbacks were their wave's."""
    watched = tuple(
        WatchedWaveLook(
            wave=int(w["wave"]),
            final=bool(w.get("final", False)),
            controls=None if w.get("controls") is None else int(w["controls"]),
            rollbacks=tuple(w.get("rollbacks", ())),
            reasons=_reasons(w.get("notable", ())),
        )
        for w in summary.get("watch", ())
    )
    by_watch = {m for w in watched for m in w.rollbacks}
    own = tuple(m for m in summary.get("rollbacks", ()) if m not in by_watch)
    return LookWatch(own_rollbacks=own, watched=watched)


def _reasons(notable: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(n["model"]): str(n.get("reason", "")) for n in notable if "model" in n}


def fleet_watch(state: FleetState, waves: Waves, *, watch_seconds: float) -> FleetWatch:
    """What the watch covers now, from the stored state alone."""
    targets = tuple(t.wave for t in watch_targets(state, waves))
    if state.status.terminal:
        phase, targets = WatchPhase.OVER, ()
    elif state.status is FleetStatus.HELD:
        phase = WatchPhase.PAUSED
    elif state.watch_until is not None:
        phase = WatchPhase.AFTER_LAST_WAVE
    elif state.windows:
        phase = WatchPhase.DURING_WAVES
    else:
        phase = WatchPhase.NOT_STARTED
    return FleetWatch(
        phase=phase,
        watched_waves=targets,
        watching_until=state.watch_until,
        watch_seconds=watch_seconds,
    )


def rollback_causes(
    state: FleetState, entries: Sequence[RecordedEntry], *, new_version: str
) -> dict[str, Rollback]:
    """Every rolled-back model's cause, from the entries in ledger order."""
    found: dict[str, Rollback] = {}
    aborted: Rollback | None = None
    for entry in sorted(entries, key=lambda e: e.seq):
        if entry.type is EventType.FLEET_WAVE_JUDGED:
            for model, rollback in _judged(entry).items():
                found.setdefault(model, rollback)
        elif entry.type is EventType.TARGET_ERROR:
            if entry.model is not None and entry.revision == new_version:
                found.setdefault(entry.model, _load_failed(entry))
        elif entry.type is EventType.FLEET_ROLLOUT_CHANGED and aborted is None:
            aborted = _aborted(entry)
    out: dict[str, Rollback] = {}
    for model in state.models_in(ModelPhase.ROLLED_BACK):
        # an abort sends back every model still on the new version, so any not sent back
        # before it went back with it
        rollback = found.get(model) or aborted or _unrecorded(state)
        out[model] = rollback
    return out


def _judged(entry: RecordedEntry) -> dict[str, Rollback]:
    data = entry.data
    split = look_watch(data)
    at = _time(data.get("at")) or entry.at
    wave = int(data.get("wave", 0))
    own_reasons = _reasons(data.get("notable", ()))
    out: dict[str, Rollback] = {}
    for model in split.own_rollbacks:
        reason = own_reasons.get(model) or str(data.get("reason", ""))
        out[model] = Rollback(
            cause=RollbackCause.OWN_WAVE, wave=wave, at=at, look=entry.seq, entry=entry.seq,
            reason=reason, actor=entry.actor,
        )  # fmt: skip
    for watched in split.watched:
        for model in watched.rollbacks:
            reason = watched.reasons.get(model) or f"the watch of wave {watched.wave + 1}"
            out.setdefault(model, Rollback(
                cause=RollbackCause.WATCH, wave=wave, at=at, look=entry.seq, entry=entry.seq,
                reason=reason, actor=entry.actor,
            ))  # fmt: skip
    return out


def _aborted(entry: RecordedEntry) -> Rollback | None:
    if entry.data.get("to") != FleetStatus.ABORTED.value:
        return None
    return Rollback(
        cause=RollbackCause.ABORT, wave=int(entry.data.get("wave", 0)), at=entry.at, look=None,
        entry=entry.seq, reason=str(entry.data.get("reason", "")), actor=entry.actor,
    )  # fmt: skip


def _load_failed(entry: RecordedEntry) -> Rollback:
    return Rollback(
        cause=RollbackCause.LOAD_FAILED, wave=int(entry.data.get("wave", 0)), at=entry.at,
        look=None, entry=entry.seq, reason=str(entry.data.get("error", "")), actor=entry.actor,
    )  # fmt: skip


def _unrecorded(state: FleetState) -> Rollback:
    return Rollback(
        cause=RollbackCause.UNRECORDED, wave=state.wave, at=None, look=None, entry=None,
        reason="no entry of this fleet records why: verify the ledger", actor="",
    )  # fmt: skip


def _time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def fleet_history(
    state: FleetState,
    waves: Waves,
    entries: Sequence[RecordedEntry],
    *,
    new_version: str,
    watch_seconds: float,
) -> FleetHistory:
    """Each rolled-back model's cause, each wave's counts split by cause, and the watch."""
    rollbacks = rollback_causes(state, entries, new_version=new_version)
    watch = fleet_watch(state, waves, watch_seconds=watch_seconds)
    watched = set(watch.watched_waves)
    per_wave = []
    for k, (_, models) in enumerate(waves):
        phases = [state.phases[m] for m in models]
        by = dict.fromkeys(RollbackCause, 0)
        for m in models:
            if m in rollbacks:
                by[rollbacks[m].cause] += 1
        per_wave.append(
            WaveHistory(
                wave=k,
                models=len(models),
                moved=sum(1 for p in phases if p is not ModelPhase.WAITING),
                judged=phases.count(ModelPhase.JUDGED),
                rolled_back=phases.count(ModelPhase.ROLLED_BACK),
                rolled_back_by=by,
                watched=k in watched,
            )
        )
    return FleetHistory(rollbacks=rollbacks, waves=tuple(per_wave), watch=watch)
