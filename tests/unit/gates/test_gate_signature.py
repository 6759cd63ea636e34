"""The signature gate on cosign sign-blob signatures made in the test with fresh P-256 keys."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from analyzer.domain.model import Tier
from gates.base import GateContext
from gates.policy import GatePolicyConfig
from gates.signature import (
    SignatureGate,
    SignatureGateConfig,
    SignatureMaterial,
    TrustedKey,
    key_id,
)
from tests.cosign_keys import CosignKeyPair, digest_of
from tests.unit.gates.helpers import MODEL, context

ARTIFACT = b"model.pkl bytes: gradient-boosted trees, 400 estimators"
TAMPERED = ARTIFACT.replace(b"400", b"401")
SIGNER = CosignKeyPair.generate()
OTHER = CosignKeyPair.generate()


class Recorded:
    def __init__(self, material: SignatureMaterial | Exception) -> None:
        self.material = material

    def material_for(self, ctx: GateContext) -> SignatureMaterial:
        if isinstance(self.material, Exception):
            raise self.material
        return self.material


def gate(material: SignatureMaterial | Exception, *keys: CosignKeyPair) -> SignatureGate:
    trusted = tuple(
        TrustedKey(name=f"key-{i}", pem=k.public_pem) for i, k in enumerate(keys or (SIGNER,))
    )
    return SignatureGate(Recorded(material), SignatureGateConfig(public_keys=trusted))


def signed(blob: bytes = ARTIFACT, by: CosignKeyPair = SIGNER) -> SignatureMaterial:
    return SignatureMaterial(signature=by.sign_blob(blob), registry_digest=None, source="registry")


def test_a_valid_signature_opens_and_records_key_digest_and_time() -> None:
    decision = gate(signed()).check(context(artifact_digest=digest_of(ARTIFACT)))
    assert decision.open, decision.reason
    assert decision.reason == "signature verified with key 'key-0'"
    ev = decision.evidence
    assert ev["key_id"] == key_id(SIGNER.private.public_key())
    assert ev["key_id"].startswith("sha256:")
    assert ev["digest"] == digest_of(ARTIFACT)
    assert ev["verified_at"] == context().now.isoformat()
    assert ev["signature_source"] == "registry"


def test_any_configured_key_may_verify() -> None:
    decision = gate(signed(by=SIGNER), OTHER, SIGNER).check(
        context(artifact_digest=digest_of(ARTIFACT))
    )
    assert decision.open
    assert decision.evidence["key_name"] == "key-1"


@pytest.mark.parametrize(
    ("material", "digest", "reason"),
    [
        # the registry's bytes were swapped: their digest is not what was signed
        (signed(ARTIFACT), digest_of(TAMPERED), "does not verify with any of the 1 configured"),
        (signed(by=OTHER), digest_of(ARTIFACT), "does not verify with any of the 1 configured"),
        (SignatureMaterial(signature=None, registry_digest=None), digest_of(ARTIFACT),
         "is unsigned"),
        (signed(), None, "names no sha256 artifact digest"),
        (SignatureMaterial(signature="not base64!", registry_digest=None), digest_of(ARTIFACT),
         "is not base64"),
        (SignatureMaterial(signature=base64.b64encode(b"\x30\x02junk").decode(),
                           registry_digest=None), digest_of(ARTIFACT), "does not verify"),
    ],
)  # fmt: skip
def test_regulated_closes_on_a_bad_or_missing_signature_with_the_reason(
    material: SignatureMaterial, digest: str | None, reason: str
) -> None:
    decision = gate(material).check(context(artifact_digest=digest, tier=Tier.REGULATED))
    assert not decision.open
    assert reason in decision.reason
    assert decision.evidence["enforced"] is True


@pytest.mark.parametrize("tier", [Tier.STANDARD, Tier.HOT_PATH, Tier.LONG_TAIL])
def test_other_tiers_get_a_recorded_warning(tier: Tier) -> None:
    decision = gate(signed(by=OTHER)).check(context(artifact_digest=digest_of(ARTIFACT), tier=tier))
    assert decision.open
    assert decision.reason.startswith("warning: the signature over")
    assert decision.evidence["warning"] is True


@pytest.mark.parametrize("tier", list(Tier))
def test_a_digest_differing_from_the_registry_closes_for_every_tier(tier: Tier) -> None:
    material = SignatureMaterial(
        signature=SIGNER.sign_blob(ARTIFACT), registry_digest=digest_of(TAMPERED)
    )
    decision = gate(material).check(context(artifact_digest=digest_of(ARTIFACT), tier=tier))
    assert not decision.open
    assert "differs from the registry's" in decision.reason


def test_an_unreadable_record_closes() -> None:
    decision = gate(RuntimeError("db gone")).check(
        context(artifact_digest=digest_of(ARTIFACT), tier=Tier.LONG_TAIL)
    )
    assert not decision.open
    assert "could not be read (RuntimeError)" in decision.reason


def test_only_p256_public_keys_are_accepted() -> None:
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    for key in (rsa_pem, p384):
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        with pytest.raises(ValidationError, match="not an ECDSA P-256 public key"):
            TrustedKey(name="k", pem=pem)
    with pytest.raises(ValidationError, match="not a PEM public key"):
        TrustedKey(name="k", pem="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValidationError, match="exactly one of pem and path"):
        TrustedKey(name="k")
    with pytest.raises(ValidationError):
        SignatureGateConfig(public_keys=())


def test_a_key_file_is_read(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "cosign.pub"
    path.write_text(SIGNER.public_pem)
    config = SignatureGateConfig(public_keys=(TrustedKey(name="file", path=path),))
    decision = SignatureGate(Recorded(signed()), config).check(
        context(artifact_digest=digest_of(ARTIFACT))
    )
    assert decision.open


def test_configured_signature_gate_joins_every_policy_at_every_step() -> None:
    config = GatePolicyConfig().requiring("signature", from_weight=0)
    policy = config.policy_for(MODEL, Tier.LONG_TAIL)
    assert policy.required_for(10) == ("signature",)
    regulated = config.policy_for(MODEL, Tier.REGULATED)
    assert regulated.required_for(100) == ("signature", "servicenow-change", "manual-approval")
    # a model policy that names the gate keeps its own from_weight
    own = GatePolicyConfig.model_validate(
        {"models": {str(MODEL): {"requirements": [{"gate": "signature", "from_weight": 100}]}}}
    ).requiring("signature")
    assert own.policy_for(MODEL, Tier.REGULATED).required_for(50) == ()
    assert config.requiring("signature") is config
