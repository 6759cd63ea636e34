"""Bearer-token authentication (OIDC JWTs and static tokens) and role-based authorization.

OIDC: the token's header must name an allowed asymmetric algorithm (``RS256``/``ES256`` by
default) and a ``kid``; ``none`` and every ``HS*`` are refused before any key is looked at, so a
public key can never be used as an HMAC secret. The key comes from the configured JWKS URL,
cached for ``jwks_cache_seconds``; an unknown ``kid`` refetches the set once (key rotation), at
most every ``_MIN_REFETCH_SECONDS`` so that random kids cannot turn us into a JWKS flooder.
``iss``, ``aud``, ``exp`` (required) and ``nbf`` are checked with a small leeway. Roles come from
a configurable claim (a list, or a space/comma separated string; dotted paths reach nested
claims such as ``realm_access.roles``); tenant namespaces from another claim when configured.
Discovery, and the Entra ID and Okta claim shapes (groups, tenant, role maps): analyzer/api/oidc.py.
A verified token's actor is remembered by the token's digest until its ``exp`` or the JWKS TTL,
whichever is first (:class:`VerifiedTokens`), so the API matches it again without I/O.

Static tokens (local use) are stored as SHA-256 digests and compared in constant time against
every configured digest, so neither timing nor the settings dump reveals a token.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import httpx
import jwt
import structlog

from analyzer.api.errors import ApiError
from analyzer.api.oidc import ClaimMapping, DiscoveredJwks, unauthorized
from analyzer.config import ApiSettings, StaticTokenSettings
from analyzer.domain.errors import PermissionDeniedError
from analyzer.lru import BoundedLru
from analyzer.rollouts.control import Actor

log = structlog.get_logger(__name__)

JwksFetcher = Callable[[], Mapping[str, Any]]
MonotonicClock = Callable[[], float]
_MIN_REFETCH_SECONDS = 10.0
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


class Role(StrEnum):
    VIEWER = "viewer"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"
    ANALYSIS = "analysis"


class Permission(StrEnum):
    ANALYZE = "analyze"  # the Argo web provider
    FLAGGER = "flagger"  # Flagger webhooks
    READ_ROLLOUTS = "read_rollouts"
    START_ROLLOUT = "start_rollout"
    OPERATE = "operate"  # abort / pause / resume
    APPROVE = "approve"
    AUDIT = "audit"  # audit queries, verify, export
    RECORD_EVALUATION = "record_evaluation"  # CI records a suite's result for a model version


_R = Role
PERMISSIONS: Mapping[Permission, frozenset[str]] = {
    Permission.ANALYZE: frozenset({_R.ANALYSIS, _R.ADMIN}),
    Permission.FLAGGER: frozenset({_R.ANALYSIS, _R.ADMIN}),
    Permission.READ_ROLLOUTS: frozenset(
        {_R.VIEWER, _R.OPERATOR, _R.APPROVER, _R.AUDITOR, _R.ADMIN}
    ),
    Permission.START_ROLLOUT: frozenset({_R.OPERATOR, _R.ADMIN}),
    Permission.OPERATE: frozenset({_R.OPERATOR, _R.ADMIN}),
    # Not admin: the approval gate counts the approver role only (separation of duties).
    Permission.APPROVE: frozenset({_R.APPROVER}),
    Permission.AUDIT: frozenset({_R.AUDITOR, _R.ADMIN}),
    Permission.RECORD_EVALUATION: frozenset({_R.OPERATOR, _R.ADMIN}),
}


def authorize(actor: Actor, permission: Permission) -> None:
    """Raise ``PermissionDeniedError`` (403) unless one of the actor's roles grants it."""
    allowed = PERMISSIONS[permission]
    if not actor.roles & allowed:
        raise PermissionDeniedError(
            f"{permission.value} needs one of the roles {', '.join(sorted(allowed))}; "
            f"your token has {', '.join(sorted(actor.roles)) or 'none'}"
        )


def ensure_namespace(actor: Actor, namespace: str) -> None:
    """Raise ``PermissionDeniedError`` when the actor is scoped away from ``namespace``."""
    if actor.namespaces is not None and namespace not in actor.namespaces:
        raise PermissionDeniedError(
            f"your token is limited to the namespaces {', '.join(sorted(actor.namespaces))}; "
            f"it cannot read or act on models in {namespace!r}"
        )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StaticTokens:
    """Configured tokens, compared by digest in constant time."""

    def __init__(self, tokens: Sequence[StaticTokenSettings]) -> None:
        self._entries: list[tuple[bytes, Actor]] = []
        for entry in tokens:
            if entry.token_sha256:
                digest = entry.token_sha256
            elif entry.token is not None:
                digest = token_digest(entry.token.get_secret_value())
            else:
                raise ValueError(f"static token for {entry.subject} has neither token nor digest")
            actor = Actor(
                subject=entry.subject,
                roles=frozenset(entry.roles),
                namespaces=None if entry.namespaces is None else frozenset(entry.namespaces),
            )
            self._entries.append((bytes.fromhex(digest), actor))

    def match(self, token: str) -> Actor | None:
        presented = hashlib.sha256(token.encode()).digest()
        found: Actor | None = None
        for digest, actor in self._entries:  # no early exit: time does not depend on position
            if hmac.compare_digest(presented, digest):
                found = actor
        return found


class JwksCache:
    """The issuer's signing keys by ``kid``, refreshed on expiry or on an unknown ``kid``."""

    def __init__(
        self, fetch: JwksFetcher, *, ttl_seconds: float, clock: MonotonicClock = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None

    def get(self, kid: str) -> dict[str, Any] | None:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            may_refetch = self._fetched_at is None or now - self._fetched_at >= _MIN_REFETCH_SECONDS
            if stale or (kid not in self._keys and may_refetch):
                self._refresh(now)
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        try:
            document = self._fetch()
            keys = {str(k["kid"]): dict(k) for k in document.get("keys", []) if "kid" in k}
        except Exception as exc:
            log.warning("auth.jwks.fetch_failed", error=f"{type(exc).__name__}: {exc}")
            if self._fetched_at is None:
                raise ApiError(
                    503, "auth_unavailable", "cannot fetch the OIDC signing keys; try again later"
                ) from exc
            return  # keep serving the keys we have
        self._keys = keys
        self._fetched_at = now


class VerifiedTokens:
    """OIDC tokens verified before, by SHA-256 digest: their actor until the token's ``exp`` or
    ``ttl_seconds`` after the verification, whichever comes first (bounded, least recently used
    first out).

    The ``ttl`` is the JWKS cache's: a key the issuer withdraws stops admitting its tokens no
    later than it would without this memory (the keys themselves are kept that long), and a
    token past ``exp`` is verified again, so it meets the leeway rule and its 401 as before.
    Only the digest is kept, never the token. Reading takes no I/O: the API reads it on the
    event loop and verifies in a thread only what it does not hold (issue 20).
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        size: int = 4096,
        clock: MonotonicClock = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._wall = wall
        self._held: BoundedLru[bytes, tuple[Actor, float]] = BoundedLru(size)

    def get(self, token: str) -> Actor | None:
        found = self._held.get(hashlib.sha256(token.encode()).digest())
        if found is None or self._clock() >= found[1]:
            return None
        return found[0]

    def put(self, token: str, actor: Actor, expires_at: float) -> None:
        keep = min(self._ttl, expires_at - self._wall())
        if keep > 0:
            self._held.put(hashlib.sha256(token.encode()).digest(), (actor, self._clock() + keep))


def http_jwks_fetcher(url: str, *, timeout: float = 5.0) -> JwksFetcher:
    def fetch() -> Mapping[str, Any]:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        document: Mapping[str, Any] = response.json()
        return document

    return fetch


class OidcVerifier:
    """Verifies OIDC access tokens against one issuer, audience and JWKS."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: JwksCache,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        leeway_seconds: int = 30,
        roles_claim: str = "roles",
        namespaces_claim: str | None = None,
        mapping: ClaimMapping | None = None,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._jwks = jwks
        self._algorithms = tuple(a for a in algorithms if a in _KEY_TYPES)
        self._leeway = leeway_seconds
        self._mapping = mapping or ClaimMapping(
            roles_claim=roles_claim, namespaces_claim=namespaces_claim
        )

    def verify(self, token: str) -> Actor:
        return self.verify_until(token)[0]

    def verify_until(self, token: str) -> tuple[Actor, float]:
        """The token's actor and its ``exp`` (seconds since the epoch), or a 401 ``ApiError``."""
        key, algorithm = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("token expired; get a new one from the identity provider") from exc
        except jwt.ImmatureSignatureError as exc:
            raise unauthorized("token not valid yet (nbf/iat in the future)") from exc
        except jwt.InvalidAudienceError as exc:
            raise unauthorized(f"token audience is not {self._audience!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise unauthorized(f"token issuer is not {self._issuer!r}") from exc
        except jwt.InvalidSignatureError as exc:
            raise unauthorized("token signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized(f"invalid token: {exc}") from exc
        return self._mapping.actor(claims), float(claims["exp"])

    def _key_for(self, token: str) -> tuple[Any, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthorized("malformed token") from exc
        algorithm = str(header.get("alg", ""))
        if algorithm not in self._algorithms:
            raise unauthorized(
                f"token algorithm {algorithm or 'none'!r} is not accepted "
                f"(accepted: {', '.join(self._algorithms)})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise unauthorized("token header has no 'kid'")
        jwk = self._jwks.get(kid)
        if jwk is None:
            raise unauthorized(f"no signing key {kid!r} at the issuer's JWKS")
        if jwk.get("kty") != _KEY_TYPES[algorithm] or jwk.get("alg", algorithm) != algorithm:
            raise unauthorized(f"signing key {kid!r} does not match algorithm {algorithm}")
        try:
            return jwt.PyJWK(jwk, algorithm=algorithm).key, algorithm
        except jwt.PyJWTError as exc:
            raise unauthorized(f"signing key {kid!r} is unusable") from exc


def identity_problem(api: ApiSettings) -> str | None:
    """Why no request can authenticate (or OIDC is half set up), or None when all is well."""
    # The JWKS URL is optional: without it the issuer's discovery document names it.
    oidc_parts = {"oidc_issuer": api.oidc_issuer, "oidc_audience": api.oidc_audience}
    given = [name for name, value in oidc_parts.items() if value]
    if given and len(given) < len(oidc_parts):
        missing = ", ".join(f"api.{n}" for n in oidc_parts if n not in given)
        return f"OIDC is half configured ({missing} unset): OIDC tokens are refused"
    if not given and not api.static_tokens:
        return (
            "no identity source is configured (no api.static_tokens, no OIDC issuer): every "
            "/api/v1 request and every /ui/ sign-in will be refused with 401. Create a token "
            "with `canary-analyzer token create --subject me --role admin` and export the line "
            "it prints, or configure OIDC (Entra ID, Okta: docs/identity.md)"
        )
    return None


def warn_without_identity(api: ApiSettings) -> None:
    problem = identity_problem(api)
    if problem is not None:
        log.warning("auth.no_identity_source", problem=problem)


class Authenticator:
    """Turns an ``Authorization`` header into an :class:`Actor`, or raises a 401 ``ApiError``."""

    def __init__(
        self,
        *,
        static: StaticTokens,
        oidc: OidcVerifier | None = None,
        verified: VerifiedTokens | None = None,
    ) -> None:
        self._static = static
        self._oidc = oidc
        self._verified = verified

    @classmethod
    def from_settings(
        cls,
        api: ApiSettings,
        *,
        jwks_fetcher: JwksFetcher | None = None,
        clock: MonotonicClock = time.monotonic,
    ) -> Authenticator:
        oidc = None
        if api.oidc_issuer and api.oidc_audience:
            fetch = jwks_fetcher or (
                http_jwks_fetcher(api.oidc_jwks_url)
                if api.oidc_jwks_url
                else DiscoveredJwks(api.oidc_issuer)
            )
            oidc = OidcVerifier(
                issuer=api.oidc_issuer,
                audience=api.oidc_audience,
                jwks=JwksCache(fetch, ttl_seconds=api.jwks_cache_seconds, clock=clock),
                algorithms=api.oidc_algorithms,
                leeway_seconds=api.oidc_leeway_seconds,
                mapping=ClaimMapping.from_settings(api),
            )
        verified = None
        if oidc is None:
            warn_without_identity(api)
        else:
            verified = VerifiedTokens(ttl_seconds=api.jwks_cache_seconds, clock=clock)
        return cls(static=StaticTokens(api.static_tokens), oidc=oidc, verified=verified)

    def known_actor(self, token: str | None) -> Actor | None:
        """The actor of a configured static token or of an OIDC token verified before and still
        held (:class:`VerifiedTokens`); None for anything else (no token, an unknown one, a JWT
        not verified yet). Digests and constant-time comparisons, no I/O: the API calls it on
        the event loop and hands only the rest to :meth:`authenticate` in a thread (verifying
        a JWT may fetch the JWKS)."""
        if not token:
            return None
        actor = self._static.match(token)
        if actor is None and self._verified is not None:
            actor = self._verified.get(token)
        return actor

    def authenticate(self, token: str | None) -> Actor:
        if not token:
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        actor = self._static.match(token)
        if actor is not None:
            return actor
        if self._oidc is not None and token.count(".") == 2:
            actor, expires_at = self._oidc.verify_until(token)
            if self._verified is not None:
                self._verified.put(token, actor, expires_at)
            return actor
        raise unauthorized("unknown or malformed bearer token")
