"""The fleet page's watch in Debian's Chromium, at 1400 and 390 px: a fleet whose watch rolled a
quiet harmful model back after its wave passed. The browser checks what only a browser can: the
watch section and the cause columns are laid out and visible, nothing overflows a phone's width
except inside its own scroll box, and no console error (a CSP violation) — with screenshots of
the watch section and of the whole page kept as in the chart pages' tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.e2e.test_chart_pages_browser import (
    WIDTHS,
    captions_cut,
    keep,
    overflowing,
    screenshot,
)
from tests.integration.api.conftest import static_token
from tests.integration.fleets.support import run_to_the_end, start_a_fleet_the_watch_catches
from tests.integration.ui.conftest import build_site

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

MODELS = [f"merchant-{i:04d}" for i in range(100)]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_watch_section_and_the_rollback_causes_fit_the_window(
    browser: Any, pg_engine: Engine, tmp_path: Path, width: int
) -> None:
    fleet, fleet_id, quiet = start_a_fleet_the_watch_catches(pg_engine, MODELS)
    run_to_the_end(fleet, fleet_id)
    site = build_site(pg_engine, None, fleet_engine=fleet.engine)
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {static_token('viewer')}"},
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.set_default_timeout(5000)
    try:
        page.goto(f"{site.url}/ui/fleets/{fleet_id}")
        watch = page.locator("section#watch")
        assert watch.is_visible()
        assert "The watch is over" in watch.inner_text()
        assert "1 model rolled back by the watch" in watch.inner_text()
        waves = page.get_by_role("table", name="Each wave's models by state, and its rollbacks")
        assert waves.get_by_role("columnheader", name="by the watch").is_visible()
        cause = page.locator(f'tr[data-model="{quiet}"] td[data-cause="watch"]')
        assert cause.inner_text().startswith("the watch, during wave ")
        assert overflowing(page) == []
        assert captions_cut(page, width) == []
        shot = tmp_path / f"fleet-watch-section-{width}.png"
        watch.screenshot(path=str(shot))
        assert shot.stat().st_size > 2_000
        keep(shot)
        screenshot(page, tmp_path, f"fleet-page-{width}")
    finally:
        context.close()
        site.close()
    assert problems == []
