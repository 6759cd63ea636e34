"""Four-eyes manual approval: pure rules over approval records.

An approval counts for a rollout step only when all of these hold:

* it names this rollout and this step (an approval for 25 % does not carry over to 100 %);
* the approver holds the ``approver`` role at the time of approving;
* the approver is not the rollout's initiator (the second pair of eyes);
* it is not older than the configured time-to-live, and not dated after ``now`` (a record from
  the future is a clock or data error, and errors never open a gate).

``N`` *distinct* approvers are required (default 1 besides the initiator). Storing approvals is
the ledger's job; this module only judges records handed to it, through :class:`ApprovalSource`.
Identities are compared case-insensitively and without surrounding blanks, because the same
person arrives as ``Alice@Bank.example`` from one identity provider and ``alice@bank.example``
from another, and that must not count as two people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gates.base import GateContext, GateDecision, JsonValue, closed, opened

APPROVER_ROLE = "approver"


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRecord:
    """One approval as submitted through the API and kept by the ledger."""

    rollout_id: str
    step: int
    approver: str
    roles: frozenset[str]
    approved_at: datetime
    comment: str = ""

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "rollout_id": self.rollout_id,
            "step": self.step,
            "approver": self.approver,
            "roles": sorted(self.roles),
            "approved_at": self.approved_at.isoformat(),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRules:
    """How many distinct approvers a step needs and how long an approval stays valid."""

    required_approvers: int = 1
    ttl: timedelta = timedelta(hours=24)
    role: str = APPROVER_ROLE

    def __post_init__(self) -> None:
        if self.required_approvers < 1:
            raise ValueError("required_approvers must be at least 1")
        if self.ttl <= timedelta(0):
            raise ValueError("ttl must be positive")


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalValidation:
    """Whether one approval counts, and why not when it does not."""

    accepted: bool
    reason: str


class ApprovalSource(Protocol):
    """Where the gate reads approvals from (the ledger implements it)."""

    def approvals_for(self, rollout_id: str) -> Sequence[ApprovalRecord]: ...


def same_identity(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def validate_approval(
    record: ApprovalRecord,
    *,
    rollout_id: str,
    step: int,
    initiator: str,
    now: datetime,
    rules: ApprovalRules | None = None,
) -> ApprovalValidation:
    """Judge one approval; the API calls this on submission and refuses what it rejects."""
    rules = rules or ApprovalRules()
    if not record.approver.strip():
        return ApprovalValidation(accepted=False, reason="the approval names no approver")
    if same_identity(record.approver, initiator):
        return ApprovalValidation(
            accepted=False,
            reason=f"{record.approver} started this rollout and cannot approve it (four eyes)",
        )
    if rules.role not in record.roles:
        return ApprovalValidation(
            accepted=False, reason=f"{record.approver} does not hold the {rules.role!r} role"
        )
    if record.rollout_id != rollout_id or record.step != step:
        return ApprovalValidation(
            accepted=False,
            reason=f"the approval is for rollout {record.rollout_id} step {record.step}, "
            f"not rollout {rollout_id} step {step}",
        )
    return _validate_time(record, now, rules)


def _validate_time(
    record: ApprovalRecord, now: datetime, rules: ApprovalRules
) -> ApprovalValidation:
    if record.approved_at.utcoffset() is None:
        return ApprovalValidation(accepted=False, reason="the approval time has no time zone")
    if record.approved_at > now:
        return ApprovalValidation(
            accepted=False, reason=f"the approval by {record.approver} is dated in the future"
        )
    if now - record.approved_at > rules.ttl:
        return ApprovalValidation(
            accepted=False,
            reason=f"the approval by {record.approver} expired (older than {rules.ttl})",
        )
    return ApprovalValidation(accepted=True, reason=f"approved by {record.approver}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalTally:
    """The outcome of judging every approval for one step."""

    approvers: tuple[str, ...]
    accepted: tuple[ApprovalRecord, ...]
    refused: tuple[tuple[ApprovalRecord, str], ...]


def tally_approvals(
    records: Sequence[ApprovalRecord], context: GateContext, rules: ApprovalRules
) -> ApprovalTally:
    """Split records into accepted and refused, and list the distinct accepted approvers."""
    accepted: list[ApprovalRecord] = []
    refused: list[tuple[ApprovalRecord, str]] = []
    approvers: dict[str, str] = {}
    for record in records:
        result = validate_approval(
            record,
            rollout_id=context.rollout_id,
            step=context.target_step,
            initiator=context.initiator,
            now=context.now,
            rules=rules,
        )
        if result.accepted:
            accepted.append(record)
            approvers.setdefault(record.approver.strip().casefold(), record.approver.strip())
        else:
            refused.append((record, result.reason))
    return ApprovalTally(
        approvers=tuple(approvers.values()), accepted=tuple(accepted), refused=tuple(refused)
    )


class ManualApprovalGate:
    """Open once enough distinct, valid, non-initiator approvals exist for the step."""

    def __init__(
        self,
        source: ApprovalSource,
        rules: ApprovalRules | None = None,
        *,
        name: str = "manual-approval",
    ) -> None:
        self._source = source
        self._rules = rules or ApprovalRules()
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def check(self, context: GateContext) -> GateDecision:
        try:
            records = self._source.approvals_for(context.rollout_id)
        except Exception as exc:  # the ledger being unreadable must not open the gate
            return closed(
                self._name,
                context,
                f"approvals could not be read ({type(exc).__name__}); closed until they can",
            )
        tally = tally_approvals(records, context, self._rules)
        needed = self._rules.required_approvers
        evidence: dict[str, JsonValue] = {
            "required_approvers": needed,
            "approvers": list(tally.approvers),
            "approvals": [r.to_json() for r in tally.accepted],
            "refused": [{**r.to_json(), "reason": why} for r, why in tally.refused],
            "ttl_seconds": int(self._rules.ttl.total_seconds()),
        }
        if len(tally.approvers) >= needed:
            who = ", ".join(tally.approvers)
            return opened(self._name, context, f"approved by {who}", evidence)
        # Naming the latest refusal tells the on-call engineer why an approval they saw given
        # does not count (initiator, expired, wrong step) without reading the evidence.
        why = f"; {tally.refused[-1][1]}" if tally.refused else ""
        return closed(
            self._name,
            context,
            f"{len(tally.approvers)} of {needed} required approvals for step "
            f"{context.target_step}{why}",
            evidence,
        )
