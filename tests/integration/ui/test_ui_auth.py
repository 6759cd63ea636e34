"""Who may see the pages: bearer header or login cookie, roles, CSRF on login, rate limits."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from analyzer.config import RateLimitSettings, UiSettings
from tests.integration.api.conftest import static_token
from tests.integration.ui.conftest import (
    Site,
    cookie_value,
    set_cookies,
    text_of,
    ui_test_settings,
)

pytestmark = pytest.mark.postgres

AUDIT_PAGES = (
    "/ui/serving",
    "/ui/serving?model=risk-prod/fraud-scorer&at=2026-03-04T02:13:00Z",
    "/ui/events",
    "/ui/events/1",
    "/ui/verify",
    "/ui/export?format=csv",
)
READER_PAGES = ("/ui/", "/ui/rollouts")
SESSION_SECONDS = UiSettings().session_seconds


def login_form(site: Site) -> tuple[str, str]:
    """GET the login form: the double-submit token (cookie value == hidden field)."""
    page = site.http.get(site.url + "/ui/login")
    assert page.status_code == 200
    token = cookie_value(set_cookies(page)["canary_ui_csrf"])
    assert f'name="csrf" value="{token}"' in page.text
    return token, page.text


def post_login(
    site: Site,
    *,
    token: str,
    csrf_cookie: str | None,
    csrf_field: str | None,
    next_path: str = "/ui/rollouts",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    form = {"token": token, "next": next_path}
    if csrf_field is not None:
        form["csrf"] = csrf_field
    sent = {"Origin": site.url, **(headers or {})}
    if csrf_cookie is not None:
        sent["Cookie"] = f"canary_ui_csrf={csrf_cookie}"
    return site.http.post(site.url + "/ui/login", data=form, headers=sent)


@pytest.mark.parametrize("path", AUDIT_PAGES + READER_PAGES + ("/ui/rollouts/some-id",))
def test_without_a_token_every_page_redirects_to_the_login_form(site: Site, path: str) -> None:
    response = site.get(path, None)
    assert response.status_code == 303
    target = urlsplit(response.headers["location"])
    assert target.path == "/ui/login"
    assert parse_qs(target.query)["next"] == [path]
    assert "set-cookie" not in response.headers


def test_a_rejected_cookie_is_cleared_on_the_way_to_the_login_form(site: Site) -> None:
    response = site.get("/ui/verify", None, cookie="not-a-known-token")
    assert response.status_code == 303
    assert "reason=rejected" in response.headers["location"]
    cleared = set_cookies(response)["canary_ui_token"]
    assert "Max-Age=0" in cleared
    assert "Path=/ui" in cleared
    notice = site.http.get(site.url + response.headers["location"])
    assert "was not accepted any more" in text_of(notice.text)


@pytest.mark.parametrize("path", AUDIT_PAGES)
def test_audit_pages_refuse_roles_that_may_not_audit(site: Site, path: str) -> None:
    for role in ("viewer", "operator", "approver", "analysis"):
        response = site.get(path, role)
        assert response.status_code == 403, (role, path)
        assert response.headers["content-type"].startswith("text/html")
        assert "audit needs one of the roles admin, auditor" in text_of(response.text)
    assert site.get(path, "auditor").status_code == 200


@pytest.mark.parametrize("path", READER_PAGES)
def test_reader_pages_take_the_roles_that_may_read_rollouts(site: Site, path: str) -> None:
    assert site.get(path, "analysis").status_code == 403
    for role in ("viewer", "operator", "approver", "auditor", "admin"):
        assert site.get(path, role).status_code == 200, role


def test_the_login_cookie_works_on_pages_and_is_ignored_by_the_api(site: Site) -> None:
    token = static_token("auditor")
    assert site.get("/ui/verify", None, cookie=token).status_code == 200
    api = site.http.get(
        site.url + "/api/v1/audit/verify", headers={"Cookie": f"canary_ui_token={token}"}
    )
    assert api.status_code == 401
    assert api.headers["content-type"] == "application/json"
    bearer = site.http.get(
        site.url + "/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer.status_code == 200


def test_a_bearer_header_wins_over_the_cookie(site: Site) -> None:
    response = site.get(
        "/ui/verify", None, token=static_token("viewer"), cookie=static_token("auditor")
    )
    assert response.status_code == 403


def test_login_sets_a_strict_cookie_and_redirects_to_the_page_asked_for(site: Site) -> None:
    csrf, form = login_form(site)
    assert 'name="next"' in form
    assert 'type="password"' in form
    response = post_login(
        site,
        token=static_token("auditor"),
        csrf_cookie=csrf,
        csrf_field=csrf,
        next_path="/ui/events?model=risk-prod/fraud-scorer",
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/events?model=risk-prod/fraud-scorer"
    cookie = set_cookies(response)["canary_ui_token"]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {
        "httponly",
        "secure",
        "path=/ui",
        "samesite=strict",
        f"max-age={SESSION_SECONDS}",
    } <= attributes
    assert cookie_value(cookie) == static_token("auditor")
    rotated = cookie_value(set_cookies(response)["canary_ui_csrf"])
    assert rotated != csrf
    page = site.get("/ui/verify", None, cookie=cookie_value(cookie))
    assert page.status_code == 200
    assert f'name="csrf" value="{rotated}"' not in page.text  # no csrf cookie sent: no form
    with_csrf = site.http.get(
        site.url + "/ui/verify",
        headers={"Cookie": f"canary_ui_token={cookie_value(cookie)}; canary_ui_csrf={rotated}"},
    )
    assert f'<input type="hidden" name="csrf" value="{rotated}">' in with_csrf.text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/api/v1/audit/export",
        "/ui\\@evil.example",
        "javascript:alert(1)",
    ],
)
def test_login_never_redirects_off_the_pages(site: Site, target: str) -> None:
    csrf, _ = login_form(site)
    response = post_login(
        site, token=static_token("auditor"), csrf_cookie=csrf, csrf_field=csrf, next_path=target
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/"


@pytest.mark.parametrize(
    ("cookie", "field", "headers"),
    [
        (None, None, {}),  # no double-submit token at all
        ("missing-cookie", "x" * 43, {}),  # a field without the cookie
        ("mismatch", "y" * 43, {}),  # cookie and field differ
        ("valid", "valid", {"Origin": "https://evil.example"}),  # a foreign page posting
        ("valid", "valid", {"Origin": "null"}),
        ("valid", "valid", {"Sec-Fetch-Site": "cross-site"}),
        ("valid", "valid", {"Sec-Fetch-Site": "same-site"}),  # a sibling subdomain
        ("valid", "valid", {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}),
        ("valid", "valid", {"Origin": "", "Referer": "https://evil.example/phish"}),
    ],
)
def test_login_refuses_forged_forms(
    site: Site, cookie: str | None, field: str | None, headers: dict[str, str]
) -> None:
    csrf, _ = login_form(site)
    csrf_cookie = {"valid": csrf, "mismatch": csrf, "missing-cookie": None}.get(cookie or "")
    csrf_field = csrf if field == "valid" else field
    response = post_login(
        site,
        token=static_token("admin"),
        csrf_cookie=csrf_cookie,
        csrf_field=csrf_field,
        headers=headers,
    )
    assert response.status_code == 403
    assert "canary_ui_token" not in set_cookies(response)
    assert "Sign-in refused" in text_of(response.text)


def test_login_from_our_own_no_referrer_page_as_chromium_sends_it(site: Site) -> None:
    # Our pages send Referrer-Policy: no-referrer, so a browser posts our own form with
    # "Origin: null"; Sec-Fetch-Site (which pages cannot forge) says where it came from.
    csrf, _ = login_form(site)
    browser_like = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    response = post_login(
        site, token=static_token("auditor"), csrf_cookie=csrf, csrf_field=csrf, headers=browser_like
    )
    assert response.status_code == 303


def test_login_without_origin_headers_still_needs_the_token_pair(site: Site) -> None:
    csrf, _ = login_form(site)
    response = site.http.post(
        site.url + "/ui/login",
        data={"token": static_token("auditor"), "csrf": csrf, "next": "/ui/"},
        headers={"Cookie": f"canary_ui_csrf={csrf}"},
    )
    assert response.status_code == 303


def test_login_with_a_wrong_token_sets_nothing(site: Site) -> None:
    csrf, _ = login_form(site)
    response = post_login(site, token="not-a-token", csrf_cookie=csrf, csrf_field=csrf)
    assert response.status_code == 401
    assert "canary_ui_token" not in set_cookies(response)
    assert "That token was not accepted: unknown or malformed bearer token" in text_of(
        response.text
    )


def test_logout_needs_the_form_token_and_clears_the_cookie(site: Site) -> None:
    csrf, _ = login_form(site)
    token = static_token("auditor")
    cookies = f"canary_ui_token={token}; canary_ui_csrf={csrf}"
    forged = site.http.post(
        site.url + "/ui/logout",
        data={"csrf": "z" * 43},
        headers={"Cookie": cookies, "Origin": site.url},
    )
    assert forged.status_code == 403
    assert "canary_ui_token" not in set_cookies(forged)
    response = site.http.post(
        site.url + "/ui/logout",
        data={"csrf": csrf},
        headers={"Cookie": cookies, "Origin": site.url},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?reason=logged_out"
    cleared = set_cookies(response)["canary_ui_token"]
    assert "Max-Age=0" in cleared
    assert "Path=/ui" in cleared


def test_secure_can_be_switched_off_for_plain_http(make_site: Callable[..., Site]) -> None:
    site = make_site(seed=False, settings=ui_test_settings(ui=UiSettings(cookie_secure=False)))
    csrf, form = login_form(site)
    assert "Secure flag off" in text_of(form)
    response = post_login(site, token=static_token("auditor"), csrf_cookie=csrf, csrf_field=csrf)
    assert response.status_code == 303
    cookie = set_cookies(response)["canary_ui_token"].lower()
    assert "secure" not in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_behind_an_sso_proxy_the_login_form_and_cookie_are_off(
    make_site: Callable[..., Site],
) -> None:
    site = make_site(seed=False, settings=ui_test_settings(ui=UiSettings(login_form=False)))
    assert site.get("/ui/login", None).status_code == 404
    assert site.get("/ui/verify", None, cookie=static_token("auditor")).status_code == 401
    no_token = site.get("/ui/verify", None)
    assert no_token.status_code == 401
    assert "single sign-on" in text_of(no_token.text)
    assert site.get("/ui/verify", "auditor").status_code == 200  # the proxy's header


def test_audit_pages_share_the_api_rate_limit_per_token(make_site: Callable[..., Site]) -> None:
    slow = RateLimitSettings(per_second=0.01, burst=3)
    site = make_site(seed=False, settings=ui_test_settings(rate_limit_audit=slow))
    auditor = {"Authorization": f"Bearer {static_token('auditor')}"}
    assert site.http.get(site.url + "/api/v1/audit/verify", headers=auditor).status_code == 200
    assert site.get("/ui/events", "auditor").status_code == 200
    assert site.get("/ui/verify", "auditor").status_code == 200
    limited = site.get("/ui/serving", "auditor")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "too many audit requests for this token" in text_of(limited.text)
    assert site.get("/ui/rollouts", "auditor").status_code == 200  # not audit data
    assert site.get("/ui/verify", "admin").status_code == 200  # another token, another bucket


def test_login_attempts_are_rate_limited_per_client(make_site: Callable[..., Site]) -> None:
    slow = RateLimitSettings(per_second=0.01, burst=2)
    site = make_site(seed=False, settings=ui_test_settings(rate_limit_audit=slow))
    csrf, _ = login_form(site)
    statuses = [
        post_login(site, token=f"guess-{n}", csrf_cookie=csrf, csrf_field=csrf).status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]
