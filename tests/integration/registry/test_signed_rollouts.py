"""The signature gate on driven rollouts: signatures and digests recorded in a real MLflow
registry (version tags) or carried by the start request, checked before the first step with the
wiring's ledger-backed source and policy checker, every result in the ledger per revision."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from analyzer.config import Settings
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.registry.mlflow import MlflowRegistry
from analyzer.rollouts.aliases import RegistryAliases
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.service import RolloutService
from analyzer.wiring import LedgerSignatures, PolicyGateChecker
from gates.signature import SIGNATURE, SignatureGate, key_id
from tests.cosign_keys import CosignKeyPair, digest_of
from tests.integration.rollouts.harness import ALICE, MODEL, PLAN, Rig
from tests.mlflow_server import MlflowAdmin

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ARTIFACT = b"fraud-scorer v2: model.onnx bytes"
TAMPERED = b"fraud-scorer v2: model.onnx bytes, patched"
SIGNER = CosignKeyPair.generate()
STRANGER = CosignKeyPair.generate()


@pytest.fixture
def registry(mlflow_url: str) -> Iterator[MlflowRegistry]:
    client = MlflowRegistry(mlflow_url)
    yield client
    client.close()


def signed_rig(engine: Engine, registry: MlflowRegistry) -> Rig:
    settings = Settings(
        gates={"signature": {"public_keys": [{"name": "ml-platform", "pem": SIGNER.public_pem}]}}
    )
    assert settings.gates.signature is not None
    rig = Rig(engine, lambda r: Verdict.PASS)
    gate = SignatureGate(LedgerSignatures(rig.ledger), settings.gates.signature)
    # only the signature gate is configured: the tier's other gates stay closed (before 100 %)
    checker = PolicyGateChecker(settings.gates.policy, {SIGNATURE: gate})
    rig.service = RolloutService(engine, rig.ledger, rig.target, clock=rig.clock, registry=registry)
    rig.engine = RolloutEngine(
        engine, rig.ledger, rig.target, rig.analyzer, checker, clock=rig.clock,
        replica_id="test-replica", aliases=RegistryAliases(registry),
    )  # fmt: skip
    return rig


def register(admin: MlflowAdmin, name: str, **tags: str) -> None:
    admin.create_model(name)
    admin.create_version(name, "s3://models/fraud/v1", run_id="run-1", **tags)


def start(rig: Rig, uri: str, tier: Tier = Tier.REGULATED, **changes: Any) -> Any:
    request = StartRollout(
        model=MODEL, tier=tier, baseline_revision="fraud-00001", canary_revision="fraud-00002",
        profile="fraud", plan=PLAN, artifact_uri=uri,
    )  # fmt: skip
    return rig.service.start(replace(request, **changes), ALICE)


def signature_checks(rig: Rig) -> list[dict[str, Any]]:
    found = []
    for entry in rig.ledger.events(model=MODEL, event_types=[EventType.GATE_CHECKED]).entries:
        assert entry.revision == "fraud-00002"  # recorded per revision
        for decision in entry.data()["evidence"]["decisions"]:
            if decision["gate"] == SIGNATURE:
                found.append(decision)
    return found


def test_a_signature_in_the_registry_opens_the_first_step_and_is_recorded(
    pg_engine: Engine, registry: MlflowRegistry, mlflow_admin: MlflowAdmin, model_name: str
) -> None:
    register(mlflow_admin, model_name, artifact_digest=digest_of(ARTIFACT),
             cosign_signature=SIGNER.sign_blob(ARTIFACT))  # fmt: skip
    rig = signed_rig(pg_engine, registry)
    rollout = start(rig, f"models:/{model_name}/1")
    rig.run(minutes=1)
    assert rig.service.get(rollout.id).state is RolloutState.PROGRESSING
    assert rig.weight() == 10
    [check] = signature_checks(rig)
    assert check["open"] is True
    assert check["evidence"]["key_id"] == key_id(SIGNER.private.public_key())
    assert check["evidence"]["digest"] == digest_of(ARTIFACT)
    assert check["evidence"]["signature_source"] == "registry"
    assert check["checked_at"] == check["evidence"]["verified_at"]


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"artifact_digest": digest_of(TAMPERED), "cosign_signature": SIGNER.sign_blob(ARTIFACT)},
         "does not verify with any of the 1 configured keys"),
        ({"artifact_digest": digest_of(ARTIFACT),
          "cosign_signature": STRANGER.sign_blob(ARTIFACT)},
         "does not verify with any of the 1 configured keys"),
        ({"artifact_digest": digest_of(ARTIFACT)}, "is unsigned"),
    ],
    ids=["tampered-artifact", "wrong-key", "missing-signature"],
)  # fmt: skip
def test_regulated_canary_gets_no_traffic_without_a_valid_signature(
    pg_engine: Engine,
    registry: MlflowRegistry,
    mlflow_admin: MlflowAdmin,
    model_name: str,
    tags: dict[str, str],
    reason: str,
) -> None:
    register(mlflow_admin, model_name, **tags)
    rig = signed_rig(pg_engine, registry)
    rollout = start(rig, f"models:/{model_name}/1")
    rig.run(minutes=3)
    held = rig.service.get(rollout.id)
    assert held.state is RolloutState.PENDING
    assert rig.weight() == 0
    checks = signature_checks(rig)
    assert checks
    assert all(not c["open"] and reason in c["reason"] for c in checks)
    assert reason in (held.reason or "")
    # no traffic, so the challenger alias did not move either
    assert "challenger" not in mlflow_admin.aliases(model_name)


def test_a_standard_canary_goes_on_with_a_recorded_warning(
    pg_engine: Engine, registry: MlflowRegistry, mlflow_admin: MlflowAdmin, model_name: str
) -> None:
    register(mlflow_admin, model_name, artifact_digest=digest_of(ARTIFACT))
    rig = signed_rig(pg_engine, registry)
    start(rig, f"models:/{model_name}/1", tier=Tier.LONG_TAIL)
    rig.run(minutes=1)
    assert rig.weight() == 10
    [check] = signature_checks(rig)
    assert check["open"] is True
    assert check["reason"].startswith("warning: the artifact sha256:")
    assert check["evidence"]["warning"] is True


def test_a_declared_digest_differing_from_the_registry_closes(
    pg_engine: Engine, registry: MlflowRegistry, mlflow_admin: MlflowAdmin, model_name: str
) -> None:
    register(mlflow_admin, model_name, artifact_digest=digest_of(ARTIFACT),
             cosign_signature=SIGNER.sign_blob(ARTIFACT))  # fmt: skip
    rig = signed_rig(pg_engine, registry)
    start(rig, f"models:/{model_name}/1", tier=Tier.LONG_TAIL,
          artifact_digest=digest_of(TAMPERED))  # fmt: skip
    rig.run(minutes=2)
    assert rig.weight() == 0
    [first, *_] = signature_checks(rig)
    assert not first["open"]
    assert "differs from the registry's" in first["reason"]


def test_a_signature_carried_by_the_start_request_is_verified(
    pg_engine: Engine, registry: MlflowRegistry
) -> None:
    rig = signed_rig(pg_engine, registry)
    start(rig, "s3://models/fraud/v2/model.onnx", artifact_digest=digest_of(ARTIFACT),
          artifact_signature=SIGNER.sign_blob(ARTIFACT))  # fmt: skip
    rig.run(minutes=1)
    assert rig.weight() == 10
    [check] = signature_checks(rig)
    assert check["open"] is True
    assert check["evidence"]["signature_source"] == "request"
