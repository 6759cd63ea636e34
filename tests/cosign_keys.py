"""cosign's key-based formats, produced in the tests with ``cryptography``.

``cosign generate-key-pair`` writes ``cosign.pub``, a PEM SubjectPublicKeyInfo of an ECDSA P-256
key; ``cosign sign-blob --key cosign.key --output-signature f.sig f`` writes the base64 of the
ASN.1 DER ECDSA signature over SHA-256 of the file's bytes, which ``cosign verify-blob`` checks.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class CosignKeyPair:
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> CosignKeyPair:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign_blob(self, blob: bytes) -> str:
        """What ``cosign sign-blob`` writes for ``blob``: base64(DER(ECDSA-SHA256(blob)))."""
        return base64.b64encode(self.private.sign(blob, ec.ECDSA(hashes.SHA256()))).decode()


def digest_of(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()
