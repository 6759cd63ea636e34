"""OIDC discovery and the claim shapes of Entra ID and Okta (docs/identity.md).

Discovery: with ``api.oidc_issuer`` and no ``api.oidc_jwks_url``, the signing keys are found the
standard way: ``{issuer}/.well-known/openid-configuration`` names ``jwks_uri``. The document
must name the configured issuer exactly (OpenID Connect Discovery 1.0, section 4.3), so a
mistyped or hijacked issuer URL cannot hand us someone else's keys. The ``jwks_uri`` is kept
until a key fetch from it fails, then discovered again; keys themselves are cached and rotated
by :class:`analyzer.api.auth.JwksCache` (unknown ``kid`` → one bounded refetch).

Claims: each identity provider puts who-may-do-what in its own place.

* **Entra ID** access tokens carry app roles in ``roles`` (the *value* of each app role
  assigned to the user, e.g. ``Canary.Operator``), security groups as object IDs in
  ``groups``, and the directory in ``tid``. A user in too many groups gets no ``groups`` but an
  overage marker (``_claim_names.groups``); we cannot call Microsoft Graph, so such a user gets
  only what app roles grant, and a 403 says why.
* **Okta** custom authorization servers carry group names in ``groups`` (a claim the admin adds,
  usually filtered, e.g. "starts with canary-") and any custom claim the admin defines.

:class:`ClaimMapping` turns claims into roles and namespaces: a value of the roles claim that is
one of our role names grants it directly; any value of the roles or groups claim listed in
``oidc_role_map`` grants the roles it maps to; namespaces come from ``oidc_namespaces_claim``
and ``oidc_namespace_map`` (either set scopes tokens: no match reaches nothing, ``*`` reaches
every namespace). Nothing maps by default, so an unmapped group grants nothing (403).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

import httpx
import structlog

from analyzer.api.errors import ApiError
from analyzer.config import ApiSettings, RoleName
from analyzer.domain.errors import PermissionDeniedError
from analyzer.rollouts.control import Actor

log = structlog.get_logger(__name__)

ROLE_VALUES = frozenset(get_args(RoleName))
DISCOVERY_PATH = "/.well-known/openid-configuration"
# The claims each provider shape reads unless the settings name others.
PRESET_GROUPS_CLAIM = {"entra_id": "groups", "okta": "groups"}
PRESET_TENANT_CLAIM = {"entra_id": "tid"}

JsonGetter = Callable[[str], Mapping[str, Any]]


def unauthorized(message: str) -> ApiError:
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def http_json_getter(*, timeout: float = 5.0) -> JsonGetter:
    def get(url: str) -> Mapping[str, Any]:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, Mapping):
            raise ValueError(f"{url} did not answer a JSON object")
        return document

    return get


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + DISCOVERY_PATH


class DiscoveredJwks:
    """A JWKS fetcher that finds ``jwks_uri`` through the issuer's discovery document."""

    def __init__(self, issuer: str, *, get: JsonGetter | None = None) -> None:
        self._issuer = issuer
        self._get = get or http_json_getter()
        self._jwks_uri: str | None = None

    def jwks_uri(self) -> str:
        if self._jwks_uri is None:
            document = self._get(discovery_url(self._issuer))
            named = document.get("issuer")
            if named != self._issuer:
                raise ValueError(
                    f"discovery document at {discovery_url(self._issuer)} names issuer "
                    f"{named!r}, not the configured {self._issuer!r}"
                )
            uri = document.get("jwks_uri")
            if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
                raise ValueError(f"discovery document has no usable jwks_uri ({uri!r})")
            self._jwks_uri = uri
            log.info("auth.oidc.discovered", issuer=self._issuer, jwks_uri=uri)
        return self._jwks_uri

    def __call__(self) -> Mapping[str, Any]:
        uri = self.jwks_uri()
        try:
            return self._get(uri)
        except Exception:
            self._jwks_uri = None  # the keys may have moved: discover again next time
            raise


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def claim_values(claims: Mapping[str, Any], path: str | None) -> frozenset[str]:
    """A claim as a set of names: a list, or a space/comma separated string."""
    if path is None:
        return frozenset()
    value = _claim(claims, path)
    if isinstance(value, str):
        return frozenset(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value)
    return frozenset()


@dataclass(frozen=True, kw_only=True)
class ClaimMapping:
    """How one identity provider's claims become an :class:`Actor` (module docstring)."""

    roles_claim: str = "roles"
    groups_claim: str | None = None
    namespaces_claim: str | None = None
    tenant_claim: str | None = None
    tenant_id: str | None = None
    role_map: Mapping[str, frozenset[str]] = field(default_factory=dict)
    namespace_map: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, api: ApiSettings) -> ClaimMapping:
        provider = api.oidc_provider
        return cls(
            roles_claim=api.oidc_roles_claim,
            groups_claim=api.oidc_groups_claim or PRESET_GROUPS_CLAIM.get(provider),
            namespaces_claim=api.oidc_namespaces_claim,
            tenant_claim=PRESET_TENANT_CLAIM.get(provider),
            tenant_id=api.oidc_tenant_id,
            role_map={k: frozenset(v) for k, v in api.oidc_role_map.items()},
            namespace_map={k: frozenset(v) for k, v in api.oidc_namespace_map.items()},
        )

    def actor(self, claims: Mapping[str, Any]) -> Actor:
        """The actor the verified ``claims`` stand for; 401 for another tenant's token."""
        if self.tenant_claim is not None:
            tenant = claims.get(self.tenant_claim)
            if tenant != self.tenant_id:
                raise unauthorized(
                    f"token is from tenant {tenant!r}, not the configured {self.tenant_id!r}"
                )
        role_values = claim_values(claims, self.roles_claim)
        group_values = claim_values(claims, self.groups_claim)
        granted = set(role_values & ROLE_VALUES)
        for value in role_values | group_values:
            granted |= self.role_map.get(value, frozenset())
        if not granted and self._groups_overage(claims):
            raise PermissionDeniedError(
                "your token lists no groups because you are in too many (Entra ID groups "
                "overage); ask the admin to assign an app role, or to emit only groups "
                "assigned to the application (docs/identity.md)"
            )
        return Actor(
            subject=str(claims["sub"]),
            roles=frozenset(granted),
            namespaces=self._namespaces(claims, role_values | group_values),
        )

    def _namespaces(
        self, claims: Mapping[str, Any], values: frozenset[str]
    ) -> frozenset[str] | None:
        if self.namespaces_claim is None and not self.namespace_map:
            return None  # not scoped: every namespace
        # Fail closed: with scoping configured, a token that matches nothing reaches nothing.
        reached = set(claim_values(claims, self.namespaces_claim))
        for value in values:
            reached |= self.namespace_map.get(value, frozenset())
        return None if "*" in reached else frozenset(reached)

    def _groups_overage(self, claims: Mapping[str, Any]) -> bool:
        names = claims.get("_claim_names")
        return (
            self.groups_claim is not None
            and isinstance(names, Mapping)
            and self.groups_claim in names
            and self.groups_claim not in claims
        )
