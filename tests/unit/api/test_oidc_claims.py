"""ClaimMapping over literal claims: roles, groups, tenants and namespaces."""

from __future__ import annotations

from typing import get_args

import pytest

from analyzer.api.auth import Role
from analyzer.api.errors import ApiError
from analyzer.api.oidc import ClaimMapping, discovery_url
from analyzer.config import ApiSettings, RoleName


def test_the_settings_role_names_are_the_api_roles() -> None:
    assert set(get_args(RoleName)) == {r.value for r in Role}


def test_presets_choose_the_providers_claims() -> None:
    entra = ClaimMapping.from_settings(
        ApiSettings(oidc_issuer="https://i", oidc_provider="entra_id", oidc_tenant_id="t1")
    )
    assert (entra.groups_claim, entra.tenant_claim, entra.tenant_id) == ("groups", "tid", "t1")
    okta = ClaimMapping.from_settings(ApiSettings(oidc_provider="okta"))
    assert (okta.groups_claim, okta.tenant_claim) == ("groups", None)
    generic = ClaimMapping.from_settings(ApiSettings(oidc_groups_claim="grp"))
    assert (generic.groups_claim, generic.tenant_claim) == ("grp", None)


def test_roles_come_from_role_names_and_the_map_never_from_unknown_values() -> None:
    mapping = ClaimMapping(groups_claim="groups", role_map={"g-ops": frozenset({"operator"})})
    actor = mapping.actor({"sub": "s", "roles": "viewer superuser", "groups": ["g-ops", "other"]})
    assert actor.roles == {"viewer", "operator"}
    assert mapping.actor({"sub": "s", "groups": "admin"}).roles == frozenset()  # a group named
    # "admin" is not our admin role unless the map says so


def test_tenant_must_match() -> None:
    mapping = ClaimMapping(tenant_claim="tid", tenant_id="t1")
    assert mapping.actor({"sub": "s", "tid": "t1", "roles": ["admin"]}).roles == {"admin"}
    with pytest.raises(ApiError) as raised:
        mapping.actor({"sub": "s", "tid": "t2", "roles": ["admin"]})
    assert raised.value.status == 401


def test_discovery_url_is_under_the_issuer() -> None:
    assert discovery_url("https://login.example/t/v2.0/") == (
        "https://login.example/t/v2.0/.well-known/openid-configuration"
    )
