"""The HTTP path of an Argo call: how many threadpool hops it makes, and that the on-loop
authentication still authenticates and refuses as before (issue 20).

FastAPI runs every plain ``def`` dependency and path function in the threadpool (starlette's
``run_in_threadpool`` → ``anyio.to_thread.run_sync``); each hop costs CPU and a wake-up. The
hops are counted by wrapping ``anyio.to_thread.run_sync`` for the duration of one call.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest

from analyzer.api.auth import Authenticator
from tests.integration.api.conftest import Harness, analysis_body, static_token

pytestmark = pytest.mark.postgres

ARGO = "/api/v1/analyses"


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions sent to the threadpool, in order."""
    seen: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        target = func
        if isinstance(func, functools.partial):  # FastAPI: partial(wrapper, function=endpoint)
            target = func.keywords.get("function", func.func)
        seen.append(getattr(target, "__name__", repr(target)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    return seen


def _argo(api: Harness, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = api.call("POST", ARGO, None, headers=headers, json=analysis_body())
    return response.status_code, response.json()


def test_an_argo_call_with_a_static_token_makes_one_hop_the_look(
    api: Harness, hops: list[str]
) -> None:
    status, body = _argo(api, static_token("analysis"))
    assert (status, body["verdict"], body["look"]) == (200, "pass", 1)
    # the control-character check, the services, the token and the rate limit ran on the
    # event loop; only the path function (the look: database and metric source) hopped
    assert hops == ["create_analysis"]


def test_an_argo_call_with_an_oidc_token_verifies_it_in_a_thread(
    api: Harness, hops: list[str]
) -> None:
    status, body = _argo(api, api.keys.token("k1", roles=["analysis"]))
    assert (status, body["verdict"]) == (200, "pass")
    assert api.keys.fetches == 1  # the JWKS was fetched, off the event loop
    assert hops == ["authenticate", "create_analysis"]


@pytest.mark.parametrize(
    ("role", "status", "expected_hops"),
    [
        ("viewer", 403, []),  # a static token without the role: refused on the loop
        ("analysis", 200, ["create_analysis"]),
        ("admin", 200, ["create_analysis"]),
    ],
)
def test_static_tokens_are_authorized_by_role_on_the_loop(
    api: Harness, hops: list[str], role: str, status: int, expected_hops: list[str]
) -> None:
    code, body = _argo(api, static_token(role))
    assert code == status
    assert api.analyzer is not None
    if status == 403:
        assert body["error"]["code"] == "forbidden"
        assert api.analyzer.calls == 0
    else:
        assert (body["verdict"], api.analyzer.calls) == ("pass", 1)
    assert hops == expected_hops
    assert api.keys.fetches == 0  # a static token never reaches the OIDC verifier


def test_unknown_missing_and_bad_oidc_tokens_are_still_refused(
    api: Harness, hops: list[str]
) -> None:
    unknown = _argo(api, "not-a-configured-token-0123456789")
    assert unknown[0] == 401
    assert "unknown or malformed" in unknown[1]["error"]["message"]
    missing = _argo(api, None)
    assert missing[0] == 401
    assert "missing bearer token" in missing[1]["error"]["message"]
    expired = _argo(api, api.keys.token("k1", roles=["analysis"], exp=1_000_000))
    assert expired[0] == 401
    assert "expired" in expired[1]["error"]["message"]
    wrong_role = _argo(api, api.keys.token("k1", roles=["viewer"]))
    assert wrong_role[0] == 403
    # no refused call reached the look
    assert "create_analysis" not in hops
    assert api.analyzer is not None
    assert api.analyzer.calls == 0


def test_known_actor_is_a_static_token_or_an_oidc_token_verified_before(api: Harness) -> None:
    authenticator: Authenticator = api.app.state.services.authenticator
    actor = authenticator.known_actor(static_token("analysis"))
    assert actor is not None
    assert (actor.subject, actor.roles) == ("analysis-user", frozenset({"analysis"}))
    jwt_token = api.keys.token("k1", roles=["analysis"])
    assert authenticator.known_actor(jwt_token) is None  # not verified yet
    assert authenticator.known_actor("not-a-configured-token") is None
    assert authenticator.known_actor("") is None
    assert authenticator.known_actor(None) is None
    assert api.keys.fetches == 0  # never touches the JWKS
    verified = authenticator.authenticate(jwt_token)
    assert authenticator.known_actor(jwt_token) == verified
    assert verified.roles == frozenset({"analysis"})


def test_a_verified_oidc_token_is_matched_on_the_loop_until_the_jwks_ttl(
    api: Harness, hops: list[str]
) -> None:
    token = api.keys.token("k1", roles=["analysis"])
    assert _argo(api, token)[0] == 200
    assert hops == ["authenticate", "create_analysis"]
    hops.clear()
    api.clock.advance(60)
    status, body = _argo(api, token)
    assert (status, body["look"]) == (200, 2)
    assert hops == ["create_analysis"]  # held: no verification, no hop
    assert api.keys.fetches == 1
    hops.clear()
    api.clock.advance(300)  # past jwks_cache_seconds: verified again against fresh keys
    assert _argo(api, token)[0] == 200
    assert hops == ["authenticate", "create_analysis"]
    assert api.keys.fetches == 2


def test_held_tokens_keep_their_own_roles_and_late_tokens_are_not_held(
    api: Harness, hops: list[str]
) -> None:
    viewer = api.keys.token("k1", roles=["viewer"])
    analysis = api.keys.token("k1", roles=["analysis"], sub="argo@example.com")
    for _ in range(2):  # the second time from the memory: the same answers
        assert _argo(api, viewer)[0] == 403
        assert _argo(api, analysis)[0] == 200
    assert hops.count("authenticate") == 2
    entries = api.ledger.events(limit=10).entries
    assert {e.actor for e in entries} == {"argo@example.com"}
    hops.clear()
    # past exp but inside the 30 s leeway: admitted, and verified at every call
    late = api.keys.token("k1", roles=["analysis"], exp=int(time.time()) - 5)
    for _ in range(2):
        assert _argo(api, late)[0] == 200
    assert hops.count("authenticate") == 2
