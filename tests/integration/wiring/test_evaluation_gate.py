"""The evaluation gate as serve builds it, asked by the engine for a regulated rollout whose
policy requires it before the first canary step; CI records results through the real API."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from analyzer.config import GatesSettings, Settings
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.wiring import PolicyGateChecker, build_gates
from gates.evaluation import EvaluationGateConfig
from gates.policy import EVALUATION, GatePolicy, GatePolicyConfig, GateRequirement
from tests.integration.api.conftest import build_harness
from tests.integration.rollouts.harness import MODEL, Rig

pytestmark = pytest.mark.postgres

DIGEST = "sha256:" + "17" * 32
POLICY = GatePolicyConfig(
    tiers={
        Tier.REGULATED: GatePolicy(requirements=(GateRequirement(gate=EVALUATION, from_weight=0),))
    }
)


def test_a_regulated_rollout_waits_for_its_golden_set_then_advances(pg_engine: Engine) -> None:
    settings = Settings(gates=GatesSettings(policy=POLICY, evaluation=EvaluationGateConfig()))
    probe = Rig(pg_engine, lambda r: Verdict.PASS)
    gates = build_gates(settings, probe.ledger)
    assert EVALUATION in gates
    rig = Rig(pg_engine, lambda r: Verdict.PASS, gates=PolicyGateChecker(POLICY, gates))
    api = build_harness(pg_engine, settings=None)
    try:
        api.clock.now = rig.clock.now  # one timeline for the engine and CI's records

        def record(**changes: object) -> None:
            api.clock.now = rig.clock.now
            body = {
                "model": {"namespace": MODEL.namespace, "name": MODEL.name},
                "model_version": "17", "suite": "golden-set", "passed": True,
                "artifact_digest": DIGEST, **changes,
            }  # fmt: skip
            response = api.call("POST", "/api/v1/evaluations", "operator", json=body)
            assert response.status_code == 201, response.text

        started = rig.start(tier=Tier.REGULATED, model_version="17", artifact_digest=DIGEST)
        rig.run(minutes=3)
        held = rig.service.get(started.id)
        assert held.state is RolloutState.PENDING
        assert rig.weight() == 0
        assert held.reason is not None
        assert (
            f"evaluation: no golden-set evaluation recorded for {MODEL} version 17; "
            "CI records it with POST /api/v1/evaluations"
        ) in held.reason

        record(passed=False)  # a failed run keeps it held
        record(model_version="16")  # another version's pass does not count
        record(artifact_digest="sha256:" + "ee" * 32)  # nor a pass on other bytes
        rig.run(minutes=2)
        held = rig.service.get(started.id)
        assert held.state is RolloutState.PENDING
        assert rig.weight() == 0
        assert "ran on artifact sha256:eeee" in (held.reason or "")

        record()  # the passing golden set of version 17 on these bytes
        rig.run(minutes=2)
        moved = rig.service.get(started.id)
        assert moved.state is RolloutState.PROGRESSING, moved.reason
        assert rig.weight() == 10

        checks = rig.ledger.events(rollout_id=started.id, event_types=[EventType.GATE_CHECKED])
        last_open = [e for e in checks.entries if e.data()["open"]][-1]
        [decision] = last_open.data()["evidence"]["decisions"]
        assert decision["gate"] == EVALUATION
        golden = decision["evidence"]["suites"]["golden-set"]
        assert golden["passed"] is True
        assert golden["artifact_digest"] == DIGEST
        assert golden["recorded_by"] == "operator-user"
        assert rig.ledger.entry(golden["seq"]).event_type == "evaluation_recorded"  # type: ignore[union-attr]
        report = rig.ledger.verify()
        assert report.intact, report.summary()
    finally:
        api.analyses.close()
        api.looks.close()
        api.http.close()
        api._running.stop()  # type: ignore[attr-defined]


def test_without_evaluation_settings_a_policy_requiring_it_stays_closed(
    pg_engine: Engine,
) -> None:
    gates = build_gates(
        Settings(gates=GatesSettings(policy=POLICY)), Rig(pg_engine, lambda r: Verdict.PASS).ledger
    )
    assert EVALUATION not in gates
    rig = Rig(pg_engine, lambda r: Verdict.PASS, gates=PolicyGateChecker(POLICY, gates))
    started = rig.start(tier=Tier.REGULATED, model_version="17")
    rig.run(minutes=2)
    held = rig.service.get(started.id)
    assert held.state is RolloutState.PENDING
    assert "gate evaluation is required but not configured" in (held.reason or "")
