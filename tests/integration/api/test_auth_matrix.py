"""Authorization matrix: every route × every role and every kind of bad token → expected status.

One server for the whole matrix (route-major, so the state-changing calls happen in a known
order: pause, resume, approve, then abort). Mismatches are collected and reported together.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from analyzer.api.auth import PERMISSIONS, Permission
from tests.integration.api.conftest import (
    FLEET_MODELS,
    ROLES,
    T0,
    Harness,
    Keys,
    analysis_body,
    fleet_body,
    model_ref,
    start_body,
    static_token,
)

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    permission: Permission | None  # None: open to everyone, no token needed
    ok: int
    body: Callable[[str], Any] | None = None
    params: dict[str, str] | None = None


def _hook(tier: str = "long-tail") -> Callable[[str], Any]:
    return lambda _: {"name": "fraud", "namespace": "risk-prod", "metadata": {"tier": tier}}


def _fleet_starts() -> Callable[[str], Any]:
    """Each start takes a model of its own (a model moves in one active fleet at a time)."""
    models = iter(FLEET_MODELS[:-1])  # the last one is the seeded fleet's

    def body(who: str) -> Any:
        model = next(models)
        return fleet_body(name=f"matrix-{model}", selector={}, models=[model])

    return body


def routes(rollout_id: str, fleet_id: str = "FLEET") -> list[Route]:
    r = f"/api/v1/rollouts/{rollout_id}"
    f = f"/api/v1/fleets/{fleet_id}"
    return [
        Route("POST", "/api/v1/fleets", Permission.START_ROLLOUT, 201, _fleet_starts()),
        Route("GET", "/api/v1/fleets", Permission.READ_ROLLOUTS, 200),
        Route("GET", f, Permission.READ_ROLLOUTS, 200),
        Route("GET", f"{f}/looks", Permission.READ_ROLLOUTS, 200),
        # not held: refused in its state (the role check comes first)
        Route("POST", f"{f}/resume", Permission.OPERATE, 409, lambda _: {"reason": "matrix"}),
        # no wave of this fleet names manual-approval: refused in its plan (after the role check)
        Route("POST", f"{f}/approvals", Permission.APPROVE, 409, lambda _: {"comment": "matrix"}),
        Route("POST", f"{f}/abort", Permission.OPERATE, 200, lambda _: {"reason": "matrix"}),
        Route("POST", "/api/v1/analyses", Permission.ANALYZE, 200, lambda _: analysis_body()),
        Route("POST", "/api/v1/flagger/confirm-promotion", Permission.FLAGGER, 200, _hook()),
        Route("POST", "/api/v1/flagger/rollback", Permission.FLAGGER, 409, _hook()),
        Route("POST", "/api/v1/flagger/pre-rollout", Permission.FLAGGER, 200, _hook()),
        Route(
            "POST",
            "/api/v1/rollouts",
            Permission.START_ROLLOUT,
            201,
            lambda who: start_body("matrix", f"m-{abs(hash(who)) % 10**8}"),
        ),
        Route("GET", "/api/v1/rollouts", Permission.READ_ROLLOUTS, 200),
        Route("GET", r, Permission.READ_ROLLOUTS, 200),
        Route("POST", f"{r}/pause", Permission.OPERATE, 200, lambda _: {"reason": "matrix"}),
        Route("POST", f"{r}/resume", Permission.OPERATE, 200),
        Route("POST", f"{r}/approve", Permission.APPROVE, 200, lambda _: {"comment": "ok"}),
        Route("POST", f"{r}/abort", Permission.OPERATE, 200, lambda _: {"reason": "matrix"}),
        Route(
            "POST",
            "/api/v1/evaluations",
            Permission.RECORD_EVALUATION,
            201,
            lambda who: {
                "model": {"namespace": "risk-prod", "name": "fraud"},
                "model_version": f"m{abs(hash(who)) % 10**8}",
                "suite": "golden-set",
                "passed": True,
            },
        ),
        Route(
            "GET",
            "/api/v1/evaluations",
            Permission.READ_ROLLOUTS,
            200,
            params={"model": "risk-prod/fraud"},
        ),
        Route(
            "GET",
            "/api/v1/audit/serving",
            Permission.AUDIT,
            200,
            params={"model": "risk-prod/fraud", "at": T0.isoformat()},
        ),
        Route("GET", "/api/v1/audit/events", Permission.AUDIT, 200),
        Route("GET", f"{r}/evidence-pack", Permission.AUDIT, 200),
        Route("GET", "/api/v1/audit/verify", Permission.AUDIT, 200),
        Route("GET", "/api/v1/audit/export", Permission.AUDIT, 200, params={"format": "csv"}),
        Route("GET", "/healthz", None, 200),
        Route("GET", "/readyz", None, 200),
        Route("GET", "/metrics", None, 200),
        Route("GET", "/openapi.json", None, 200),
        Route("GET", "/docs", None, 200),
    ]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def bad_tokens(keys: Keys) -> dict[str, str | None]:
    """Each of these must be refused with 401 on every protected route."""
    now = int(time.time())
    keys.add_rsa("k9", publish=False)
    good = keys.token("k1")
    head, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "mallory"
    tampered = ".".join([head, _b64(json.dumps(claims).encode()), signature])
    unsigned = jwt.encode(
        {**claims, "sub": "mallory"}, key=None, algorithm="none", headers={"kid": "k1"}
    )
    public_pem = (
        keys.rsa["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    hs256 = _hs256_with_public_key(claims, public_pem)
    return {
        "no token": None,
        "garbage": "not-a-token",
        "expired": keys.token("k1", exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not yet valid": keys.token("k1", nbf=now + 3600),
        "no exp": keys.token("k1", exp=None),
        "wrong issuer": keys.token("k1", iss="https://evil.example"),
        "wrong audience": keys.token("k1", aud="someone-else"),
        "alg none": unsigned,
        "HS256 signed with the public key": hs256,
        "tampered payload": tampered,
        "unknown kid": keys.token("k9"),
    }


def _hs256_with_public_key(claims: dict[str, Any], secret: bytes) -> str:
    # PyJWT refuses PEM keys as HMAC secrets, so build the alg-confusion token by hand.
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


def identities(keys: Keys) -> dict[str, tuple[str | None, frozenset[str] | None]]:
    """name -> (token, roles it holds); roles None means 'must be 401'."""
    out: dict[str, tuple[str | None, frozenset[str] | None]] = {
        f"static {role}": (static_token(role), frozenset({role})) for role in ROLES
    }
    out["oidc RS256 admin"] = (keys.token("k1", roles=["admin"]), frozenset({"admin"}))
    out["oidc ES256 operator"] = (
        keys.token("e1", roles="operator viewer"),
        frozenset({"operator", "viewer"}),
    )
    out["oidc no roles"] = (keys.token("k1", roles=[]), frozenset())
    for name, token in bad_tokens(keys).items():
        out[name] = (token, None)
    return out


def expected(route: Route, roles: frozenset[str] | None) -> int:
    if route.permission is None:
        return route.ok
    if roles is None:
        return 401
    return route.ok if roles & PERMISSIONS[route.permission] else 403


def test_authorization_matrix(api: Harness) -> None:
    api.target.add_model(model_ref(), stable_revision="base-00001", canary_revision="good-00002")
    # regulated: its policy gates 100 % on a manual approval, so approving is possible
    started = api.call("POST", "/api/v1/rollouts", "operator", json=start_body(tier="regulated"))
    assert started.status_code == 201
    fleet = api.call(
        "POST", "/api/v1/fleets", "operator",
        json=fleet_body(name="matrix", selector={}, models=[FLEET_MODELS[-1]]),
    )  # fmt: skip
    assert fleet.status_code == 201, fleet.text
    who = identities(api.keys)
    mismatches = []
    checked = 0
    for route in routes(started.json()["id"], fleet.json()["id"]):
        for name, (token, roles) in who.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = route.body(name) if route.body else None
            response = api.call(
                route.method, route.path, None, headers=headers, json=body, params=route.params
            )
            want = expected(route, roles)
            checked += 1
            if response.status_code != want:
                got = f"{response.status_code} != {want} {response.text[:120]}"
                mismatches.append(f"{route.method} {route.path} as {name}: {got}")
            if want == 401:
                assert response.json()["error"]["code"] == "unauthorized", name
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert mismatches == []
    assert checked == len(routes("x")) * len(who)


def test_the_matrix_covers_every_api_route(api: Harness) -> None:
    # A new route must join the matrix: its permission is then checked for every identity.
    schema = api.call("GET", "/openapi.json", None).json()
    documented = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    in_matrix = {
        (r.method, r.path.replace("/ROLLOUT", "/{rollout_id}").replace("/FLEET", "/{fleet_id}"))
        for r in routes("ROLLOUT")
    }
    assert documented - in_matrix == set()


def test_refusal_messages_say_what_to_fix(api: Harness) -> None:
    keys = api.keys
    now = int(time.time())
    cases = {
        keys.token("k1", exp=now - 3600, iat=now - 7200, nbf=now - 7200): "expired",
        keys.token("k1", iss="https://evil.example"): "issuer",
        keys.token("k1", aud="x"): "audience",
        jwt.encode({"sub": "m"}, key=None, algorithm="none", headers={"kid": "k1"}): "algorithm",
    }
    for token, word in cases.items():
        response = api.call(
            "GET", "/api/v1/audit/verify", None, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
        assert word in response.json()["error"]["message"]
    viewer = api.call("GET", "/api/v1/audit/verify", "viewer")
    assert viewer.status_code == 403
    assert "auditor" in viewer.json()["error"]["message"]


def test_key_rotation_refetches_the_jwks_once_and_throttles_unknown_kids(api: Harness) -> None:
    keys = api.keys
    verify = "/api/v1/audit/verify"

    def status(token: str) -> int:
        return api.call(
            "GET", verify, None, headers={"Authorization": f"Bearer {token}"}
        ).status_code

    assert status(keys.token("k1")) == 200
    assert keys.fetches == 1
    keys.add_rsa("k2")  # the issuer rotates
    api.clock.advance(11)  # beyond the anti-flood interval, well inside the cache TTL
    assert status(keys.token("k2")) == 200
    assert keys.fetches == 2
    keys.add_rsa("k8", publish=False)
    for _ in range(5):  # random kids do not turn us into a JWKS flooder
        assert status(keys.token("k8")) == 401
    assert keys.fetches == 2
    assert status(keys.token("k1")) == 200  # cached keys keep working


def test_oidc_namespaces_claim_scopes_and_fails_closed(api: Harness) -> None:
    keys = api.keys
    scoped = keys.token("k1", roles=["analysis"], namespaces=["analytics"])
    missing = keys.token("k1", roles=["analysis"], namespaces=None)
    body = analysis_body()  # risk-prod
    for token in (scoped, missing):
        response = api.call(
            "POST",
            "/api/v1/analyses",
            None,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 403
    ok = api.call(
        "POST",
        "/api/v1/analyses",
        None,
        json=analysis_body(model={"namespace": "analytics", "name": "churn"}),
        headers={"Authorization": f"Bearer {scoped}"},
    )
    assert ok.status_code == 200
    entry = api.ledger.events(model=model_ref("analytics", "churn")).entries[0]
    assert entry.actor == "alice@example.com"  # the token's subject is the recorded actor
