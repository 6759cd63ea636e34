"""Which gates a model needs at which step, and evaluating them together.

A requirement names a gate and the smallest target weight from which it applies: ``100`` means
"before full promotion", ``0`` means "every step". Defaults per tier:

=============  ==========================================================
``regulated``  ServiceNow change request and manual approval before 100 %
``hot-path``   change-freeze windows at every step
``standard``   change-freeze windows before 100 %
``long-tail``  none
=============  ==========================================================

Any tier can be replaced, and any single model (``namespace/name``) given its own policy. The
evaluation gate (``EVALUATION``) is in no default: a tier or model policy requires it explicitly.
The overall answer is open only when every required gate is open; a required gate with no
configured implementation is closed, never skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from analyzer.domain.model import ModelRef, Tier
from gates.base import GateContext, GateDecision, JsonValue, PromotionGate, check_safely, closed

SERVICENOW_CHANGE = "servicenow-change"
MANUAL_APPROVAL = "manual-approval"
CHANGE_WINDOW = "change-window"
EVALUATION = "evaluation"
FULL_PROMOTION = 100


class GateRequirement(BaseModel):
    """One gate, required for every step whose target weight is at least ``from_weight``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gate: str = Field(min_length=1)
    from_weight: int = Field(default=FULL_PROMOTION, ge=0, le=100)

    def applies_to(self, target_weight: int) -> bool:
        return target_weight >= self.from_weight


class GatePolicy(BaseModel):
    """The gates one model must pass, and from which step on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requirements: tuple[GateRequirement, ...] = ()

    @field_validator("requirements")
    @classmethod
    def _unique(cls, value: tuple[GateRequirement, ...]) -> tuple[GateRequirement, ...]:
        names = [r.gate for r in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"gate listed more than once: {', '.join(duplicates)}")
        return value

    def required_for(self, target_weight: int) -> tuple[str, ...]:
        """Names of the gates a step to ``target_weight`` must pass, in policy order."""
        return tuple(r.gate for r in self.requirements if r.applies_to(target_weight))

    def steps_requiring(self, gate: str, weights: Sequence[int]) -> tuple[int, ...]:
        """Indices of the plan steps (by target weight) before which ``gate`` is checked."""
        return tuple(i for i, weight in enumerate(weights) if gate in self.required_for(weight))


def _policy(*requirements: tuple[str, int]) -> GatePolicy:
    return GatePolicy(
        requirements=tuple(GateRequirement(gate=g, from_weight=w) for g, w in requirements)
    )


DEFAULT_TIER_POLICIES: Mapping[Tier, GatePolicy] = {
    Tier.REGULATED: _policy((SERVICENOW_CHANGE, FULL_PROMOTION), (MANUAL_APPROVAL, FULL_PROMOTION)),
    Tier.HOT_PATH: _policy((CHANGE_WINDOW, 0)),
    Tier.STANDARD: _policy((CHANGE_WINDOW, FULL_PROMOTION)),
    Tier.LONG_TAIL: _policy(),
}


class GatePolicyConfig(BaseModel):
    """Per-tier policies (defaults above, each replaceable) and per-model overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tiers: dict[Tier, GatePolicy] = Field(default_factory=dict)
    models: dict[str, GatePolicy] = Field(default_factory=dict)
    # Added to every model's policy unless that policy names the gate itself (with its own
    # from_weight). Configuring the signature gate adds it here at every step (from_weight 0).
    every_model: tuple[GateRequirement, ...] = ()

    @field_validator("models")
    @classmethod
    def _model_keys(cls, value: dict[str, GatePolicy]) -> dict[str, GatePolicy]:
        for key in value:
            ModelRef.parse(key)  # raises InvalidInputError (a ValueError) naming the key
        return value

    def policy_for(self, model: ModelRef, tier: Tier) -> GatePolicy:
        """The model's own policy if it has one, else its tier's (configured or default)."""
        if str(model) in self.models:
            policy = self.models[str(model)]
        else:
            policy = self.tiers.get(tier, DEFAULT_TIER_POLICIES[tier])
        named = {r.gate for r in policy.requirements}
        added = tuple(r for r in self.every_model if r.gate not in named)
        if not added:
            return policy
        return GatePolicy(requirements=added + policy.requirements)

    def requiring(self, gate: str, from_weight: int = 0) -> GatePolicyConfig:
        """This configuration with ``gate`` in ``every_model`` (unchanged if already there)."""
        if any(r.gate == gate for r in self.every_model):
            return self
        extra = GateRequirement(gate=gate, from_weight=from_weight)
        return self.model_copy(update={"every_model": (*self.every_model, extra)})


@dataclass(frozen=True, kw_only=True, slots=True)
class GateEvaluation:
    """Every required gate's decision for one step and the overall answer."""

    open: bool
    reason: str
    required: tuple[str, ...]
    decisions: tuple[GateDecision, ...]

    def closed_decisions(self) -> tuple[GateDecision, ...]:
        return tuple(d for d in self.decisions if not d.open)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "open": self.open,
            "reason": self.reason,
            "required": list(self.required),
            "decisions": [d.to_json() for d in self.decisions],
        }


def evaluate_gates(
    policy: GatePolicy, gates: Mapping[str, PromotionGate], context: GateContext
) -> GateEvaluation:
    """Ask every gate the policy requires for this step; open only if all of them are open.

    All required gates are asked even after one closes, so the ledger records the complete
    picture and an operator fixes every blocker in one go.
    """
    required = policy.required_for(context.target_weight)
    decisions: list[GateDecision] = []
    for name in required:
        gate = gates.get(name)
        if gate is None:
            decisions.append(closed(name, context, f"gate {name} is required but not configured"))
        else:
            decisions.append(check_safely(gate, context))
    blockers = [d for d in decisions if not d.open]
    if not required:
        reason = f"no gates required for a step to {context.target_weight} %"
    elif blockers:
        reason = "; ".join(f"{d.gate}: {d.reason}" for d in blockers)
    else:
        reason = f"all {len(required)} required gates open"
    return GateEvaluation(
        open=not blockers, reason=reason, required=required, decisions=tuple(decisions)
    )
