"""A rollout's registry version and artifact digest on PostgreSQL: stored, recorded in the
ledger, and matched by the ServiceNow gate (the fake Table API over HTTP) while the engine
drives a regulated rollout."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import Tier
from analyzer.domain.rollout import Rollout, RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import EntryRecord
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.tables import rollouts
from analyzer.wiring import PolicyGateChecker
from gates.policy import SERVICENOW_CHANGE, GatePolicy, GatePolicyConfig, GateRequirement
from gates.servicenow import BasicCredentials, ServiceNowChangeGate, ServiceNowTableClient
from tests.fakes.servicenow import Choice, DateTime, FakeServiceNow, Ref
from tests.integration.rollouts.harness import ALICE, MODEL, PLAN, Rig

pytestmark = pytest.mark.postgres

DIGEST = "sha256:" + hashlib.sha256(b"fraud-scorer model.onnx, version 17").hexdigest()
CR = "CHG0042017"


def request(**changes: Any) -> StartRollout:
    values: dict[str, Any] = {
        "model": MODEL, "tier": Tier.REGULATED, "baseline_revision": "fraud-00001",
        "canary_revision": "fraud-00002", "profile": "fraud", "plan": PLAN,
        "artifact_uri": "s3://models/fraud-scorer/17/model.onnx", "change_request": CR,
    }  # fmt: skip
    values.update(changes)
    return StartRollout(**values)


def recorded(rig: Rig, rollout_id: str, kind: EventType) -> list[EntryRecord]:
    return list(rig.ledger.events(rollout_id=rollout_id, event_types=[kind]).entries)


def test_version_and_digest_are_stored_returned_and_recorded(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    started = rig.service.start(request(model_version="17", artifact_digest=DIGEST), ALICE)
    assert (started.model_version, started.artifact_digest) == ("17", DIGEST)

    with pg_engine.connect() as conn:
        row = conn.execute(select(rollouts).where(rollouts.c.id == started.id)).one()._mapping
    assert (row["model_version"], row["artifact_digest"]) == ("17", DIGEST)
    listed = rig.service.list(model=MODEL)
    assert [(r.model_version, r.artifact_digest) for r in listed] == [("17", DIGEST)]

    [registered] = recorded(rig, started.id, EventType.REVISION_REGISTERED)
    assert registered.revision == "fraud-00002"
    assert registered.data()["artifact_uri"] == "s3://models/fraud-scorer/17/model.onnx"
    assert registered.data()["artifact_digest"] == DIGEST
    assert registered.data()["model_version"] == "17"
    # the keys are part of the hashed payload, not only of a column
    assert f'"artifact_digest":"{DIGEST}"' in registered.payload
    [begun] = recorded(rig, started.id, EventType.ROLLOUT_STARTED)
    assert begun.data()["model_version"] == "17"
    assert begun.data()["canary_revision"] == "fraud-00002"

    # the engine's writes keep them (each tick rewrites the row)
    rig.run(minutes=3)
    moved = rig.service.get(started.id)
    assert moved.state is RolloutState.PROGRESSING
    assert (moved.model_version, moved.artifact_digest) == ("17", DIGEST)
    report = rig.ledger.verify()
    assert report.intact, report.summary()


def test_a_rollout_without_them_stores_and_records_nulls(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    started = rig.service.start(request(), ALICE)
    read = rig.service.get(started.id)
    assert (read.model_version, read.artifact_digest) == (None, None)
    [registered] = recorded(rig, started.id, EventType.REVISION_REGISTERED)
    assert registered.data()["model_version"] is None
    assert registered.data()["artifact_digest"] is None
    assert rig.ledger.verify().intact


def test_registrations_of_the_old_layout_verify_next_to_new_ones(pg_engine: Engine) -> None:
    """Entries written before this change have no model_version/artifact_digest keys; they
    keep their bytes and verify in the same chain as the new ones."""
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    old = LedgerEvent(
        type=EventType.REVISION_REGISTERED, actor="alice", model=MODEL, rollout_id="r-0",
        revision="fraud-00001", data={"artifact_uri": "s3://models/fraud-scorer/16",
                                      "baseline_revision": "fraud-00000"},
    )  # fmt: skip
    seq = rig.ledger.record(old).seq
    started = rig.service.start(request(model_version="17", artifact_digest=DIGEST), ALICE)
    stored = rig.ledger.entry(seq)
    assert stored is not None
    assert "model_version" not in stored.payload
    assert stored.data().get("model_version") is None
    assert recorded(rig, started.id, EventType.REVISION_REGISTERED)[0].data()["model_version"]
    report = rig.ledger.verify()
    assert report.intact, report.summary()
    assert report.entries == 3


# -- the regulated path, driven by the engine ------------------------------------------------


@pytest.fixture
def snow() -> Iterator[FakeServiceNow]:
    """CR approved for fraud-scorer version 17, in its window around the rig's clock."""
    with FakeServiceNow() as fake:
        fake.add_table("change_request")
        fake.add_table("sysapproval_approver")
        sys_id = fake.add_record(
            "change_request", number=CR, state=Choice("-1", "Implement"),
            approval=Choice("approved", "Approved"),
            start_date=DateTime("2026-03-04 00:00:00"), end_date=DateTime("2026-03-05 00:00:00"),
            cmdb_ci=Ref("cmdb_ci_appl", "a" * 32, MODEL.name), u_model_version="17",
        )  # fmt: skip
        fake.add_record(
            "sysapproval_approver", sysapproval=Ref("change_request", sys_id, CR),
            approver=Ref("sys_user", "b" * 32, "Maria Risk-Owner"),
            state=Choice("approved", "Approved"), sys_updated_on=DateTime("2026-03-03 09:00:00"),
        )  # fmt: skip
        yield fake


@pytest.fixture
def regulated_rig(pg_engine: Engine, snow: FakeServiceNow) -> Iterator[Rig]:
    credentials = BasicCredentials(username="gate.bot", password=SecretStr("bot-password"))
    with ServiceNowTableClient(snow.url, credentials, timeout_seconds=2.0) as client:
        only_the_cr = GatePolicy(requirements=(GateRequirement(gate=SERVICENOW_CHANGE),))
        policy = GatePolicyConfig(tiers={Tier.REGULATED: only_the_cr})
        checker = PolicyGateChecker(policy, {SERVICENOW_CHANGE: ServiceNowChangeGate(client)})
        yield Rig(pg_engine, lambda r: Verdict.PASS, gates=checker)


def drive(rig: Rig, **changes: Any) -> tuple[Rollout, list[EntryRecord]]:
    started = rig.service.start(request(**changes), ALICE)
    rig.run(minutes=16)  # 3 judged steps of 2 min dwell; the promotion would be due by minute 7
    checks = recorded(rig, started.id, EventType.GATE_CHECKED)
    return rig.service.get(started.id), [c for c in checks if c.data()["target_step"] == 3]


def servicenow_reason(check: EntryRecord) -> str:
    [decision] = [
        d for d in check.data()["evidence"]["decisions"] if d["gate"] == SERVICENOW_CHANGE
    ]
    return str(decision["reason"])


def test_regulated_rollout_naming_the_crs_version_is_promoted(regulated_rig: Rig) -> None:
    final, checks = drive(regulated_rig, model_version="17", artifact_digest=DIGEST)
    assert final.state is RolloutState.PROMOTED, final.reason
    assert [c.data()["open"] for c in checks] == [True]
    assert checks[0].data()["evidence"]["decisions"][0]["evidence"]["u_model_version"] == "17"
    assert regulated_rig.target.read_weight(MODEL).percent_of("fraud-00002") == 100


def test_regulated_rollout_naming_another_version_is_held_before_100(regulated_rig: Rig) -> None:
    final, checks = drive(regulated_rig, model_version="18")
    assert final.state is RolloutState.PROGRESSING
    assert regulated_rig.weight() == 50
    assert checks
    assert not any(c.data()["open"] for c in checks)
    assert servicenow_reason(checks[-1]) == f"change request {CR} is for version 17, not 18"


def test_regulated_rollout_without_model_version_is_held_saying_what_to_do(
    regulated_rig: Rig,
) -> None:
    final, checks = drive(regulated_rig)  # the CR's version is not the revision name either
    assert final.state is RolloutState.PROGRESSING
    assert regulated_rig.weight() == 50
    assert checks
    assert not any(c.data()["open"] for c in checks)
    assert servicenow_reason(checks[-1]) == (
        "the rollout names no model version; start it with model_version to match change "
        "request field u_model_version"
    )
    assert regulated_rig.ledger.verify().intact
