"""Approvals are recorded for the step the manual-approval gate will check next (issue 13).

Before: every approval was recorded for the plan's last step, so the documented policy
``{gate: manual-approval, from_weight: 50}`` held the rollout at 25 % forever ("the approval is
for … step 3, not … step 2"). The engine here asks the real gate over the real ledger.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from analyzer.domain.errors import ConflictError, InvalidInputError, PermissionDeniedError
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.rollouts.control import Actor
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.service import RolloutService
from analyzer.wiring import LedgerApprovals, PolicyGateChecker, approval_steps_of
from gates.manual_approval import ManualApprovalGate
from gates.policy import MANUAL_APPROVAL, GatePolicy, GatePolicyConfig, GateRequirement
from tests.integration.rollouts.harness import ALICE, BOB, MODEL, Rig

pytestmark = pytest.mark.postgres

CAROL = Actor(subject="carol", roles=frozenset({"approver"}))
FROM_50 = GatePolicyConfig(
    models={
        str(MODEL): GatePolicy(
            requirements=(GateRequirement(gate=MANUAL_APPROVAL, from_weight=50),)
        )
    }
)


def _rig(pg_engine: Engine, policy: GatePolicyConfig = FROM_50) -> Rig:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    checker = PolicyGateChecker(
        policy, {MANUAL_APPROVAL: ManualApprovalGate(LedgerApprovals(rig.ledger))}
    )
    rig.service = RolloutService(
        pg_engine, rig.ledger, rig.target, clock=rig.clock,
        approval_steps=approval_steps_of(policy),
    )  # fmt: skip
    rig.engine = RolloutEngine(
        pg_engine, rig.ledger, rig.target, rig.analyzer, checker,
        clock=rig.clock, replica_id="test-replica",
    )  # fmt: skip
    return rig


def test_the_documented_from_weight_50_policy_reaches_100_percent(pg_engine: Engine) -> None:
    rig = _rig(pg_engine)
    rollout = rig.start()  # plan 10, 25, 50, 100
    rig.run(minutes=12)
    held = rig.service.get(rollout.id)
    assert (rig.weight(), held.step_index, held.state) == (25, 1, RolloutState.PROGRESSING)
    assert "closed" in (held.reason or "")

    first = rig.service.approve(rollout.id, BOB, "MRM-118: 50 % ok")
    assert (first.step, first.weight) == (2, 50)
    rig.run(minutes=6)
    assert rig.weight() == 50

    second = rig.service.approve(rollout.id, CAROL, "MRM-118: full promotion ok")
    assert (second.step, second.weight) == (3, 100)
    rig.run(minutes=6)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED
    assert rig.target.read_weight(MODEL).stable_revision == "fraud-00002"  # 100 % canary
    approvals = rig.ledger.events(event_types=[EventType.APPROVAL_GIVEN]).entries
    assert [(a.actor, a.data()["step"]) for a in approvals] == [("bob", 2), ("carol", 3)]


def test_an_approval_given_ahead_for_a_later_gated_step_counts_there(pg_engine: Engine) -> None:
    rig = _rig(pg_engine)
    rollout = rig.start()
    assert rig.service.approve(rollout.id, BOB, "50 %").step == 2  # pending: next gated is 2
    assert rig.service.approve(rollout.id, CAROL, "100 %", step=3).step == 3
    rig.run(minutes=30)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED


def test_steps_no_remaining_gate_check_counts_are_409_and_unknown_steps_422(
    pg_engine: Engine,
) -> None:
    rig = _rig(pg_engine)
    rollout = rig.start()
    with pytest.raises(ConflictError, match="never be counted: the manual-approval gate still"):
        rig.service.approve(rollout.id, BOB, "25 % is not gated", step=1)
    with pytest.raises(InvalidInputError, match="no step 4") as caught:
        rig.service.approve(rollout.id, BOB, "beyond the plan", step=4)
    assert caught.value.field == "step"
    rig.service.approve(rollout.id, BOB, "50 %")
    rig.run(minutes=12)
    assert rig.weight() == 50
    with pytest.raises(ConflictError, match="never be counted"):
        rig.service.approve(rollout.id, BOB, "50 % again: already entered", step=2)
    assert rig.ledger.events(event_types=[EventType.APPROVAL_GIVEN]).entries[-1].data()["step"] == 2


def test_a_rollout_whose_policy_needs_no_approval_refuses_one_with_409(pg_engine: Engine) -> None:
    rig = _rig(pg_engine, GatePolicyConfig())  # hot-path tier: change windows only
    rollout = rig.start(tier=Tier.HOT_PATH)
    with pytest.raises(ConflictError, match="no remaining step"):
        rig.service.approve(rollout.id, BOB, "nothing to approve")
    assert rig.ledger.events(event_types=[EventType.APPROVAL_GIVEN]).entries == ()


def test_an_admin_cannot_approve_because_the_gate_would_not_count_it(pg_engine: Engine) -> None:
    rig = _rig(pg_engine)
    rollout = rig.start()
    admin = Actor(subject="root", roles=frozenset({"admin"}))
    with pytest.raises(PermissionDeniedError, match="'approver' role"):
        rig.service.approve(rollout.id, admin, "I run the service")
    with pytest.raises(PermissionDeniedError, match="four eyes"):
        rig.service.approve(rollout.id, Actor(subject="alice", roles=frozenset({"approver"})), "")
    assert rig.service.get(rollout.id).initiator == ALICE.subject
