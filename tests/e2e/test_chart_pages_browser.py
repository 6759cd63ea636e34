"""The chart pages and the evidence pack in Debian's Chromium, at 1400 and 390 px.

Screenshots of each chart page at both widths go to the test's tmp directory and, when
``CANARY_ANALYZER_E2E_ARTIFACTS`` names a directory (CI keeps it), there too. The browser
checks what only a browser can: the charts are laid out and visible, nothing overflows a phone's
width except inside its own scroll box, the numbers drawn equal the table beside each chart, no
CSP violation (the page fixture fails the test on any console error), and the evidence pack
opens from disk and prints to PDF.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import AUDITOR_TOKEN, App
from tests.e2e.test_audit_pages_browser import PNG_SIGNATURE, page, sign_in
from tests.integration.ui.seed import CR

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
__all__ = ["page"]  # the fixture, shared with the audit pages' tests

WIDTHS = (1400, 390)


def keep(shot: Path) -> None:
    """Copy a screenshot to the artefact directory, when there is one."""
    target = os.environ.get("CANARY_ANALYZER_E2E_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    assert shot.stat().st_size > 10_000
    keep(shot)


def overflowing(page: Any) -> list[str]:
    """Elements wider than the window that are not inside a scroll box of their own."""
    script = """() => {
      const limit = document.documentElement.clientWidth + 1;
      const out = [];
      for (const e of document.querySelectorAll('main *')) {
        const r = e.getBoundingClientRect();
        if (r.right <= limit || r.width === 0) continue;
        let p = e.parentElement, boxed = false;
        while (p) {
          const s = getComputedStyle(p);
          if (s.overflowX === 'auto' || s.overflowX === 'scroll') { boxed = true; break; }
          p = p.parentElement;
        }
        if (!boxed) out.push(e.tagName + '.' + e.className);
      }
      return out.slice(0, 10);
    }"""
    found: list[str] = page.evaluate(script)
    return found


def captions_cut(page: Any, width: int) -> list[str]:
    """Table captions not read whole in the window (a caption is as wide as its table unless
    the page's CSS wraps it, so a wide table scrolling in its box would cut its caption)."""
    cut = []
    for caption in page.locator("main table caption").all():
        box = caption.bounding_box()
        if box is not None and (box["x"] < 0 or box["x"] + box["width"] > width):
            cut.append(caption.inner_text())
    return cut


@pytest.mark.parametrize("width", WIDTHS)
def test_rollout_pages_draw_their_charts_and_fit_the_window(
    browser: Any, page: Any, app: App, tmp_path: Path, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, app, "/ui/rollouts")
    for name, rollout in (("promoted", app.seeded.promoted), ("aborted", app.seeded.failed_canary)):
        page.goto(f"{app.url}/ui/rollouts/{rollout}")
        charts = page.locator("svg.chart-svg")
        assert charts.count() >= 6
        for index in range(charts.count()):
            box = charts.nth(index).bounding_box()
            assert box is not None
            assert 200 < box["width"] <= width
            assert box["height"] > box["width"] / 5
        # no script ran, yet the chart's numbers are the table's: compare them in the page
        pairs = page.evaluate(
            """() => Array.from(document.querySelectorAll('#chart-last-0 circle[data-row]'))
                 .map(c => [c.dataset.row, c.dataset.arm, Number(c.dataset.estimate)])"""
        )
        table = page.locator("#data-last-0 tbody tr").all_inner_texts()
        assert len(pairs) == 6
        for row, arm, estimate in pairs:
            line = next(t for t in table if t.startswith(row))
            cells = line.split("\t")
            shown = cells[1] if arm == "baseline" else cells[2]
            assert shown.split(" [")[0] == f"{estimate:.4g}"
        assert overflowing(page) == []
        assert captions_cut(page, width) == []
        screenshot(page, tmp_path, f"rollout-{name}-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_analysis_entry_page_shows_the_evidence_table_and_charts(
    browser: Any, page: Any, app: App, tmp_path: Path, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, app, f"/ui/rollouts/{app.seeded.failed_canary}")
    page.locator("table.evidence caption a").click()
    page.wait_for_url("**/ui/events/*")
    evidence = page.locator("table.evidence")
    assert "error_rate" in evidence.inner_text()
    assert page.locator("svg.chart-svg").count() == 3
    assert overflowing(page) == []
    assert captions_cut(page, width) == []
    screenshot(page, tmp_path, f"analysis-entry-{width}")


def test_the_evidence_pack_opens_from_disk_and_prints(
    browser: Any, page: Any, app: App, tmp_path: Path
) -> None:
    sign_in(page, app, f"/ui/rollouts/{app.seeded.promoted}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the evidence pack").click()
    assert download.value.suggested_filename == f"evidence-pack-{app.seeded.promoted}.html"
    pack = tmp_path / "evidence-pack.html"
    download.value.save_as(pack)
    # the same file as the API's, apart from when and by whom it was made
    response = httpx.get(
        f"{app.url}/api/v1/rollouts/{app.seeded.promoted}/evidence-pack",
        headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 200
    assert len(response.text) == len(pack.read_text(encoding="utf-8"))
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(pack.as_uri())
        assert page.locator("svg.chart-svg").count() >= 6
        header = page.locator("header.pack-head")
        assert (
            header.evaluate("e => getComputedStyle(e).borderBottomStyle") == "solid"
        )  # inline CSS
        assert CR in page.locator("#approvals-heading + div").inner_text()
        screenshot(page, tmp_path, f"evidence-pack-{width}")
    page.emulate_media(media="print")
    pdf = tmp_path / "evidence-pack.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_size > 20_000
    keep(pdf)
