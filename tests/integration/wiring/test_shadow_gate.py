"""Shadow runs through the gates serve builds: a shadow run serves nothing, so promotion gates
("before 100 %") do not hold its mirror; a later canary whose policy requires ``shadow`` opens
only for the model version that passed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.config import GatesSettings, Settings
from analyzer.domain.model import Tier
from analyzer.domain.rollout import RolloutState, Step, StepPlan, Strategy
from analyzer.domain.verdict import Verdict
from analyzer.wiring import PolicyGateChecker, build_gates
from gates.policy import (
    MANUAL_APPROVAL,
    SERVICENOW_CHANGE,
    GatePolicy,
    GatePolicyConfig,
    GateRequirement,
)
from gates.shadow import SHADOW
from tests.integration.rollouts.harness import ALICE, MODEL, Rig

pytestmark = pytest.mark.postgres

POLICY = GatePolicyConfig(
    tiers={
        Tier.REGULATED: GatePolicy(
            requirements=(
                GateRequirement(gate=SHADOW, from_weight=1),  # every serving step
                GateRequirement(gate=SERVICENOW_CHANGE, from_weight=100),
                GateRequirement(gate=MANUAL_APPROVAL, from_weight=100),
            )
        )
    }
)
FULL_MIRROR = StepPlan(
    steps=(Step(weight=100, dwell=timedelta(minutes=3)),),
    analysis_interval=timedelta(minutes=1),
    max_bake=timedelta(minutes=10),
    strategy=Strategy.SHADOW,
)


def test_shadow_then_a_canary_gated_on_it(pg_engine: Engine) -> None:
    settings = Settings(gates=GatesSettings(policy=POLICY))
    probe = Rig(pg_engine, lambda r: Verdict.PASS)
    checker = PolicyGateChecker(POLICY, build_gates(settings, probe.ledger))
    rig = Rig(pg_engine, lambda r: Verdict.PASS, gates=checker, mirror=True)
    shadow = rig.start(plan=FULL_MIRROR, tier=Tier.REGULATED, model_version="18")
    rig.run(minutes=1)
    # mirroring 100 % of requests serves 0 %: no change request or approval needed for it
    assert rig.target.mirrored(MODEL) == ("fraud-00002", 100)
    rig.run(minutes=4)
    assert rig.service.get(shadow.id).state is RolloutState.SHADOW_PASSED

    other = rig.start(tier=Tier.REGULATED, model_version="19")
    rig.run(minutes=2)
    held = rig.service.get(other.id)
    assert held.state is RolloutState.PENDING
    assert "no shadow run recorded for risk-prod/fraud-scorer version 19" in (held.reason or "")
    rig.service.abort(other.id, ALICE, "wrong version")

    canary = rig.start(tier=Tier.REGULATED, model_version="18")
    rig.run(minutes=1)
    entered = rig.service.get(canary.id)
    assert entered.state is RolloutState.PROGRESSING, entered.reason
    assert rig.weight() == 10
