"""The charts and evidence tables on the rollout and entry pages, against the recorded evidence.

Every number a chart draws is in a ``data-*`` attribute and in the table beside it; these tests
parse the SVG (as XML: a chart must be well-formed) and compare it with the ledger entries it
comes from (seed.py's story).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from analyzer.domain.events import EventType
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.compact import base_of
from tests.integration.ui.conftest import Site, text_of
from tests.integration.ui.seed import CAB_APPROVER, CR, ERROR_FAIL_E_VALUE, LATENCY_ESTIMATE

pytestmark = pytest.mark.postgres


def svgs(html: str) -> dict[str, ET.Element]:
    """Every chart of a page by its id."""
    found = {}
    for match in re.finditer(r"<svg\b.*?</svg>", html, re.S):
        element = ET.fromstring(match.group(0))
        found[element.attrib["id"]] = element
    return found


def points(svg: ET.Element, **match: str) -> list[dict[str, str]]:
    """The ``data-*`` attributes of every element of ``svg`` that has them and matches."""
    found = []
    for element in svg.iter():
        attrs = {k[5:]: v for k, v in element.attrib.items() if k.startswith("data-")}
        if element.tag.endswith("svg") or not attrs:
            continue
        if all(attrs.get(k.replace("_", "-")) == v for k, v in match.items()):
            found.append(attrs)
    return found


def table_rows(html: str, table_id: str) -> list[list[str]]:
    table = re.search(rf'<table class="chart-data" id="{table_id}">(.*?)</table>', html, re.S)
    assert table is not None, table_id
    body = table.group(1).split("<tbody>", 1)[1]
    return [
        [text_of(cell) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def of_rollout(site: Site, rollout: str, *kinds: EventType) -> list[EntryRecord]:
    return list(site.ledger.events(rollout_id=rollout, event_types=kinds, limit=1000).entries)


def rollout_page(site: Site, rollout: str) -> str:
    response = site.get(f"/ui/rollouts/{rollout}")
    assert response.status_code == 200, response.text
    return response.text


def metrics_of(entry: EntryRecord) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in entry.data()["result"]["metrics"]}


def test_traffic_staircase_is_the_serving_history_with_every_marker(site: Site) -> None:
    assert site.seeded is not None
    rollout = site.seeded.promoted
    html = rollout_page(site, rollout)
    chart = svgs(html)["chart-traffic"]
    changes = of_rollout(site, rollout, EventType.TRAFFIC_CHANGED)
    drawn = points(chart, source="confirmed")
    assert [(int(p["seq"]), float(p["weight"])) for p in drawn] == [
        (e.seq, float(e.data()["canary_weight"])) for e in changes
    ]
    assert [float(p["weight"]) for p in drawn] == [10, 25, 50, 100]
    kinds = {int(p["seq"]): p["kind"] for p in points(chart) if "kind" in p}
    for kind, expected in (
        (EventType.ANALYSIS_RECORDED, "verdict-pass"),
        (EventType.APPROVAL_GIVEN, "approval"),
        (EventType.ROLLOUT_PROMOTED, "promoted"),
    ):
        entries = of_rollout(site, rollout, kind)
        assert entries, kind
        assert all(kinds[e.seq] == expected for e in entries), kind
    gates = of_rollout(site, rollout, EventType.GATE_CHECKED)
    assert {kinds[e.seq] for e in gates} <= {"gate-open", "gate-closed"}
    assert (
        len(kinds) == len(of_rollout(site, rollout, EventType.ANALYSIS_RECORDED)) + len(gates) + 2
    )
    # each mark links to its entry, and the table beside names the approver and the promotion
    for seq in kinds:
        assert f'<a href="/ui/events/{seq}">' in html
    text = " ".join(" ".join(r) for r in table_rows(html, "data-traffic"))
    assert "approved by bob.approver for step 3 under CHG0031337" in text
    assert "canary 100 % confirmed, promoted" in text
    desc = chart.find("{http://www.w3.org/2000/svg}desc")
    assert desc is not None
    assert "ending at 100 %" in (desc.text or "")


def test_evidence_over_the_looks_draws_each_recorded_e_value_and_the_boundary(site: Site) -> None:
    assert site.seeded is not None
    rollout = site.seeded.promoted
    html = rollout_page(site, rollout)
    charts = svgs(html)
    looks = of_rollout(site, rollout, EventType.ANALYSIS_RECORDED)
    assert len(looks) >= 3
    for number, entry in enumerate(looks, start=1):
        for name, metric in metrics_of(entry).items():
            drawn = points(charts["chart-evidence"], metric=name, look=str(number))
            assert [float(p["e-value"]) for p in drawn] == [metric["statistic"]["e_value"]]
    rows = table_rows(html, "data-evidence")
    assert [r[:4] for r in rows] == [
        [str(n), f"#{e.seq}", "pass", "100"] for n, e in enumerate(looks, start=1)
    ]
    assert "boundary 60" in html
    scores = points(charts["chart-score"])
    assert [(p["look"], p["score"]) for p in scores] == [
        (str(n), "100") for n in range(1, len(looks) + 1)
    ]
    # the error rate's confidence sequence: each look's interval as recorded
    sequence = points(charts["chart-sequence-0"], metric="error_rate")
    assert [(float(p["lo"]), float(p["hi"])) for p in sequence] == [
        tuple(metrics_of(e)["error_rate"]["estimate"]["intervals"]["rate"]) for e in looks
    ]
    assert "tolerance +0.1 pp" in html


def test_last_analysis_charts_and_table_equal_the_recorded_estimates(site: Site) -> None:
    assert site.seeded is not None
    rollout = site.seeded.failed_canary
    html = rollout_page(site, rollout)
    charts = svgs(html)
    last = of_rollout(site, rollout, EventType.ANALYSIS_RECORDED)[-1]
    recorded = metrics_of(last)
    latency = charts["chart-last-0"]
    assert latency.attrib["data-kind"] == "histogram"
    for q in ("p50", "p90", "p99"):
        for arm in ("baseline", "canary"):
            (dot,) = points(latency, row=q, arm=arm)
            assert float(dot["estimate"]) == LATENCY_ESTIMATE[q][arm]
            assert [float(dot["lo"]), float(dot["hi"])] == LATENCY_ESTIMATE[q][f"{arm}_ci"]
        (band,) = [p for p in points(latency, row=q) if "allowed-lo" in p]
        assert float(band["allowed-hi"]) == pytest.approx(LATENCY_ESTIMATE[q]["baseline"] * 1.1)
    rate = charts["chart-last-1"]
    errors = recorded["error_rate"]
    assert rate.attrib["data-verdict"] == "fail"
    (canary,) = points(rate, arm="canary")
    assert float(canary["estimate"]) == errors["estimate"]["canary_rate"]
    mix = charts["chart-last-2"]
    shares = {(p["category"], p["arm"]): float(p["share"]) for p in points(mix)}
    assert shares[("review", "canary")] == 0.16
    assert shares[("approve", "baseline")] == 0.8
    # the evidence table: n per arm, estimates with intervals, tolerance, boundary, decided at
    table = re.search(r'<table class="evidence">(.*?)</table>', html, re.S)
    assert table is not None
    row = re.search(
        r'<tr class="verdict-fail first" data-metric="error_rate".*?</tr>', table[1], re.S
    )
    assert row is not None
    cells = text_of(row.group(0))
    assert "error_rate proportion rate 90 000 10 000" in cells
    assert "2.1 [" in cells
    assert "difference 1.7 pp [1.62, 1.78]" in cells
    assert "difference ≤ 0.1 pp" in cells
    assert f"e-value ≥ 60 fails (now e-value {ERROR_FAIL_E_VALUE:g})" in cells
    assert "critical fail look 1" in cells
    assert f'href="/ui/events/{last.seq}#data-heading"' in html  # the JSON, one click away
    text = text_of(html)
    assert "error_rate: verdict fail · critical" in text


def test_entry_page_of_an_analysis_shows_the_evidence_and_keeps_the_json(site: Site) -> None:
    assert site.seeded is not None
    entry = of_rollout(site, site.seeded.failed_canary, EventType.ANALYSIS_RECORDED)[-1]
    response = site.get(f"/ui/events/{entry.seq}")
    assert response.status_code == 200
    html = response.text
    assert "Evidence, canary vs baseline" in html
    charts = svgs(html)
    assert sorted(charts) == [f"chart-e{entry.seq}-{i}" for i in range(3)]
    assert '"e_value": 95.5' in text_of(html)  # the recorded data stays on the page
    other = of_rollout(site, site.seeded.failed_canary, EventType.TRAFFIC_CHANGED)[0]
    assert "<svg" not in site.get(f"/ui/events/{other.seq}").text


def test_chart_pages_hold_no_script_no_inline_style_and_keep_the_csp(site: Site) -> None:
    assert site.seeded is not None
    for path in (
        f"/ui/rollouts/{site.seeded.promoted}",
        f"/ui/rollouts/{site.seeded.hand_aborted}",
    ):
        response = site.get(path)
        assert response.status_code == 200
        assert "script-src 'none'" in response.headers["content-security-policy"]
        html = response.text
        assert "<svg" in html
        assert re.search(r"<script", html, re.I) is None
        assert re.search(r"\sstyle=", html) is None
        assert re.search(r"\son[a-z]+=", html) is None
        assert "javascript:" not in html


def test_the_hand_aborted_rollout_draws_its_abort_with_the_reason_escaped(site: Site) -> None:
    assert site.seeded is not None
    html = rollout_page(site, site.seeded.hand_aborted)
    chart = svgs(html)["chart-traffic"]
    aborted = of_rollout(site, site.seeded.hand_aborted, EventType.ROLLOUT_ABORTED)
    assert [p["kind"] for p in points(chart) if p.get("seq") == str(aborted[0].seq)] == ["aborted"]
    assert "&lt;script&gt;alert(&#34;reason&#34;)" in html


def test_a_viewer_gets_no_ledger_pictures(site: Site) -> None:
    assert site.seeded is not None
    response = site.get(f"/ui/rollouts/{site.seeded.promoted}", "viewer")
    assert response.status_code == 200
    assert "<svg" not in response.text


def test_serving_answer_says_until_when_and_in_which_role_each_approver_approved(
    site: Site,
) -> None:
    assert site.seeded is not None
    response = site.get(
        "/ui/serving", params={"model": "risk-prod/fraud-scorer", "at": "2026-03-04T02:13:00Z"}
    )
    assert response.status_code == 200
    text = text_of(response.text)
    promoted = of_rollout(site, site.seeded.promoted, EventType.TRAFFIC_CHANGED)[-1]
    following = of_rollout(site, site.seeded.failed_canary, EventType.TRAFFIC_CHANGED)[0]
    assert (
        f"Served from 2026-03-04T02:06:00Z until 2026-03-04T02:20:00Z (#{following.seq}: step 0)"
        in text
    )
    assert promoted.seq < following.seq
    assert "bob.approver: four-eyes approver" in text
    assert f"{CAB_APPROVER}: change board approver ({CR})" in text
    now = site.get(
        "/ui/serving", params={"model": "risk-prod/fraud-scorer", "at": "2026-03-05T00:00:00Z"}
    )
    assert "until now: still serving (no later traffic change recorded)" in text_of(now.text)


def test_the_seeded_history_holds_compact_looks_and_they_are_drawn_whole(site: Site) -> None:
    # The charts above read both shapes of a look: the seeded rollouts repeat verdicts within a
    # step, so the engine wrote most of their looks compactly (docs/ledger.md)
    assert site.seeded is not None
    rollout = site.seeded.promoted
    looks = of_rollout(site, rollout, EventType.ANALYSIS_RECORDED)
    compact = [e for e in looks if base_of(e.stored_data()) is not None]
    assert compact
    assert len(compact) < len(looks)
    kinds = {
        int(p["seq"]): p["kind"]
        for p in points(svgs(rollout_page(site, rollout))["chart-traffic"])
        if "kind" in p
    }
    for entry in compact:
        assert entry.data()["result"]["verdict"] == entry.stored_data()["repeats"]["verdict"]
        assert kinds[entry.seq] == f"verdict-{entry.stored_data()['repeats']['verdict']}"
