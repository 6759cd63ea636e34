"""A fake OIDC identity provider over real HTTP, issuing Entra ID- or Okta-shaped access tokens.

Stdlib HTTP (``http.server`` in a daemon thread on a random 127.0.0.1 port), keys from
``cryptography``, tokens from PyJWT. What it mirrors of the real providers:

* **Entra ID** (Microsoft identity platform v2.0): issuer ``{base}/{tenant}/v2.0``, discovery at
  ``{issuer}/.well-known/openid-configuration``, keys at ``{base}/{tenant}/discovery/v2.0/keys``
  (``kty``/``use``/``kid``/``x5t``/``n``/``e``; Entra publishes no ``alg``); access tokens with
  ``ver: "2.0"``, ``aud`` = the API's client ID, ``tid``, ``oid``, ``sub``, ``roles`` (app-role
  values), ``groups`` (object IDs) or, past the groups limit, the overage marker
  ``_claim_names: {"groups": "src1"}`` and ``_claim_sources``.
* **Okta** (custom authorization server ``default``): issuer ``{base}/oauth2/default``, keys at
  ``{issuer}/v1/keys`` (with ``alg: RS256``); access tokens with ``ver: 1``, ``aud:
  api://default``, ``cid``, ``uid``, ``scp``, ``sub`` = the user's login, and the ``groups``
  claim an admin adds (group names), plus any custom claim.

Keys rotate as the providers do it: :meth:`rotate` publishes a new key and signs with it, the
old one stays published until :meth:`retire` removes it. Every request path is recorded, so a
test can count discovery and key fetches.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

Shape = Literal["entra_id", "okta"]
ENTRA_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_CLIENT_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
OKTA_AUDIENCE = "api://default"


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class _Key:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self, shape: Shape) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        jwk = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
        }
        if shape == "entra_id":
            jwk["x5t"] = self.kid  # Entra's kid and x5t are the certificate thumbprint
        else:
            jwk["alg"] = "RS256"
        return jwk


class FakeIdentityProvider:
    """One tenant of Entra ID, or one Okta org's ``default`` authorization server."""

    def __init__(self, shape: Shape, *, tenant: str = ENTRA_TENANT) -> None:
        self.shape = shape
        self.tenant = tenant
        self.requests: list[str] = []
        self.discovery_issuer_override: str | None = None  # a document naming another issuer
        self._keys: dict[str, _Key] = {}  # every key ever made, published or retired
        self._published: list[str] = []
        self._signing: _Key | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.rotate()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        if self.shape == "entra_id":
            return f"{self.base}/{self.tenant}/v2.0"
        return f"{self.base}/oauth2/default"

    @property
    def audience(self) -> str:
        return ENTRA_CLIENT_ID if self.shape == "entra_id" else OKTA_AUDIENCE

    @property
    def jwks_path(self) -> str:
        if self.shape == "entra_id":
            return f"/{self.tenant}/discovery/v2.0/keys"
        return "/oauth2/default/v1/keys"

    def _issuer_path(self) -> str:
        return self.issuer[len(self.base) :]

    def discovery(self) -> dict[str, Any]:
        issuer = self.discovery_issuer_override or self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": self.base + self.jwks_path,
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise" if self.shape == "entra_id" else "public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return {"keys": [self._keys[kid].jwk(self.shape) for kid in self._published]}

    # -- keys --------------------------------------------------------------------------------
    def rotate(self) -> str:
        """Publish a new key and sign with it from now on; the old key stays published."""
        key = _Key(
            kid=uuid.uuid4().hex[:16],
            private=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )
        with self._lock:
            self._keys[key.kid] = key
            self._published.append(key.kid)
            self._signing = key
        return key.kid

    def retire(self, kid: str) -> None:
        with self._lock:
            self._published.remove(kid)

    @property
    def signing_kid(self) -> str:
        assert self._signing is not None
        return self._signing.kid

    # -- tokens ------------------------------------------------------------------------------
    def claims(self, *, user: str = "alice", lifetime: int = 3600, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        common: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + lifetime,
        }
        if self.shape == "entra_id":
            oid = str(uuid.uuid5(uuid.NAMESPACE_DNS, user))
            common |= {
                "nbf": now,
                "ver": "2.0",
                "tid": self.tenant,
                "oid": oid,
                "sub": f"sub-{oid[:8]}",
                "azp": str(uuid.uuid4()),
                "preferred_username": f"{user}@contoso.example",
                "name": user.title(),
                "scp": "access_as_user",
            }
        else:
            common |= {
                "ver": 1,
                "jti": f"AT.{uuid.uuid4().hex}",
                "cid": "0oa1canaryanalyzer",
                "uid": "00u" + uuid.uuid5(uuid.NAMESPACE_DNS, user).hex[:17],
                "sub": f"{user}@example.com",
                "scp": ["openid", "profile"],
                "auth_time": now,
            }
        return common | extra

    def token(self, *, kid: str | None = None, user: str = "alice", **claims: Any) -> str:
        """A signed access token of this provider's shape; ``claims`` add to or replace its own."""
        key = self._keys[kid or self.signing_kid]
        body = {k: v for k, v in self.claims(user=user, **claims).items() if v is not None}
        headers = {"kid": key.kid, "typ": "JWT"}
        return jwt.encode(body, key.private, algorithm="RS256", headers=headers)

    def token_signed_by_unpublished_key(self, kid: str = "never-published") -> str:
        """A token whose kid was never published (a forger, or a key from elsewhere)."""
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(self.claims(), stranger, algorithm="RS256", headers={"kid": kid})

    # -- HTTP --------------------------------------------------------------------------------
    def count(self, path_suffix: str) -> int:
        return sum(1 for p in self.requests if p.endswith(path_suffix))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are separate writes

            def do_GET(self) -> None:
                idp.requests.append(self.path)
                if self.path == idp._issuer_path() + "/.well-known/openid-configuration":
                    self._json(200, idp.discovery())
                elif self.path == idp.jwks_path:
                    self._json(200, idp.jwks())
                else:
                    self._json(404, {"error": "not_found"})

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> FakeIdentityProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
