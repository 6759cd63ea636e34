"""The shadow gate: the canary's model version passed a shadow run recently.

A shadow run (docs/strategies.md) judges a challenger on mirrored requests, decision by decision
against the incumbent, with no customer exposure. Its verdict is recorded in the ledger
(``shadow_judged``) for the challenger's registry version. This gate lets a later canary of that
version require it: open when the **latest** shadow verdict for *this model and this version*

* is ``passed`` (a later failed run withdraws an earlier pass: the newest word counts),
* is not older than ``max_age_days`` at ``context.now`` and not dated after it,
* and, when both name an artifact digest, was reached on the same artifact
  (``require_digest_match``).

A rollout without a ``model_version`` cannot be looked up and is closed; an unreadable store is
closed. Verdicts are read through :class:`ShadowVerdictSource` (the ledger implements it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from analyzer.domain.model import ModelRef
from gates.base import GateContext, GateDecision, JsonValue, closed, opened

SHADOW = "shadow"


class ShadowGateConfig(BaseModel):
    """How recent a shadow pass must be, and whether it must be of the same artifact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age_days: int = Field(default=14, ge=1, le=365)
    require_digest_match: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class ShadowVerdict:
    """One shadow run's verdict for a model version (a ``shadow_judged`` ledger entry)."""

    seq: int
    model: ModelRef
    model_version: str
    passed: bool
    recorded_at: datetime
    rollout_id: str | None = None
    artifact_digest: str | None = None
    reason: str = ""

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "seq": self.seq,
            "passed": self.passed,
            "recorded_at": self.recorded_at.isoformat(),
            "rollout_id": self.rollout_id,
            "artifact_digest": self.artifact_digest,
            "reason": self.reason,
        }


class ShadowVerdictSource(Protocol):
    """Contract: the shadow verdicts recorded for ``model`` at ``model_version``, any order;
    may raise when the store cannot be read (the gate is then closed)."""

    def verdicts_for(self, model: ModelRef, model_version: str) -> Sequence[ShadowVerdict]: ...


class ShadowGate:
    """Open when the latest shadow verdict for the canary's version is a recent pass."""

    def __init__(self, source: ShadowVerdictSource, config: ShadowGateConfig | None = None) -> None:
        self._source = source
        self._config = config or ShadowGateConfig()

    @property
    def name(self) -> str:
        return SHADOW

    def check(self, context: GateContext) -> GateDecision:
        config, version = self._config, context.canary_version
        evidence: dict[str, JsonValue] = {
            "model_version": version,
            "artifact_digest": context.artifact_digest,
            "max_age_days": config.max_age_days,
        }
        if not version:
            why = "the rollout names no model version to look a shadow run up; start it with one"
            return closed(SHADOW, context, why, evidence)
        try:
            found = self._source.verdicts_for(context.model, version)
        except Exception as exc:  # an unreadable store must not open the gate
            why = f"shadow verdicts could not be read ({type(exc).__name__}); closed until they can"
            return closed(SHADOW, context, why, evidence)
        mine = [v for v in found if v.model == context.model and v.model_version == version]
        what = f"{context.model} version {version}"
        if not mine:
            why = f"no shadow run recorded for {what}; run one (strategy shadow) first"
            return closed(SHADOW, context, why, evidence)
        latest = max(mine, key=lambda v: (v.recorded_at, v.seq))
        evidence["latest"] = latest.to_json()
        when = f"rollout {latest.rollout_id}, {latest.recorded_at.isoformat()}"
        if not latest.passed:
            return closed(SHADOW, context, f"the latest shadow run of {what} failed ({when})",
                          evidence)  # fmt: skip
        if latest.recorded_at > context.now:
            why = f"the latest shadow pass of {what} is dated in the future ({when})"
            return closed(SHADOW, context, why, evidence)
        age = context.now - latest.recorded_at
        if age > timedelta(days=config.max_age_days):
            why = (
                f"the latest shadow pass of {what} is {age.days} days old (at most "
                f"{config.max_age_days} allowed); shadow it again ({when})"
            )
            return closed(SHADOW, context, why, evidence)
        ours, theirs = context.artifact_digest, latest.artifact_digest
        if config.require_digest_match and ours and theirs and ours != theirs:
            why = f"the shadow pass of {what} was of artifact {theirs}, the rollout deploys {ours}"
            return closed(SHADOW, context, why, evidence)
        return opened(SHADOW, context, f"shadow passed for {what} ({when})", evidence)
