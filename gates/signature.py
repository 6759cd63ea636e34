"""The ``signature`` gate: the canary's artifact is signed by a trusted key, before any traffic.

Signatures are cosign's key-based ``sign-blob`` format: an ECDSA P-256 signature over the
SHA-256 of the artifact's bytes, ASN.1 DER, base64-encoded (``cosign sign-blob --key cosign.key
--output-signature model.sig model.tar``); public keys are PEM (``cosign.pub``). Because the
signature is over the SHA-256 of the bytes, the artifact's digest (``sha256:<hex>``) is all the
gate needs: it verifies the signature against that digest (``Prehashed``), so a tampered artifact
— whose digest differs — fails, without the gate ever downloading the model.

Decisions:

* the rollout's digest differs from the one the registry records → **closed**, every tier;
* verified by a configured key → open; the evidence names the key (``key_id``, ``key_name``);
* unsigned, no digest, or a signature no configured key verifies → **closed** for the tiers in
  ``enforce_tiers`` (default: ``regulated``), open with a *warning* for the others (the warning
  is the reason, and ``evidence.warning`` is true), so every result is recorded either way.

Where a Sigstore bundle (keyless signing) was provided with the rollout, the bundle decides
instead: it is verified offline against the configured trust root and signer identities
(:mod:`gates.sigstore_bundle`), with the same decisions — verified → open, naming the
certificate identity, issuer, Rekor time and log index; unverifiable → closed for the enforced
tiers, a warning for the others. A bundle with no Sigstore trust configured is unverifiable.

Where the signature comes from (the registry's version tag, or the rollout's start request) is a
:class:`SignatureSource`, so the gate reads no clock, no ledger and no registry itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from pydantic import BaseModel, ConfigDict, Field, model_validator

from analyzer.domain.model import Tier
from gates.base import GateContext, GateDecision, JsonValue, closed, opened
from gates.sigstore_bundle import SigstoreTrust, SigstoreVerifier

SIGNATURE = "signature"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignatureMaterial:
    """What was recorded for the rollout's artifact when it started."""

    signature: str | None  # base64 DER ECDSA signature, as cosign sign-blob writes it
    registry_digest: str | None  # the digest the model registry records for the version
    source: str | None = None  # "registry" or "request": where the signature came from
    bundle: str | None = None  # a Sigstore bundle (JSON text), when one was provided


class SignatureSource(Protocol):
    def material_for(self, context: GateContext) -> SignatureMaterial:
        """The signature material of ``context``'s rollout (empty when nothing was recorded).
        May raise: the gate turns any error into a closed decision."""
        ...


class TrustedKey(BaseModel):
    """A public key signatures are verified with: PEM text, or a file holding it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    pem: str | None = None
    path: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrustedKey:
        if (self.pem is None) == (self.path is None):
            raise ValueError(f"key {self.name!r}: give exactly one of pem and path")
        load_p256_key(self.pem_text(), self.name)  # refuse a bad key at start-up, not per check
        return self

    def pem_text(self) -> str:
        if self.pem is not None:
            return self.pem
        assert self.path is not None, "validated: pem or path"
        return self.path.read_text()


class SignatureGateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    public_keys: tuple[TrustedKey, ...] = ()
    # Keyless signing: the trust root and the identities allowed to sign (docs/registry.md).
    sigstore: SigstoreTrust | None = None
    # Tiers where an unsigned or unverifiable artifact closes the gate; the others get a warning.
    enforce_tiers: frozenset[Tier] = frozenset({Tier.REGULATED})

    @model_validator(mode="after")
    def _something_to_trust(self) -> SignatureGateConfig:
        if not self.public_keys and self.sigstore is None:
            raise ValueError("the signature gate needs public_keys, a sigstore trust root, or both")
        return self


def load_p256_key(pem: str, name: str = "key") -> ec.EllipticCurvePublicKey:
    """A PEM public key that must be ECDSA P-256 (cosign's default and the only kind here)."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"key {name!r} is not a PEM public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError(f"key {name!r} is not an ECDSA P-256 public key")
    return key


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """``sha256:`` of the key's DER SubjectPublicKeyInfo: stable, and computable by anyone from
    the public key (``openssl pkey -pubin -outform DER | sha256sum``)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


class SignatureGate:
    """Verifies the canary artifact's cosign signature against the configured keys."""

    def __init__(
        self, source: SignatureSource, config: SignatureGateConfig, *, name: str = SIGNATURE
    ) -> None:
        self._source = source
        self._config = config
        self._name = name
        self._keys = [(k.name, load_p256_key(k.pem_text(), k.name)) for k in config.public_keys]
        self._sigstore = SigstoreVerifier(config.sigstore) if config.sigstore else None

    @property
    def name(self) -> str:
        return self._name

    def check(self, context: GateContext) -> GateDecision:
        enforced = context.tier in self._config.enforce_tiers
        evidence: dict[str, JsonValue] = {
            "digest": context.artifact_digest, "model_version": context.canary_version,
            "verified_at": context.now.isoformat(), "enforced": enforced,
        }  # fmt: skip
        try:
            material = self._source.material_for(context)
        except Exception as exc:  # the source is the ledger: unreadable means undecided
            return closed(self._name, context,
                          f"the signature record could not be read ({type(exc).__name__})",
                          evidence | {"error": type(exc).__name__})  # fmt: skip
        evidence |= {"registry_digest": material.registry_digest,
                     "signature_source": material.source}  # fmt: skip
        digest = context.artifact_digest
        if material.registry_digest is not None and digest != material.registry_digest:
            return closed(
                self._name, context,
                f"the artifact digest {digest} differs from the registry's "
                f"{material.registry_digest}",
                evidence,
            )  # fmt: skip
        if material.bundle is not None:  # keyless: the bundle decides
            problem, found = self._verify_bundle(digest, material.bundle)
            evidence |= {"method": "sigstore-bundle", **found}
            if not problem:
                return opened(self._name, context,
                              f"Sigstore bundle verified: signed by {found['certificate_identity']}"
                              f" ({found['certificate_issuer']}) at {found['signed_at']}",
                              evidence)  # fmt: skip
        else:
            evidence["method"] = "cosign-key"
            problem, verified = self._verify(digest, material.signature)
            if verified is not None:
                name, kid = verified
                return opened(self._name, context, f"signature verified with key {name!r}",
                              evidence | {"key_name": name, "key_id": kid})  # fmt: skip
        if enforced:
            return closed(self._name, context, problem, evidence)
        return opened(self._name, context, f"warning: {problem}", evidence | {"warning": True})

    def _verify_bundle(self, digest: str | None, bundle: str) -> tuple[str, dict[str, JsonValue]]:
        """``(problem, evidence)``: an empty problem when the bundle verified."""
        if digest is None or not digest.startswith("sha256:"):
            return "the rollout names no sha256 artifact digest to verify the bundle over", {}
        if self._sigstore is None:
            return "a Sigstore bundle was provided but no Sigstore trust root is configured", {}
        result = self._sigstore.verify(digest, bundle)
        return result.problem, dict(result.evidence())

    def _verify(
        self, digest: str | None, signature: str | None
    ) -> tuple[str, tuple[str, str] | None]:
        """``(problem, None)`` or ``("", (key name, key id))`` of the key that verified."""
        if digest is None or not digest.startswith("sha256:"):
            return "the rollout names no sha256 artifact digest to verify a signature over", None
        if signature is None:
            return f"the artifact {digest} is unsigned", None
        try:
            raw = base64.b64decode(signature, validate=True)
            hashed = bytes.fromhex(digest.removeprefix("sha256:"))
        except (binascii.Error, ValueError):
            return "the signature is not base64", None
        for name, key in self._keys:
            try:
                key.verify(raw, hashed, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            except (InvalidSignature, ValueError):
                continue
            return "", (name, key_id(key))
        return (
            f"the signature over {digest} does not verify with any of the "
            f"{len(self._keys)} configured keys",
            None,
        )
