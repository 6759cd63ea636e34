"""Browser-facing safety: headers, escaping, no scripts or external assets, error pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

import analyzer.api.ui
from analyzer.db import make_engine
from tests.integration.ui.conftest import Site, build_site, text_of
from tests.integration.ui.seed import XSS_REASON

pytestmark = pytest.mark.postgres

TEMPLATES = Path(analyzer.api.ui.__file__).parent / "templates"


def pages(site: Site) -> dict[str, str]:
    assert site.seeded is not None
    return {
        "overview": "/ui/",
        "serving": "/ui/serving?model=risk-prod/limits-scorer&at=2026-03-04T02:45:00Z",
        "events": "/ui/events?model=risk-prod/limits-scorer",
        "entry": "/ui/events/36",
        "verify": "/ui/verify",
        "rollouts": "/ui/rollouts",
        "rollout": f"/ui/rollouts/{site.seeded.hand_aborted}",
        "bad input": "/ui/serving?model=fraud&at=2026-03-04T02:13:00Z",
        "not found": "/ui/events/999",
        "forbidden": "/ui/verify",
        "unknown page": "/ui/no/such/page",
        "login": "/ui/login",
        "stylesheet": "/ui/static/ui.css",
        "redirect": "/ui",
    }


def test_every_ui_response_carries_the_security_headers(site: Site) -> None:
    for name, path in pages(site).items():
        role = "viewer" if name == "forbidden" else "admin"
        response = site.get(path, role)
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp, name
        assert "script-src 'none'" in csp, name
        assert "frame-ancestors 'none'" in csp, name
        assert "unsafe-inline" not in csp, name
        assert "unsafe-eval" not in csp, name
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-frame-options"] == "DENY", name
        assert headers["cache-control"] == "no-store", name
    unauthenticated = site.get("/ui/verify", None)
    assert unauthenticated.status_code == 303
    assert "content-security-policy" in unauthenticated.headers


def test_the_api_keeps_its_own_headers(site: Site) -> None:
    response = site.get("/healthz", None)
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers


def test_actors_and_reasons_are_escaped_everywhere(site: Site) -> None:
    for name in ("overview", "serving", "events", "entry", "rollout"):
        html = site.get(pages(site)[name], "admin").text
        assert "<script" not in html.lower(), name
        assert "&lt;script&gt;alert(" in html, name
    rollout = text_of(site.get(pages(site)["rollout"], "admin").text)
    assert XSS_REASON in rollout  # shown as text, exactly as recorded


def test_pages_have_no_scripts_inline_styles_or_external_assets(site: Site) -> None:
    for name, path in pages(site).items():
        if name == "stylesheet":
            continue
        html = site.get(path, "admin").text
        assert not re.search(r"<script|\son[a-z]+\s*=|\sstyle\s*=|<style", html, re.I), name
        for target in re.findall(r'(?:href|src|action)="([^"]*)"', html):
            assert target.startswith(("/", "#")), (name, target)  # ours, or this page
            assert not target.startswith("//"), (name, target)


def test_templates_never_switch_escaping_off() -> None:
    sources = {p.name: p.read_text() for p in TEMPLATES.glob("*.html")}
    assert len(sources) >= 10
    for name, source in sources.items():
        assert "|safe" not in source.replace(" ", ""), name
        assert "autoescape" not in source, name
        assert "<script" not in source.lower(), name


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/ui/serving?model=fraud&at=2026-03-04T02:13:00Z", "expected NAMESPACE/NAME, got 'fraud'"),
        ("/ui/serving?model=Risk_Prod/x&at=2026-03-04T02:13:00Z", "is not a DNS-1123 label"),
        (
            "/ui/serving?model=risk-prod/fraud-scorer&at=yesterday",
            "at: 'yesterday' is not an ISO 8601 time; write it like 2026-03-04T02:13:00Z",
        ),
        (
            "/ui/serving?model=risk-prod/fraud-scorer&at=2026-03-04T02:13:00",
            "at: needs a time zone, e.g. 2026-03-04T02:13:00Z or +01:00",
        ),
        ("/ui/serving?model=risk-prod/fraud-scorer&at=", "at: enter an instant"),
        ("/ui/events?since=2026-03-04", "since: needs a time zone"),
        ("/ui/events?type=not_a_type", "type: unknown event type 'not_a_type'"),
        ("/ui/events?cursor=garbage!", "cursor: not a cursor returned by this API"),
        ("/ui/events?limit=5000", "limit: Input should be less than or equal to 500"),
        ("/ui/events/abc", "seq: Input should be a valid integer"),
        ("/ui/rollouts?state=bogus", "state: 'bogus' is not a valid RolloutState"),
        ("/ui/export?format=xml", "format: Input should be 'json' or 'csv'"),
    ],
)
def test_bad_input_is_a_422_page_saying_what_to_fix(site: Site, path: str, message: str) -> None:
    response = site.get(path, "admin")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert message in text_of(response.text)
    assert "Traceback" not in response.text


def test_the_form_keeps_what_was_typed_after_an_error(site: Site) -> None:
    html = site.get("/ui/serving?model=risk-prod/fraud-scorer&at=2026-03-04T02:13:00", "admin").text
    assert 'value="risk-prod/fraud-scorer"' in html
    assert 'value="2026-03-04T02:13:00"' in html


def test_unknown_pages_are_404_pages_and_ui_redirects_to_the_overview(site: Site) -> None:
    response = site.get("/ui/no/such/page", None)
    assert response.status_code == 404
    assert "There is no such page" in text_of(response.text)
    root = site.get("/ui", None)
    assert root.status_code == 303
    assert root.headers["location"] == "/ui/"


def test_pages_are_not_in_the_api_schema(site: Site) -> None:
    schema = site.http.get(site.url + "/openapi.json").json()
    assert not [path for path in schema["paths"] if path.startswith("/ui")]


def test_a_database_outage_is_a_503_page(pg_engine: Engine) -> None:
    site = build_site(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere"), None)
    try:
        response = site.get("/ui/", "auditor")
    finally:
        site.close()
    assert response.status_code == 503
    assert "The database is unavailable; retry later." in text_of(response.text)
    assert "127.0.0.1:1" not in response.text


def test_a_bug_is_a_500_page_with_a_request_id_and_no_trace(
    make_site: Callable[..., Site], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(seed=False)

    def broken() -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(site.ledger, "verify", broken)  # the app's own ledger object
    response = site.get("/ui/verify", "auditor")
    assert response.status_code == 500
    text = text_of(response.text)
    assert re.search(r"quote request id [0-9a-f]{12} to the operators", text)
    assert "secret internals" not in response.text
    assert "RuntimeError" not in response.text
