"""Entra ID and Okta tokens from a fake identity provider over HTTP: discovery, keys, claims.

The provider (tests/fakes/oidc_idp.py) serves its discovery document and JWKS on 127.0.0.1 and
signs tokens of its real shape; the service finds the keys from the issuer alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from analyzer.api.auth import Authenticator, Permission, authorize
from analyzer.api.errors import ApiError
from analyzer.config import ApiSettings, RoleName
from analyzer.domain.errors import PermissionDeniedError
from analyzer.rollouts.control import Actor
from tests.fakes.oidc_idp import ENTRA_TENANT, FakeIdentityProvider, Shape
from tests.integration.api.conftest import Harness, api_settings

AUDITORS_GROUP = "5f2b7c1e-0c4e-4b8e-9d3a-1f0e6a7b8c9d"  # an Entra security group's object ID


class MonotonicClock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def start_idp() -> Iterator[Callable[[Shape], FakeIdentityProvider]]:
    started: list[FakeIdentityProvider] = []

    def start(shape: Shape) -> FakeIdentityProvider:
        started.append(FakeIdentityProvider(shape).start())
        return started[-1]

    yield start
    for idp in started:
        idp.stop()


def entra_settings(idp: FakeIdentityProvider, **overrides: Any) -> ApiSettings:
    role_map: dict[str, tuple[RoleName, ...]] = {
        "Canary.Operator": ("operator",),
        AUDITORS_GROUP: ("auditor",),
    }
    return ApiSettings(
        oidc_issuer=idp.issuer,
        oidc_audience=idp.audience,
        oidc_provider="entra_id",
        oidc_tenant_id=ENTRA_TENANT,
        oidc_role_map=role_map,
        **overrides,
    )


def okta_settings(idp: FakeIdentityProvider, **overrides: Any) -> ApiSettings:
    role_map: dict[str, tuple[RoleName, ...]] = {
        "canary-operators": ("operator", "viewer"),
        "canary-approvers": ("approver",),
    }
    return ApiSettings(
        oidc_issuer=idp.issuer,
        oidc_audience=idp.audience,
        oidc_provider="okta",
        oidc_role_map=role_map,
        **overrides,
    )


def authenticate(api: ApiSettings, token: str, clock: MonotonicClock | None = None) -> Actor:
    return Authenticator.from_settings(api, clock=clock or MonotonicClock()).authenticate(token)


def refused(auth: Authenticator, token: str) -> ApiError:
    with pytest.raises(ApiError) as raised:
        auth.authenticate(token)
    assert raised.value.status == 401
    return raised.value


def test_entra_app_roles_and_groups_map_to_roles_through_discovery(
    start_idp: Callable[[Shape], FakeIdentityProvider],
) -> None:
    idp = start_idp("entra_id")
    auth = Authenticator.from_settings(entra_settings(idp), clock=MonotonicClock())
    actor = auth.authenticate(idp.token(roles=["Canary.Operator"], groups=[AUDITORS_GROUP]))
    assert actor.roles == {"operator", "auditor"}
    assert actor.namespaces is None  # no namespace mapping configured: every namespace
    assert actor.subject.startswith("sub-")
    # discovery once, the keys once; a second token is served from the cache
    auth.authenticate(idp.token(user="bob", roles=["operator"]))  # our role names map directly
    assert idp.count("/.well-known/openid-configuration") == 1
    assert idp.count(idp.jwks_path) == 1


def test_entra_token_from_another_tenant_or_issuer_or_audience_is_401(
    start_idp: Callable[[Shape], FakeIdentityProvider],
) -> None:
    idp = start_idp("entra_id")
    auth = Authenticator.from_settings(entra_settings(idp), clock=MonotonicClock())
    other_tenant = "0b1c2d3e-0000-4000-8000-000000000000"
    assert "tenant" in refused(auth, idp.token(tid=other_tenant, roles=["admin"])).message
    assert "tenant" in refused(auth, idp.token(tid=None, roles=["admin"])).message
    wrong_iss = idp.token(iss=f"https://login.microsoftonline.com/{other_tenant}/v2.0")
    assert "issuer" in refused(auth, wrong_iss).message
    assert "audience" in refused(auth, idp.token(aud="api://someone-else")).message
    assert "expired" in refused(auth, idp.token(lifetime=-120, roles=["admin"])).message


def test_entra_id_without_a_tenant_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="oidc_tenant_id"):
        ApiSettings(oidc_issuer="https://x/v2.0", oidc_audience="a", oidc_provider="entra_id")


def test_keys_rotate_by_kid_with_a_bounded_refresh(
    start_idp: Callable[[Shape], FakeIdentityProvider],
) -> None:
    idp = start_idp("entra_id")
    clock = MonotonicClock()
    auth = Authenticator.from_settings(entra_settings(idp), clock=clock)
    old_kid = idp.signing_kid
    assert auth.authenticate(idp.token(roles=["admin"])).roles == {"admin"}
    # Unknown kids inside the refetch interval cost no fetch: random kids cannot flood the IdP.
    for _ in range(3):
        assert "no signing key" in refused(auth, idp.token_signed_by_unpublished_key()).message
    assert idp.count(idp.jwks_path) == 1
    new_kid = idp.rotate()
    clock.seconds += 11  # past the minimum refetch interval, inside the cache lifetime
    assert auth.authenticate(idp.token(roles=["admin"])).roles == {"admin"}  # new kid: refetched
    assert idp.count(idp.jwks_path) == 2
    assert auth.authenticate(idp.token(kid=old_kid, roles=["admin"])).roles == {"admin"}  # overlap
    idp.retire(old_kid)
    clock.seconds += 301  # past jwks_cache_seconds: the set is fetched again
    assert auth.authenticate(idp.token(kid=new_kid, roles=["admin"])).roles == {"admin"}
    message = refused(auth, idp.token(kid=old_kid, roles=["admin"])).message
    assert f"no signing key {old_kid!r}" in message  # retired: tokens it signed are refused
    assert idp.count("/.well-known/openid-configuration") == 1


def test_a_discovery_document_naming_another_issuer_is_not_trusted(
    start_idp: Callable[[Shape], FakeIdentityProvider],
) -> None:
    idp = start_idp("okta")
    idp.discovery_issuer_override = "https://evil.example/oauth2/default"
    with pytest.raises(ApiError) as raised:
        authenticate(okta_settings(idp), idp.token(groups=["canary-operators"]))
    assert raised.value.status == 503
    assert idp.count(idp.jwks_path) == 0  # its keys were never fetched


def test_okta_groups_and_a_custom_claim_map_to_roles_and_namespaces(
    start_idp: Callable[[Shape], FakeIdentityProvider],
) -> None:
    idp = start_idp("okta")
    api = okta_settings(idp, oidc_namespaces_claim="canary_namespaces")
    token = idp.token(groups=["Everyone", "canary-operators"], canary_namespaces=["risk-prod"])
    actor = authenticate(api, token)
    assert actor.subject == "alice@example.com"
    assert actor.roles == {"operator", "viewer"}
    assert actor.namespaces == {"risk-prod"}
    # scoping configured, no claim: reaches nothing (fail closed)
    assert authenticate(api, idp.token(groups=["canary-operators"])).namespaces == frozenset()


def test_namespace_map_scopes_by_group(start_idp: Callable[[Shape], FakeIdentityProvider]) -> None:
    idp = start_idp("okta")
    api = okta_settings(
        idp, oidc_namespace_map={"canary-risk": ("risk-prod", "risk-stage"), "canary-sre": ("*",)}
    )
    scoped = authenticate(api, idp.token(groups=["canary-operators", "canary-risk"]))
    assert scoped.namespaces == {"risk-prod", "risk-stage"}
    assert authenticate(api, idp.token(groups=["canary-sre", "canary-risk"])).namespaces is None


def test_unmapped_groups_grant_nothing_and_are_refused_with_403(
    start_idp: Callable[[Shape], FakeIdentityProvider],
) -> None:
    idp = start_idp("okta")
    actor = authenticate(okta_settings(idp), idp.token(groups=["Everyone", "finance"]))
    assert actor.roles == frozenset()
    with pytest.raises(PermissionDeniedError, match="your token has none"):
        authorize(actor, Permission.READ_ROLLOUTS)


def test_entra_groups_overage_is_explained(
    start_idp: Callable[[Shape], FakeIdentityProvider],
) -> None:
    idp = start_idp("entra_id")
    overage = idp.token(
        _claim_names={"groups": "src1"},
        _claim_sources={
            "src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}
        },
    )
    with pytest.raises(PermissionDeniedError, match="overage"):
        authenticate(entra_settings(idp), overage)
    # an app role still admits the user: the overage only hides groups
    with_role = idp.token(roles=["Canary.Operator"], _claim_names={"groups": "src1"})
    assert authenticate(entra_settings(idp), with_role).roles == {"operator"}


def test_through_the_api_entra_and_okta_tokens_get_200_401_403(
    make_api: Callable[..., Harness], start_idp: Callable[[Shape], FakeIdentityProvider]
) -> None:
    idp = start_idp("entra_id")
    entra = entra_settings(idp)
    settings = api_settings(
        oidc_issuer=entra.oidc_issuer,
        oidc_audience=entra.oidc_audience,
        oidc_jwks_url=None,
        oidc_namespaces_claim=None,
        oidc_provider="entra_id",
        oidc_tenant_id=ENTRA_TENANT,
        oidc_role_map=entra.oidc_role_map,
    )
    api = make_api(settings=settings, oidc_discovery=True)

    def get(token: str) -> int:
        return api.call("GET", "/api/v1/rollouts", role=None,
                        headers={"Authorization": f"Bearer {token}"}).status_code  # fmt: skip

    assert get(idp.token(groups=[AUDITORS_GROUP])) == 200
    assert get(idp.token(groups=["00000000-0000-0000-0000-000000000000"])) == 403
    assert get(idp.token(tid="0b1c2d3e-0000-4000-8000-000000000000", roles=["admin"])) == 401
    assert get(idp.token(aud="someone-else", roles=["admin"])) == 401
