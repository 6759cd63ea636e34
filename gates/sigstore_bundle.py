"""Sigstore bundles (keyless signing), verified offline against a configured trust root.

A Sigstore bundle (``cosign sign-blob --bundle``, ``python -m sigstore sign``, GitHub artifact
attestations of a file) carries a short-lived Fulcio certificate that names the signer's OIDC
identity, the signature over the artifact's SHA-256, and the Rekor transparency-log entry
(its signed inclusion promise and an inclusion proof with a signed checkpoint). The operator
configures the trust root (``trusted_root.json``: Fulcio CAs, Rekor and CT-log keys, as
``sigstore``/``cosign trusted-root`` write it — the public-good instance's or a private one's)
and the identities allowed to sign (OIDC issuer + certificate subject). Verification is the
``sigstore`` package's (``Verifier.verify_artifact`` with a ``TrustedRoot`` from that file) and
runs **offline**: no TUF refresh, no Rekor or Fulcio call, which an air-gapped cluster needs:

1. the leaf certificate chains to a configured Fulcio CA and was valid at Rekor's integrated
   time, and its embedded SCT is signed by a configured CT log;
2. the log entry's inclusion proof and signed checkpoint (or its signed promise) verify with a
   configured Rekor key;
3. the signature verifies with the certificate's key over the rollout's digest, and the bundle
   and the log entry name that same digest — a tampered artifact has another digest;
4. the certificate's identity (SAN) and issuer equal one configured identity.

Only the artifact's digest (``sha256:<hex>``) is needed, never the artifact's bytes. The
``sigstore`` package is imported when a trust root is configured (``pip install
'canary-analyzer[sigstore]'``); without it a configured service refuses to start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The Fulcio certificate extension that names the OIDC issuer (v2, DER UTF8String; v1 raw).
_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"


class SigstoreIdentity(BaseModel):
    """Who may sign: the OIDC issuer and the certificate's subject (its SAN), both exact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1, max_length=512)  # the OIDC issuer, e.g. GitHub Actions'
    subject: str = Field(
        min_length=1, max_length=1024
    )  # the certificate's SAN: a workflow URI or e-mail


class SigstoreTrust(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trusted_root: Path  # a Sigstore trusted_root.json (Fulcio CAs, Rekor and CT-log keys)
    identities: tuple[SigstoreIdentity, ...] = Field(min_length=1)  # who may sign (any one)


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleResult:
    """What verifying a bundle found; ``problem`` is empty when it verified."""

    problem: str
    identity: str | None = None  # the certificate's SAN
    issuer: str | None = None  # the OIDC issuer the certificate names
    signed_at: str | None = None  # Rekor's integrated time (ISO 8601)
    log_index: int | None = None  # the Rekor log index

    @property
    def verified(self) -> bool:
        return not self.problem

    def evidence(self) -> dict[str, str | int | None]:
        return {"certificate_identity": self.identity, "certificate_issuer": self.issuer,
                "signed_at": self.signed_at, "rekor_log_index": self.log_index}  # fmt: skip


class SigstoreVerifier:
    """Verifies bundles with the configured trust root and identities (both read once)."""

    def __init__(self, trust: SigstoreTrust) -> None:
        try:
            from sigstore.models import TrustedRoot  # noqa: PLC0415 - optional dependency
            from sigstore.verify import Verifier, policy  # noqa: PLC0415
        except ImportError as exc:  # refuse at start-up, not at the first rollout
            raise ValueError(
                "a Sigstore trust root is configured but the sigstore package is not installed "
                "(pip install 'canary-analyzer[sigstore]')"
            ) from exc
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415

        try:
            root = TrustedRoot.from_file(str(trust.trusted_root))
            self._verifier = Verifier(trusted_root=root)
        except (OSError, ValueError, SigstoreError) as exc:
            raise ValueError(f"trusted_root {trust.trusted_root}: {_brief(exc)}") from exc
        self._policy = policy.AnyOf(
            [policy.Identity(identity=i.subject, issuer=i.issuer) for i in trust.identities]
        )
        self._identities = trust.identities

    def verify(self, digest: str, bundle: str) -> BundleResult:
        """Verify ``bundle`` (its JSON text) over ``digest`` (``sha256:<hex>``)."""
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415
        from sigstore.hashes import Hashed  # noqa: PLC0415
        from sigstore.models import Bundle  # noqa: PLC0415
        from sigstore_models.common.v1 import HashAlgorithm  # noqa: PLC0415

        try:
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256,
                            digest=bytes.fromhex(digest.removeprefix("sha256:")))  # fmt: skip
        except ValueError:
            return BundleResult(problem=f"{digest!r} is not a sha256 digest")
        try:
            parsed = Bundle.from_json(bundle)
        except (SigstoreError, ValueError, TypeError, KeyError) as exc:
            return BundleResult(problem=f"the Sigstore bundle cannot be read: {_brief(exc)}")
        found = _described(parsed, bundle)
        try:
            self._verifier.verify_artifact(hashed, parsed, self._policy)
        except (SigstoreError, ValueError, TypeError) as exc:
            why = _brief(exc)
            if not any(i.subject == found["identity"] and i.issuer == found["issuer"]
                       for i in self._identities):  # fmt: skip
                why = (f"signed by {found['identity']} ({found['issuer']}), which is not a "
                       f"configured signer identity")  # fmt: skip
            return BundleResult(
                problem=f"the Sigstore bundle does not verify over {digest}: {why}", **found
            )
        return BundleResult(problem="", **found)


def _described(bundle: Any, text: str) -> dict[str, Any]:
    """The signer's identity and issuer (from the leaf certificate) and the log entry's time
    and index, read for the record even when verification then fails."""
    from cryptography import x509  # noqa: PLC0415

    found: dict[str, Any] = {"identity": None, "issuer": None}
    cert = bundle.signing_certificate
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        values = [*names.get_values_for_type(x509.UniformResourceIdentifier),
                  *names.get_values_for_type(x509.RFC822Name)]  # fmt: skip
        found["identity"] = values[0] if values else None
    except x509.ExtensionNotFound:
        found["identity"] = None
    found["issuer"] = _issuer(cert)
    try:
        entry = json.loads(text)["verificationMaterial"]["tlogEntries"][0]
        moment = datetime.fromtimestamp(int(entry["integratedTime"]), tz=UTC)
        found["signed_at"] = moment.isoformat().replace("+00:00", "Z")
        found["log_index"] = int(entry["logIndex"])
    except (KeyError, IndexError, TypeError, ValueError):
        pass
    return found


def _issuer(cert: Any) -> str | None:
    from cryptography import x509  # noqa: PLC0415

    for oid, der in ((_ISSUER_V2, True), (_ISSUER_V1, False)):
        try:
            raw = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value.value
        except x509.ExtensionNotFound:
            continue
        # v2 is a DER UTF8String (tag 0x0c, short length); v1 the raw bytes of the URL.
        text = raw[2:] if der and len(raw) > 2 and raw[0] == 0x0C and raw[1] < 0x80 else raw
        return bytes(text).decode("utf-8", "replace")
    return None


def _brief(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:300]
