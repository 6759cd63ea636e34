"""Static tokens, JWKS caching and claim mapping, without HTTP."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from analyzer.api.auth import (
    Authenticator,
    JwksCache,
    OidcVerifier,
    Permission,
    StaticTokens,
    VerifiedTokens,
    authorize,
    ensure_namespace,
    token_digest,
)
from analyzer.api.errors import ApiError
from analyzer.config import StaticTokenSettings
from analyzer.domain.errors import PermissionDeniedError
from analyzer.rollouts.control import Actor

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWK: dict[str, Any] = {**jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True)}
JWK.update(kid="k1", alg="RS256")


def test_static_tokens_match_by_digest_or_plain() -> None:
    tokens = StaticTokens(
        [
            StaticTokenSettings(subject="a", roles=("viewer",), token_sha256=token_digest("t-a")),
            StaticTokenSettings(
                subject="b", roles=("admin",), token=SecretStr("t-b"), namespaces=("ns",)
            ),
        ]
    )
    a = tokens.match("t-a")
    b = tokens.match("t-b")
    assert a is not None
    assert (a.subject, a.roles, a.namespaces) == ("a", frozenset({"viewer"}), None)
    assert b is not None
    assert b.namespaces == frozenset({"ns"})
    assert tokens.match("t-c") is None


def test_authorize_and_namespaces() -> None:
    actor = Actor(subject="x", roles=frozenset({"viewer"}), namespaces=frozenset({"risk-prod"}))
    authorize(actor, Permission.READ_ROLLOUTS)
    with pytest.raises(PermissionDeniedError, match="operator"):
        authorize(actor, Permission.OPERATE)
    ensure_namespace(actor, "risk-prod")
    with pytest.raises(PermissionDeniedError, match="analytics"):
        ensure_namespace(actor, "analytics")


class Fetcher:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.fail:
            raise OSError("idp down")
        return {"keys": [JWK]}


def test_jwks_cache_ttl_and_outage() -> None:
    now = [0.0]
    fetch = Fetcher()
    cache = JwksCache(fetch, ttl_seconds=300, clock=lambda: now[0])
    assert cache.get("k1") is not None
    now[0] = 100
    assert cache.get("k1") is not None
    assert fetch.calls == 1
    now[0] = 400
    fetch.fail = True
    assert cache.get("k1") is not None  # an outage keeps the keys we have
    assert fetch.calls == 2


def test_first_jwks_fetch_failure_is_503() -> None:
    fetch = Fetcher()
    fetch.fail = True
    with pytest.raises(ApiError) as raised:
        JwksCache(fetch, ttl_seconds=300, clock=lambda: 0.0).get("k1")
    assert raised.value.status == 503


def _verifier(**kwargs: Any) -> OidcVerifier:
    cache = JwksCache(Fetcher(), ttl_seconds=300, clock=lambda: 0.0)
    return OidcVerifier(issuer="https://idp", audience="ca", jwks=cache, **kwargs)


def _token(**claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "https://idp", "aud": "ca", "sub": "s", "exp": now + 60, **claims}
    return jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"})


def test_roles_from_a_nested_claim_and_string_forms() -> None:
    verifier = _verifier(roles_claim="realm_access.roles")
    actor = verifier.verify(_token(realm_access={"roles": ["auditor", "unknown-role"]}))
    assert actor.roles == frozenset({"auditor"})
    spaced = _verifier().verify(_token(roles="viewer operator"))
    assert spaced.roles == frozenset({"viewer", "operator"})


def test_namespaces_claim_fails_closed_and_star_means_all() -> None:
    verifier = _verifier(namespaces_claim="ns")
    assert verifier.verify(_token()).namespaces == frozenset()
    assert verifier.verify(_token(ns=["a", "b"])).namespaces == frozenset({"a", "b"})
    assert verifier.verify(_token(ns=["*"])).namespaces is None


def test_authenticator_without_oidc_refuses_jwts() -> None:
    auth = Authenticator(static=StaticTokens([]))
    with pytest.raises(ApiError) as raised:
        auth.authenticate(_token())
    assert raised.value.status == 401
    with pytest.raises(ApiError, match="missing bearer token"):
        auth.authenticate(None)


class _Clocks:
    def __init__(self) -> None:
        self.monotonic = 100.0
        self.wall = 1_800_000_000.0


def _verified(clocks: _Clocks, *, ttl: float = 300.0, size: int = 4096) -> VerifiedTokens:
    return VerifiedTokens(
        ttl_seconds=ttl, size=size, clock=lambda: clocks.monotonic, wall=lambda: clocks.wall
    )


def test_verified_tokens_are_held_until_exp_or_the_jwks_ttl_whichever_comes_first() -> None:
    clocks = _Clocks()
    held = _verified(clocks)
    alice = Actor(subject="alice", roles=frozenset({"analysis"}))
    held.put("token-a", alice, expires_at=clocks.wall + 60)  # exp first
    held.put("token-b", alice, expires_at=clocks.wall + 3600)  # the JWKS TTL first
    assert held.get("token-a") is alice
    assert held.get("token-c") is None
    clocks.monotonic += 59.9
    assert held.get("token-a") is alice
    clocks.monotonic += 0.1
    assert held.get("token-a") is None  # at exp: verified again (the leeway rule, its 401)
    assert held.get("token-b") is alice
    clocks.monotonic += 240
    assert held.get("token-b") is None  # at the TTL: verified again against fresh keys


def test_tokens_past_exp_or_with_no_ttl_are_not_held_and_the_memory_is_bounded() -> None:
    clocks = _Clocks()
    alice = Actor(subject="alice", roles=frozenset({"analysis"}))
    held = _verified(clocks)
    held.put("late", alice, expires_at=clocks.wall - 5)  # accepted inside the leeway only
    assert held.get("late") is None
    no_ttl = _verified(clocks, ttl=0)  # jwks_cache_seconds: 0 keeps nothing
    no_ttl.put("token", alice, expires_at=clocks.wall + 60)
    assert no_ttl.get("token") is None
    small = _verified(clocks, size=2)
    for name in ("one", "two", "three"):
        small.put(name, alice, expires_at=clocks.wall + 60)
    assert [small.get(n) for n in ("one", "two", "three")] == [None, alice, alice]
