"""The signature gate on a published Sigstore bundle, verified offline (tests/data/sigstore).

The vector is the bundle trailofbits/rfc8785.py's release workflow published for its v0.1.2
wheel on the public-good Sigstore instance (from sigstore-python's test assets), with the
public-good trust root sigstore-python ships: a real Fulcio certificate, a real Rekor entry
with its signed promise and inclusion proof. Nothing is fetched (the tests run offline).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from analyzer.domain.model import Tier
from gates.signature import SignatureGate, SignatureGateConfig, SignatureMaterial, TrustedKey
from gates.sigstore_bundle import SigstoreIdentity, SigstoreTrust, SigstoreVerifier
from tests.cosign_keys import CosignKeyPair
from tests.unit.gates.helpers import context
from tests.unit.gates.test_gate_signature import Recorded

DATA = Path(__file__).parents[2] / "data" / "sigstore"
ROOT = DATA / "trusted_root.public-good.json"
BUNDLE_TEXT = (DATA / "rfc8785-0.1.2-py3-none-any.whl.sigstore.json").read_text()
WHEEL_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
RELEASER = SigstoreIdentity(issuer=ISSUER, subject=WORKFLOW)


def sigstore_gate(
    bundle: str | None = BUNDLE_TEXT,
    *,
    identities: tuple[SigstoreIdentity, ...] = (RELEASER,),
    root: Path = ROOT,
) -> SignatureGate:
    material = SignatureMaterial(signature=None, registry_digest=None, source="request",
                                 bundle=bundle)  # fmt: skip
    trust = SigstoreTrust(trusted_root=root, identities=identities)
    return SignatureGate(Recorded(material), SignatureGateConfig(sigstore=trust))


def edited(change: Any) -> str:
    bundle = json.loads(BUNDLE_TEXT)
    change(bundle)
    return json.dumps(bundle)


def test_the_published_bundle_verifies_offline_and_records_who_and_when() -> None:
    decision = sigstore_gate().check(context(artifact_digest=WHEEL_DIGEST))
    assert decision.open, decision.reason
    ev = decision.evidence
    assert ev["method"] == "sigstore-bundle"
    assert ev["certificate_identity"] == WORKFLOW
    assert ev["certificate_issuer"] == ISSUER
    assert ev["signed_at"] == "2024-03-19T22:41:16Z"  # Rekor's integrated time, 1710888076
    assert ev["rekor_log_index"] == 79605083
    assert ev["digest"] == WHEEL_DIGEST
    assert ev["verified_at"] == context().now.isoformat()
    assert decision.reason == (
        f"Sigstore bundle verified: signed by {WORKFLOW} ({ISSUER}) at 2024-03-19T22:41:16Z"
    )


@pytest.mark.parametrize(
    ("gate_", "digest", "reason"),
    [
        # the artifact was swapped: its digest is not the one signed and logged
        (sigstore_gate(), "sha256:" + "c5" * 32, "Bundle message digest mismatch"),
        # a configured signer is someone else: the certificate names the real one
        (sigstore_gate(identities=(SigstoreIdentity(issuer=ISSUER, subject=WORKFLOW.replace(
            "v0.1.2", "v9.9.9")),)), WHEEL_DIGEST, f"signed by {WORKFLOW} ({ISSUER}), which is "
         "not a configured signer identity"),
        (sigstore_gate(identities=(SigstoreIdentity(issuer="https://accounts.google.com",
                                                    subject=WORKFLOW),)), WHEEL_DIGEST,
         "which is not a configured signer identity"),
        # one byte of the signature changed
        (sigstore_gate(edited(lambda b: b["messageSignature"].update(
            signature="MEUCIQ" + b["messageSignature"]["signature"][6:]))), WHEEL_DIGEST,
         "Signature is invalid for input"),
        # the log entry's time moved past the certificate's ten minutes
        (sigstore_gate(edited(lambda b: b["verificationMaterial"]["tlogEntries"][0].update(
            integratedTime="1710888999"))), WHEEL_DIGEST, "not valid at validation time"),
        (sigstore_gate("{}"), WHEEL_DIGEST, "the Sigstore bundle cannot be read"),
        (sigstore_gate("not json"), WHEEL_DIGEST, "the Sigstore bundle cannot be read"),
        (sigstore_gate(), None, "names no sha256 artifact digest to verify the bundle over"),
    ],
)  # fmt: skip
def test_tampered_foreign_or_broken_bundles_close_the_gate_for_regulated(
    gate_: SignatureGate, digest: str | None, reason: str
) -> None:
    decision = gate_.check(context(artifact_digest=digest))
    assert not decision.open
    assert reason in decision.reason
    assert decision.evidence["method"] == "sigstore-bundle"
    warned = gate_.check(context(artifact_digest=digest, tier=Tier.STANDARD))
    assert warned.open  # the other tiers get a warning, recorded
    assert warned.reason == f"warning: {decision.reason}"
    assert warned.evidence["warning"] is True


def test_a_trust_root_with_another_rekor_key_verifies_nothing(tmp_path: Path) -> None:
    root = json.loads(ROOT.read_text())
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = other_key.public_bytes(serialization.Encoding.DER,
                                 serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    for log in root["tlogs"]:  # same log id, another key: the promise and checkpoint fail
        log["publicKey"]["rawBytes"] = base64.b64encode(der).decode()
    forged = tmp_path / "trusted_root.json"
    forged.write_text(json.dumps(root))
    decision = sigstore_gate(root=forged).check(context(artifact_digest=WHEEL_DIGEST))
    assert not decision.open
    assert "does not verify" in decision.reason


def test_a_trust_root_of_another_fulcio_verifies_nothing(tmp_path: Path) -> None:
    root = json.loads(ROOT.read_text())
    other = copy.deepcopy(root)
    for authority in other["certificateAuthorities"]:  # a private Fulcio: not this CA
        authority["certChain"]["certificates"] = root["certificateAuthorities"][0]["certChain"][
            "certificates"][:1]  # fmt: skip
        authority["subject"]["commonName"] = "private-fulcio"
    private = tmp_path / "private_root.json"
    private.write_text(json.dumps(other))
    decision = sigstore_gate(root=private).check(context(artifact_digest=WHEEL_DIGEST))
    assert not decision.open, decision.reason


def test_a_bundle_without_a_sigstore_trust_root_is_unverifiable() -> None:
    material = SignatureMaterial(signature=None, registry_digest=None, bundle=BUNDLE_TEXT)
    keys = (TrustedKey(name="k", pem=CosignKeyPair.generate().public_pem),)
    gate_ = SignatureGate(Recorded(material), SignatureGateConfig(public_keys=keys))
    decision = gate_.check(context(artifact_digest=WHEEL_DIGEST))
    assert not decision.open
    assert decision.reason == (
        "a Sigstore bundle was provided but no Sigstore trust root is configured"
    )


def test_the_registry_digest_still_decides_first() -> None:
    material = SignatureMaterial(signature=None, registry_digest="sha256:" + "ab" * 32,
                                 bundle=BUNDLE_TEXT)  # fmt: skip
    trust = SigstoreTrust(trusted_root=ROOT, identities=(RELEASER,))
    gate_ = SignatureGate(Recorded(material), SignatureGateConfig(sigstore=trust))
    decision = gate_.check(context(artifact_digest=WHEEL_DIGEST, tier=Tier.STANDARD))
    assert not decision.open  # every tier: the artifact is not the registry's
    assert "differs from the registry's" in decision.reason


def test_configuration_is_refused_at_start_up_not_at_the_first_rollout(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs public_keys, a sigstore trust root"):
        SignatureGateConfig()
    with pytest.raises(ValidationError, match="identities"):
        SigstoreTrust(trusted_root=ROOT, identities=())
    missing = SigstoreTrust(trusted_root=tmp_path / "absent.json", identities=(RELEASER,))
    with pytest.raises(ValueError, match=r"absent\.json"):
        SigstoreVerifier(missing)
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(ValueError, match=r"junk\.json"):
        SigstoreVerifier(SigstoreTrust(trusted_root=tmp_path / "junk.json",
                                       identities=(RELEASER,)))  # fmt: skip
    root = json.loads(ROOT.read_text())
    root["tlogs"] = []
    (tmp_path / "no_rekor.json").write_text(json.dumps(root))
    with pytest.raises(ValueError, match="no transparency log"):
        SigstoreVerifier(SigstoreTrust(trusted_root=tmp_path / "no_rekor.json",
                                       identities=(RELEASER,)))  # fmt: skip
