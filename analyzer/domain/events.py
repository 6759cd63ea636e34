"""The closed set of ledger event types, and the event value appended to the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from analyzer.domain.model import ModelRef


class EventType(StrEnum):
    """What a ledger entry records. Adding a member is a schema change of the ledger's payloads."""

    REVISION_REGISTERED = "revision_registered"
    ROLLOUT_STARTED = "rollout_started"
    TRAFFIC_CHANGED = "traffic_changed"
    # A move asked of the target, recorded with its evidence *before* the call: a crash between
    # the call and its confirmation leaves the intent, not silence (see rollouts/truth.py).
    TRAFFIC_CHANGE_REQUESTED = "traffic_change_requested"
    ANALYSIS_RECORDED = "analysis_recorded"
    GATE_CHECKED = "gate_checked"
    APPROVAL_GIVEN = "approval_given"
    APPROVAL_REFUSED = "approval_refused"
    ROLLOUT_PAUSED = "rollout_paused"
    ROLLOUT_RESUMED = "rollout_resumed"
    ROLLOUT_ABORTED = "rollout_aborted"
    ROLLOUT_PROMOTED = "rollout_promoted"
    ROLLOUT_FAILED = "rollout_failed"
    TARGET_ERROR = "target_error"
    EVALUATION_RECORDED = "evaluation_recorded"  # CI's result of one suite for a model version
    # What we answered a controller's webhook that decides on traffic (Flagger's rollback and
    # pre-rollout), recorded when the answer changes: the evidence behind a move we did not make.
    WEBHOOK_ANSWERED = "webhook_answered"
    # A model-registry alias moved with a rollout (challenger at the first step, champion before
    # the promotion), and a registry that refused or did not answer such a move (the rollout is
    # held). See docs/registry.md.
    ALIAS_MOVED = "alias_moved"
    REGISTRY_ERROR = "registry_error"
    # A shadow run's request mirror set or removed (confirmed or observed, like traffic_changed).
    # Not a traffic_changed: the mirrored revision answers copies that are discarded, so it never
    # served, and "which revision served at T" must never name it (docs/strategies.md).
    MIRROR_CHANGED = "mirror_changed"
    # A shadow run's verdict ("passed"/"failed") for the challenger's model version: the evidence
    # the `shadow` gate of a later canary reads ("shadow passed within N days").
    SHADOW_JUDGED = "shadow_judged"
    # Fleet rollouts (docs/fleets.md): each model's moves are ordinary traffic_change_requested /
    # traffic_changed entries (a model moves whole, weight 100), so serving history stays one
    # lookup per model; these three record the fleet's own decisions: its start (models, waves,
    # spec), each look's wave judgement (with the evidence), and every change of its status
    # (held, failed, completed, aborted, resumed: who and why).
    FLEET_ROLLOUT_STARTED = "fleet_rollout_started"
    FLEET_WAVE_JUDGED = "fleet_wave_judged"
    FLEET_ROLLOUT_CHANGED = "fleet_rollout_changed"


# Version of the payload layout written by this code; verify accepts every version it knows.
PAYLOAD_SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class LedgerEvent:
    """One fact to append. ``data`` must be JSON-ready (finite numbers, str keys).

    For ``traffic_changed`` the data carries the model's whole split *after* the change
    (``{"split": [{"revision": ..., "weight": ...}, ...], "step": k, ...}``) so that "which
    revisions served at T" is answered by one indexed lookup of the latest such entry.
    """

    type: EventType
    actor: str
    model: ModelRef | None = None
    rollout_id: str | None = None
    revision: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
