"""A model-risk officer's session in a real browser, on the seeded ledger of 4 March 2026.

Sign in through the form, ask which revision served risk-prod/fraud-scorer at 02:13, follow
the evidence to its ledger entry, check the chain; then an insider rewrites an approval in SQL
and the verify page names the entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.e2e.conftest import AUDITOR_TOKEN, App
from tests.integration.ui.seed import CAB_APPROVER, CR, XSS_REASON

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

APPROVAL_SEQ = 11  # seed.py: bob.approver's approval of the promoted rollout
CR_GATE_SEQ = 19  # the gate check whose ServiceNow evidence holds the change request
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a laptop-sized window, and its page. Any
    console error (a CSP violation, a failed asset) or dialog fails the test."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    opened.set_default_timeout(5000)
    yield opened
    context.close()
    assert problems == []


def sign_in(page: Any, app: App, path: str) -> None:
    page.goto(app.url + path)
    assert page.url.startswith(app.url + "/ui/login?next=")
    page.get_by_label("Bearer token").fill(AUDITOR_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(app.url + path)


def test_which_revision_served_at_0213_and_the_evidence_behind_it(
    browser: Any, page: Any, app: App, tmp_path: Path
) -> None:
    sign_in(page, app, "/ui/serving")
    cookie = next(c for c in page.context.cookies() if c["name"] == "canary_ui_token")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert cookie["secure"] is True

    page.get_by_label("Model (NAMESPACE/NAME)").fill("risk-prod/fraud-scorer")
    page.get_by_label("Instant (ISO 8601 with zone)").fill("2026-03-04T02:13:00Z")
    page.get_by_role("button", name="Ask").click()
    page.wait_for_url("**/ui/serving?model=*")

    serving = page.get_by_role("table", name="Revisions serving at that instant")
    rows = serving.locator("tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("th").inner_text() == "fraud-00002"
    assert "100 %" in rows.first.inner_text()
    facts = page.locator("dl.facts").inner_text()
    assert CR in page.locator(".change-request").inner_text()
    assert page.locator(".approver").all_inner_texts() == ["bob.approver", CAB_APPROVER]
    assert "rollout_promoted" in facts
    assert page.locator(".cr-state").inner_text() == "Implement"  # the CR's state at the time
    provenance = page.locator('table.provenance tr[data-revision="fraud-00002"]').inner_text()
    assert "model version 2.0.1" in provenance
    assert CR in page.locator(".promotion-change-request").inner_text()

    shot = tmp_path / "serving.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes().startswith(PNG_SIGNATURE)

    page.locator(".facts").get_by_role("link", name=f"#{CR_GATE_SEQ}").first.click()
    page.wait_for_url(f"**/ui/events/{CR_GATE_SEQ}")
    assert page.get_by_role("heading", level=1).inner_text() == f"Ledger entry #{CR_GATE_SEQ}"
    assert f'"change_request": "{CR}"' in page.locator("pre.json").inner_text()
    chain = page.locator("section", has=page.get_by_role("heading", name="Place in the hash chain"))
    assert chain.inner_text().count("intact") == 2

    page.get_by_role("link", name="Verify the whole chain").click()
    page.wait_for_url("**/ui/verify")
    assert "The ledger is intact" in page.get_by_role("heading", level=2).inner_text()
    assert f"{app.seeded.entries}" in page.locator("table.fields").inner_text()


def test_the_stylesheet_loads_under_the_csp_and_injected_markup_stays_text(
    browser: Any, page: Any, app: App
) -> None:
    sign_in(page, app, "/ui/")
    header = page.locator("header.site")
    assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(240, 243, 246)"
    page.get_by_role("link", name=app.seeded.hand_aborted).click()
    page.wait_for_url(f"**/ui/rollouts/{app.seeded.hand_aborted}")
    assert page.locator("td.reason").inner_text() == XSS_REASON
    assert page.locator("script").count() == 0  # the recorded <script> is text, not an element


def test_sign_out_removes_the_token_from_the_browser(browser: Any, page: Any, app: App) -> None:
    sign_in(page, app, "/ui/rollouts")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/login?reason=logged_out")
    assert "You are signed out" in page.locator(".notice").inner_text()
    assert [c for c in page.context.cookies() if c["name"] == "canary_ui_token"] == []
    page.goto(app.url + "/ui/verify")
    assert page.url.startswith(app.url + "/ui/login?next=")


def test_a_rewritten_approval_is_found_by_verify(browser: Any, page: Any, own_app: App) -> None:
    sign_in(page, own_app, "/ui/verify")
    assert "The ledger is intact" in page.get_by_role("heading", level=2).inner_text()
    # An insider with the database owner's rights swaps the approver, in the column and the
    # payload alike, with the append-only trigger switched off for the moment.
    with own_app.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"))
        conn.execute(
            text(
                "UPDATE ledger_entries SET actor = 'mallory', "
                'payload = replace(payload, \'"actor":"bob.approver"\', \'"actor":"mallory"\') '
                "WHERE seq = :seq"
            ),
            {"seq": APPROVAL_SEQ},
        )
        conn.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only"))

    page.reload()
    verdict = page.locator("section.verdict")
    assert f"BROKEN at seq {APPROVAL_SEQ}" in verdict.inner_text()
    assert "hash does not match sha256(prev_hash || payload)" in verdict.inner_text()
    verdict.get_by_role("link", name=f"#{APPROVAL_SEQ}").click()
    page.wait_for_url(f"**/ui/events/{APPROVAL_SEQ}")
    assert "mallory" in page.locator("table.fields").inner_text()
    chain = page.locator("section", has=page.get_by_role("heading", name="Place in the hash chain"))
    assert "the stored hash is not sha256(previous hash ‖ payload)" in chain.inner_text()
