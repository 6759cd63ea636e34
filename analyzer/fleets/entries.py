"""The ledger entries and look summaries a fleet rollout writes (pure builders).

Each model's moves are written by the engine as ordinary traffic entries; these are the fleet's
own: its start (with each model's old and new revision registered and its serving at the
start observed), each look's judgement, each gate check and each change of status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.fleets.judge import WaveJudgement
from analyzer.fleets.looking import LookOutcome
from analyzer.fleets.ports import WaveGateCheck
from analyzer.fleets.progress import FleetState
from analyzer.fleets.repository import FleetRecord
from analyzer.fleets.spec import spec_to_json

ACTOR = "canary-analyzer"


def start_events(record: FleetRecord, initiator: str) -> list[LedgerEvent]:
    spec = record.spec
    events = [
        LedgerEvent(
            type=EventType.FLEET_ROLLOUT_STARTED,
            actor=initiator,
            rollout_id=record.id,
            data={
                "fleet": f"{spec.namespace}/{spec.name}",
                "spec": spec_to_json(spec),
                "waves": [list(models) for _, models in record.waves],
            },
        )
    ]
    for name, old in record.old.items():
        ref = ModelRef(namespace=spec.namespace, name=name)
        for revision, uri, runtime in (
            (spec.from_version, old.storage_uri, old.runtime),
            (
                spec.version.name,
                spec.version.uri_for(name),
                spec.version.runtime or old.runtime,
            ),
        ):
            events.append(
                LedgerEvent(
                    type=EventType.REVISION_REGISTERED,
                    actor=ACTOR,
                    model=ref,
                    rollout_id=record.id,
                    revision=revision,
                    data={"artifact_uri": uri, "runtime": runtime},
                )
            )
        events.append(
            LedgerEvent(
                type=EventType.TRAFFIC_CHANGED,
                actor=ACTOR,
                model=ref,
                rollout_id=record.id,
                revision=spec.from_version,
                data={
                    "split": [{"revision": spec.from_version, "weight": 100}],
                    "step": None,
                    "reason": "observed serving when the fleet rollout started",
                },
            )
        )
    return events


def gate_event(record: FleetRecord, gate: WaveGateCheck, now: datetime) -> LedgerEvent:
    return LedgerEvent(
        type=EventType.GATE_CHECKED,
        actor=ACTOR,
        rollout_id=record.id,
        data={
            "target_step": record.state.wave + 1,
            "open": gate.open,
            "reason": gate.reason,
            "evidence": gate.evidence,
            "checked_at": now.isoformat(),
        },
    )


def status_event(record: FleetRecord, state: FleetState, actor: str) -> LedgerEvent:
    return LedgerEvent(
        type=EventType.FLEET_ROLLOUT_CHANGED,
        actor=actor,
        rollout_id=record.id,
        data={
            "from": record.state.status.value,
            "to": state.status.value,
            "wave": state.wave,
            "reason": state.reason,
        },
    )


def judged_event(record: FleetRecord, summary: dict[str, Any], now: datetime) -> LedgerEvent:
    return LedgerEvent(
        type=EventType.FLEET_WAVE_JUDGED,
        actor=ACTOR,
        rollout_id=record.id,
        data={"wave": record.state.wave, "at": now.isoformat(), **summary},
    )


def look_summary(outcome: LookOutcome) -> dict[str, Any]:
    """What a look records: the current wave's summary (or the watch's, after the last wave)
    and, for each watched wave with something to say, its rollbacks and notable models."""
    out = summary(outcome.headline())
    out["rollbacks"] = list(outcome.rollbacks)
    watch = [
        {
            "wave": wave,
            "final": judgement.final,
            "controls": judgement.pooled.get("watch", {}).get("controls"),
            "rollbacks": list(judgement.rollbacks),
            "notable": _notable(judgement)[:20],
        }
        for wave, judgement in outcome.watched
        if judgement.rollbacks or judgement.final or _notable(judgement)
    ]
    if watch:
        out["watch"] = watch
    return out


def _notable(judgement: WaveJudgement) -> list[dict[str, Any]]:
    return [
        {
            "model": j.model,
            "log_e": round(j.log_e, 4),
            "log_e_safety": None if j.log_e_safety is None else round(j.log_e_safety, 4),
            "rolled_back": j.rolled_back,
            "reason": j.reason,
            "metrics": j.metrics,
        }
        for j in judgement.models
        if j.rollback_now or j.log_e > 0.0
    ]


def summary(judgement: WaveJudgement) -> dict[str, Any]:
    """What a wave's look records: the verdict, the pooled evidence, and the models that matter
    (rolled back now, or with an e-value above 1), not all of them."""
    return {
        "verdict": judgement.verdict.value,
        "reason": judgement.reason,
        "final": judgement.final,
        "rollbacks": list(judgement.rollbacks),
        "pooled": judgement.pooled,
        "thresholds": judgement.thresholds,
        "models": len(judgement.models),
        "notable": _notable(judgement)[:50],
    }
