"""Air-gapped: ``/docs`` (Swagger UI) and ``/redoc`` render in Chromium while every request to
anything but this service is aborted, as in a cluster with no way out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import App

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_page(browser: Any, app: App) -> Iterator[tuple[Any, list[str]]]:
    """A page whose every request off the service's own host is aborted and recorded."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    own_host = urlsplit(app.url).netloc
    blocked: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlsplit(url).netloc == own_host:
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort()

    page.route("**/*", route)
    # A request the page's Content-Security-Policy stops never reaches the route: count those too.
    page.on(
        "console",
        lambda m: blocked.append(f"csp: {m.text}") if "Content Security Policy" in m.text else None,
    )
    yield page, blocked
    context.close()


def test_swagger_ui_renders_with_the_network_blocked(
    offline_page: tuple[Any, list[str]], app: App
) -> None:
    page, blocked = offline_page
    page.goto(f"{app.url}/docs")
    # Swagger UI has fetched /openapi.json and drawn the operations from it.
    page.wait_for_selector(".swagger-ui .opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/rollouts" in p for p in paths)
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("canary-analyzer")
    assert blocked == []


def test_redoc_renders_with_the_network_blocked(
    offline_page: tuple[Any, list[str]], app: App
) -> None:
    page, blocked = offline_page
    page.goto(f"{app.url}/redoc")
    page.wait_for_selector("h1")
    assert "canary-analyzer" in page.locator("h1").first.inner_text()
    assert page.get_by_text("/api/v1/rollouts").count() > 0
    # The one outside load in the ReDoc bundle is its "powered by" logo (a CDN image that
    # removes itself when it fails to load): the page's policy stops it before any request.
    assert all(b.startswith("csp: ") and REDOC_LOGO in b for b in blocked), blocked


def test_root_lands_on_the_sign_in_page(offline_page: tuple[Any, list[str]], app: App) -> None:
    page, blocked = offline_page
    page.goto(app.url + "/")
    assert urlsplit(page.url).path.startswith("/ui/")
    assert blocked == []
