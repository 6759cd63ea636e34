"""Driven rollouts whose artifact carries a Sigstore bundle: the signature gate verifies it
offline (tests/data/sigstore: a published bundle and the public-good trust root) before any
traffic, through the wiring's ledger-backed source, and records who signed it and when."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from analyzer.config import Settings
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.wiring import LedgerSignatures, PolicyGateChecker
from gates.signature import SIGNATURE, SignatureGate
from tests.integration.rollouts.harness import MODEL, Rig
from tests.unit.gates.test_gate_sigstore import BUNDLE_TEXT, ISSUER, ROOT, WHEEL_DIGEST, WORKFLOW

pytestmark = pytest.mark.postgres


def sigstore_rig(engine: Engine) -> Rig:
    trust = {"trusted_root": str(ROOT), "identities": [{"issuer": ISSUER, "subject": WORKFLOW}]}
    settings = Settings(gates={"signature": {"sigstore": trust}})
    assert settings.gates.signature is not None
    rig = Rig(engine, lambda r: Verdict.PASS)
    gate = SignatureGate(LedgerSignatures(rig.ledger), settings.gates.signature)
    rig.engine = RolloutEngine(
        engine, rig.ledger, rig.target, rig.analyzer,
        PolicyGateChecker(settings.gates.policy, {SIGNATURE: gate}),
        clock=rig.clock, replica_id="test-replica",
    )  # fmt: skip
    return rig


def signature_checks(rig: Rig) -> list[dict[str, Any]]:
    return [
        decision
        for entry in rig.ledger.events(model=MODEL, event_types=[EventType.GATE_CHECKED]).entries
        for decision in entry.data()["evidence"]["decisions"]
        if decision["gate"] == SIGNATURE
    ]


def test_a_bundled_signature_opens_the_first_step_and_records_the_signer(
    pg_engine: Engine,
) -> None:
    rig = sigstore_rig(pg_engine)
    rollout = rig.start(tier=Tier.REGULATED, artifact_digest=WHEEL_DIGEST,
                        artifact_sigstore_bundle=BUNDLE_TEXT)  # fmt: skip
    rig.run(minutes=1)
    assert rig.service.get(rollout.id).state is RolloutState.PROGRESSING
    assert rig.weight() == 10
    [check] = signature_checks(rig)
    assert check["open"] is True
    evidence = check["evidence"]
    assert evidence["method"] == "sigstore-bundle"
    assert evidence["certificate_identity"] == WORKFLOW
    assert evidence["certificate_issuer"] == ISSUER
    assert evidence["signed_at"] == "2024-03-19T22:41:16Z"
    assert evidence["rekor_log_index"] == 79605083
    [registered] = rig.ledger.events(
        rollout_id=rollout.id, event_types=[EventType.REVISION_REGISTERED]
    ).entries
    assert registered.data()["sigstore_bundle"]["messageSignature"]["messageDigest"]["digest"] == (
        "xOkunsyCi+8qp9uh3orJg1EfdTKg3xHHcNOQmaJc8gE="
    )  # the bundle is recorded with the revision, as it was given


def test_a_tampered_artifact_gets_no_traffic_in_the_regulated_tier(pg_engine: Engine) -> None:
    rig = sigstore_rig(pg_engine)
    rollout = rig.start(tier=Tier.REGULATED, artifact_digest="sha256:" + "c5" * 32,
                        artifact_sigstore_bundle=BUNDLE_TEXT)  # fmt: skip
    rig.run(minutes=3)
    held = rig.service.get(rollout.id)
    assert held.state is RolloutState.PENDING
    assert rig.weight() == 0
    checks = signature_checks(rig)
    assert len(checks) >= 2  # asked again each tick, closed each time
    assert all(not c["open"] and "Bundle message digest mismatch" in c["reason"] for c in checks)
    assert all(c["evidence"]["certificate_identity"] == WORKFLOW for c in checks)


@pytest.mark.parametrize(
    "text", ['["not", "a bundle"]', "{not json", '{"no": "mediaType"}', "{" + " " * 70_000 + "}"]
)
def test_a_start_request_with_something_else_than_a_bundle_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        StartRollout(model=MODEL, tier=Tier.REGULATED, baseline_revision="a",
                     canary_revision="b", profile="fraud",
                     artifact_sigstore_bundle=text)  # fmt: skip
    assert refused.value.field == "artifact_sigstore_bundle"
