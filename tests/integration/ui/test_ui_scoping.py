"""Tenant scoping: a token limited to risk-prod never sees the analytics tenant, anywhere.

The check crawls every page such a token can reach by following links from the overview (and
every form the pages offer), then asks for the other tenant's things directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import pytest

from tests.integration.ui.conftest import SCOPED_ADMIN, SCOPED_AUDITOR, Site, text_of
from tests.integration.ui.seed import ANALYTICS_CR, ANALYTICS_MARKERS, CR

pytestmark = pytest.mark.postgres

SCOPED = {"admin": SCOPED_ADMIN, "auditor": SCOPED_AUDITOR}
STARTS = (
    "/ui/",
    "/ui/events",
    "/ui/events?model=risk-prod/fraud-scorer&limit=500",
    "/ui/events?model=risk-prod/limits-scorer&limit=500",
    "/ui/serving?model=risk-prod/fraud-scorer&at=2026-03-04T02:13:00Z",
    "/ui/serving?model=risk-prod/fraud-scorer&at=2026-03-04T03:00:00Z",
    "/ui/verify",
    "/ui/rollouts",
    "/ui/rollouts?state=promoted",
)
ANALYTICS_SEQS = range(38, 60)  # seed.py: entries 38-59 are the analytics tenant's


def crawl(site: Site, token: str, *, cookie: bool = False) -> Iterator[tuple[str, str]]:
    """Every /ui/ page reachable from STARTS (exports excluded), with its HTML."""
    queue, seen = list(STARTS), set()
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = (
            site.get(path, None, cookie=token) if cookie else site.get(path, None, token=token)
        )
        assert response.status_code in (200, 404), (path, response.status_code)
        yield path, response.text
        for link in re.findall(r'href="(/ui/[^"]*)"', response.text):
            target = unescape(link)
            if not target.startswith(("/ui/export", "/ui/static", "/ui/logout", "/ui/login")):
                queue.append(target)


def leaks(html: str) -> list[str]:
    lowered = html.lower()
    return [marker for marker in ANALYTICS_MARKERS if marker.lower() in lowered]


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_no_page_a_risk_prod_token_reaches_mentions_analytics(site: Site, role: str) -> None:
    pages = dict(crawl(site, SCOPED[role]))
    assert len(pages) > 25  # the crawl reached entries and rollouts, not just the start pages
    assert any(path.startswith("/ui/events/") for path in pages)
    assert any(path.startswith("/ui/rollouts/") for path in pages)
    leaked = {path: found for path, html in pages.items() if (found := leaks(html))}
    assert leaked == {}
    assert any(CR in html for html in pages.values())  # the crawl did see risk-prod's evidence


def test_the_same_holds_through_the_login_cookie(site: Site) -> None:
    pages = dict(crawl(site, SCOPED_ADMIN, cookie=True))
    assert len(pages) > 25
    assert {path: found for path, html in pages.items() if (found := leaks(html))} == {}


def test_an_unscoped_auditor_does_see_analytics(site: Site) -> None:
    # The control for the tests above: the markers are on the pages for someone who may see them.
    overview = site.get("/ui/", "auditor").text
    assert set(leaks(overview)) >= {"analytics", "churn"}
    assert ANALYTICS_CR in site.get("/ui/events?type=gate_checked", "auditor").text


def test_lists_and_counts_only_count_visible_models(site: Site) -> None:
    text = text_of(site.get("/ui/", None, token=SCOPED_ADMIN).text)
    models = re.findall(
        r"\b[a-z-]+/[a-z.-]+-scorer\b|\banalytics/[a-z-]+\b", text.split("Active")[0]
    )
    assert set(models) == {"risk-prod/fraud-scorer", "risk-prod/limits-scorer"}
    verify = text_of(site.get("/ui/verify", None, token=SCOPED_AUDITOR).text)
    assert "The ledger is intact" in verify
    assert "Entries verified" not in verify
    assert "shown to unscoped auditors only" in verify
    assert "49" not in verify  # the chain's length spans both tenants


def test_event_queries_without_a_model_ask_for_one_of_the_visible_models(site: Site) -> None:
    response = site.get("/ui/events", None, token=SCOPED_AUDITOR)
    assert response.status_code == 200
    text = text_of(response.text)
    assert "Your token is limited to risk-prod: choose a model" in text
    assert re.findall(r'href="/ui/events\?model=([^"]+)"', response.text) == [
        "risk-prod/fraud-scorer",
        "risk-prod/limits-scorer",
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/ui/serving?model=analytics/churn-model&at=2026-03-04T03:00:00Z",
        "/ui/events?model=analytics/churn-model",
        "/ui/export?format=json&model=analytics/churn-model",
        "/ui/export?format=csv",
        "/ui/rollouts?model=analytics/churn-model",
    ],
)
def test_asking_for_the_other_tenant_by_name_is_forbidden(site: Site, path: str) -> None:
    response = site.get(path, None, token=SCOPED_ADMIN)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "churn-model" not in response.text.split('<p class="message"')[0]


def test_the_other_tenants_entries_and_rollouts_look_like_missing_ones(site: Site) -> None:
    assert site.seeded is not None
    missing = text_of(site.get("/ui/events/999", None, token=SCOPED_ADMIN).text)
    for seq in ANALYTICS_SEQS:
        response = site.get(f"/ui/events/{seq}", None, token=SCOPED_ADMIN)
        assert response.status_code == 404
        assert text_of(response.text) == missing.replace("999", str(seq))
    rollout = site.get(f"/ui/rollouts/{site.seeded.analytics}", None, token=SCOPED_ADMIN)
    assert rollout.status_code == 404
    assert leaks(rollout.text) == []


def test_a_neighbour_in_another_tenant_is_not_linked(site: Site) -> None:
    html = site.get("/ui/events/37", None, token=SCOPED_AUDITOR).text
    assert "#38 (not visible to your token)" in text_of(html)
    assert 'href="/ui/events/38"' not in html
    assert 'href="/ui/events/36"' in html
