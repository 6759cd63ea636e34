"""The first pages a person opens: ``/`` leads to the web pages, and the API reference's assets
are served by the service itself (nothing from a CDN)."""

from __future__ import annotations

import re

from tests.integration.api.conftest import Harness


def test_root_redirects_to_the_pages(api: Harness) -> None:
    response = api.call("GET", "/", None, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"


def test_docs_and_redoc_load_only_their_own_assets(api: Harness) -> None:
    for page in ("/docs", "/redoc"):
        response = api.call("GET", page, None)
        assert response.status_code == 200
        html = response.text
        external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)
        assert external == [], f"{page} loads {external}"
        assets = re.findall(r"""["'](/docs/static/[^"']+)["']""", html)
        assert assets, f"{page} names no local asset"
        for asset in assets:
            served = api.call("GET", asset, None)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000 or asset.endswith(".png"), asset


def test_reference_pages_allow_only_this_origin(api: Harness) -> None:
    for page in ("/docs", "/redoc", "/docs/static/swagger-ui.css"):
        policy = api.call("GET", page, None).headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "http" not in policy  # no other host named anywhere
    assert '"validatorUrl": null' in api.call("GET", "/docs", None).text
