"""The promotion-gate contract and its value types.

A *promotion gate* answers one question for one rollout step: may traffic move to the target
weight now? Every gate behind :class:`PromotionGate` follows the same rules:

* It is told the time (``GateContext.now``); it never reads the clock, so a decision can be
  replayed from the ledger and tested at any instant (a DST night, a Friday 14:59).
* It never raises. Anything it cannot decide — a backend that times out, answers 5xx or 401,
  sends malformed data, or a record that is missing or ambiguous — is a *closed* decision whose
  ``reason`` says why. The caller (the rollout driver, Flagger's ``confirm-promotion`` hook)
  asks again on its next tick; retries live there, not in the gate.
* Its ``evidence`` is JSON-ready (str, int, float, bool, None, lists and dicts of those) and
  holds no credentials, because the driver writes it to the audit ledger verbatim.

:func:`check_safely` enforces the second rule for gates that break it, so one faulty gate can
never open a promotion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef, Tier

JsonValue = Any  # a value json.dumps accepts


@dataclass(frozen=True, kw_only=True, slots=True)
class GateContext:
    """Everything a gate may know about the step it is asked to allow.

        ``target_step`` is the index in the step plan being entered, ``target_weight`` the canary
        traffic percentage it sets (100 means full promotion). ``change_request`` is the change
        number named on the rollout (e.g. ``CHG0031337``), if any; ``initiator`` is the identity
        that started the rollout (four eyes compares approvers against it). ``canary_version`` is
    the canary's registry version and ``artifact_digest`` its artifact's content digest, when
    the rollout names them (the evaluation gate looks results up by version, compares digests).
    """

    model: ModelRef
    tier: Tier
    rollout_id: str
    canary_revision: str
    target_step: int
    target_weight: int
    initiator: str
    now: datetime
    canary_version: str | None = None
    change_request: str | None = None
    artifact_digest: str | None = None  # sha256:<hex> of the canary's artifact, when named

    def __post_init__(self) -> None:
        # A naive datetime is ambiguous across time zones and DST; refusing it here means no
        # gate ever has to guess which instant it was asked about.
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise InvalidInputError("must be timezone-aware", field="gate_context.now")
        if not 0 <= self.target_weight <= 100:
            raise InvalidInputError("must be between 0 and 100", field="gate_context.weight")
        if self.target_step < 0:
            raise InvalidInputError("must not be negative", field="gate_context.target_step")


@dataclass(frozen=True, kw_only=True, slots=True)
class GateDecision:
    """One gate's answer: open or closed, one sentence why, and the evidence behind it."""

    gate: str
    open: bool
    reason: str
    checked_at: datetime
    evidence: dict[str, JsonValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "gate": self.gate,
            "open": self.open,
            "reason": self.reason,
            "checked_at": self.checked_at.isoformat(),
            "evidence": self.evidence,
        }


def opened(
    gate: str, context: GateContext, reason: str, evidence: dict[str, JsonValue] | None = None
) -> GateDecision:
    """An open decision stamped with the context's time."""
    return GateDecision(
        gate=gate, open=True, reason=reason, checked_at=context.now, evidence=evidence or {}
    )


def closed(
    gate: str, context: GateContext, reason: str, evidence: dict[str, JsonValue] | None = None
) -> GateDecision:
    """A closed decision stamped with the context's time."""
    return GateDecision(
        gate=gate, open=False, reason=reason, checked_at=context.now, evidence=evidence or {}
    )


@runtime_checkable
class PromotionGate(Protocol):
    """A check that must be open before a rollout may enter a step.

    Contract:

    * ``name`` is stable and unique among configured gates (policies refer to it).
    * ``check`` returns a :class:`GateDecision` for ``context`` and never raises; an undecidable
      state is a closed decision with the reason.
    * ``check`` reads no clock (``context.now`` is the time) and has no side effects the caller
      must undo; it may read from an external system, bounded by a timeout.
    * Evidence is JSON-ready and free of secrets.
    """

    @property
    def name(self) -> str: ...

    def check(self, context: GateContext) -> GateDecision: ...


def check_safely(gate: PromotionGate, context: GateContext) -> GateDecision:
    """Run ``gate.check`` and turn any escaped exception into a closed decision.

    A gate that raises has broken its contract; treating that as "closed" is the only answer
    that cannot promote a model nobody approved.
    """
    try:
        name = gate.name
    except Exception:  # a broken gate must still produce a decision
        name = type(gate).__name__
    try:
        decision = gate.check(context)
    except Exception as exc:
        return closed(
            name,
            context,
            f"gate {name} failed unexpectedly ({type(exc).__name__}); closed until it decides",
            {"error": type(exc).__name__, "detail": str(exc)[:500]},
        )
    if not isinstance(decision, GateDecision):
        return closed(name, context, f"gate {name} returned no decision; closed")
    return decision
