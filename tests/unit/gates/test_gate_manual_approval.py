"""Four eyes: who may approve, for which step, for how long."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from gates.manual_approval import (
    ApprovalRecord,
    ApprovalRules,
    ManualApprovalGate,
    validate_approval,
)
from tests.unit.gates.helpers import NOW, context


def approval(
    approver: str = "bob@bank.example",
    *,
    roles: frozenset[str] = frozenset({"approver"}),
    step: int = 3,
    rollout_id: str = "ro-42",
    at: datetime = NOW - timedelta(hours=1),
) -> ApprovalRecord:
    return ApprovalRecord(
        rollout_id=rollout_id, step=step, approver=approver, roles=roles, approved_at=at
    )


class Ledger:
    def __init__(self, *records: ApprovalRecord) -> None:
        self.records = list(records)

    def approvals_for(self, rollout_id: str) -> Sequence[ApprovalRecord]:
        return [r for r in self.records if r.rollout_id == rollout_id]


class BrokenLedger:
    def approvals_for(self, rollout_id: str) -> Sequence[ApprovalRecord]:
        raise ConnectionError("database is down")


def validate(record: ApprovalRecord, **rules: object) -> tuple[bool, str]:
    result = validate_approval(
        record,
        rollout_id="ro-42",
        step=3,
        initiator="alice@bank.example",
        now=NOW,
        rules=ApprovalRules(**rules),  # type: ignore[arg-type]
    )
    return result.accepted, result.reason


def test_initiator_approval_is_refused_with_a_clear_reason() -> None:
    accepted, reason = validate(approval("alice@bank.example"))
    assert not accepted
    assert "started this rollout" in reason
    assert "four eyes" in reason


def test_initiator_is_recognised_regardless_of_case_and_blanks() -> None:
    accepted, _ = validate(approval("  Alice@Bank.Example "))
    assert not accepted


def test_second_approver_is_accepted() -> None:
    accepted, reason = validate(approval("bob@bank.example"))
    assert accepted
    assert reason == "approved by bob@bank.example"


def test_approver_without_the_role_is_refused() -> None:
    accepted, reason = validate(approval(roles=frozenset({"operator", "viewer"})))
    assert not accepted
    assert "'approver' role" in reason


def test_expired_approval_is_refused() -> None:
    accepted, reason = validate(approval(at=NOW - timedelta(hours=2)), ttl=timedelta(hours=1))
    assert not accepted
    assert "expired" in reason


def test_approval_exactly_at_the_ttl_still_counts() -> None:
    accepted, _ = validate(approval(at=NOW - timedelta(hours=1)), ttl=timedelta(hours=1))
    assert accepted


def test_future_dated_approval_is_refused() -> None:
    accepted, reason = validate(approval(at=NOW + timedelta(minutes=5)))
    assert not accepted
    assert "future" in reason


def test_approval_for_another_step_or_rollout_is_refused() -> None:
    assert not validate(approval(step=2))[0]
    assert not validate(approval(rollout_id="ro-41"))[0]


def test_naive_approval_time_is_refused() -> None:
    accepted, reason = validate(approval(at=datetime(2026, 11, 25, 13, 0)))
    assert not accepted
    assert "time zone" in reason


def test_rules_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ApprovalRules(required_approvers=0)
    with pytest.raises(ValueError, match="positive"):
        ApprovalRules(ttl=timedelta(0))


def test_gate_stays_closed_on_the_initiators_own_approval() -> None:
    gate = ManualApprovalGate(Ledger(approval("alice@bank.example")))
    decision = gate.check(context())
    assert not decision.open
    assert "0 of 1" in decision.reason
    assert "cannot approve it (four eyes)" in decision.reason
    assert decision.evidence["refused"][0]["approver"] == "alice@bank.example"


def test_gate_opens_on_a_second_persons_approval_and_records_it() -> None:
    gate = ManualApprovalGate(Ledger(approval("alice@bank.example"), approval("bob@bank.example")))
    decision = gate.check(context())
    assert decision.open
    assert decision.evidence["approvers"] == ["bob@bank.example"]
    assert decision.evidence["approvals"][0]["approved_at"] == "2026-11-25T13:00:00+00:00"
    assert len(decision.evidence["refused"]) == 1


def test_n_distinct_approvers_are_required() -> None:
    rules = ApprovalRules(required_approvers=2)
    same_twice = Ledger(approval("bob@bank.example"), approval("BOB@bank.example"))
    assert not ManualApprovalGate(same_twice, rules).check(context()).open
    two_people = Ledger(approval("bob@bank.example"), approval("carol@bank.example"))
    decision = ManualApprovalGate(two_people, rules).check(context())
    assert decision.open
    assert decision.evidence["approvers"] == ["bob@bank.example", "carol@bank.example"]


def test_gate_is_closed_when_approvals_cannot_be_read() -> None:
    decision = ManualApprovalGate(BrokenLedger()).check(context())
    assert not decision.open
    assert "could not be read" in decision.reason
