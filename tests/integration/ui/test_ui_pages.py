"""What each page shows, on the seeded ledger (see seed.py for the story of 4 March 2026)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest

from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef, Tier
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import LedgerSignatures, PolicyGateChecker
from gates.policy import GatePolicyConfig
from gates.signature import SIGNATURE, SignatureGate, SignatureGateConfig, TrustedKey
from tests.cosign_keys import CosignKeyPair, digest_of
from tests.integration.api.conftest import static_token
from tests.integration.ui.conftest import Site, text_of
from tests.integration.ui.seed import (
    CAB_APPROVER,
    CR,
    DIGEST,
    PLAN,
    XSS_REASON,
    VerdictByCanary,
)
from tests.integration.ui.seed import (
    FRAUD as FRAUD_REF,
)

pytestmark = pytest.mark.postgres

FRAUD = "risk-prod/fraud-scorer"


def seqs_linked(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'href="/ui/events/(\d+)"', html)]


def serving(site: Site, at: str, model: str = FRAUD) -> str:
    response = site.get("/ui/serving", params={"model": model, "at": at})
    assert response.status_code == 200, response.text
    return response.text


def test_overview_lists_models_with_what_serves_them_and_recent_decisions(site: Site) -> None:
    response = site.get("/ui/", "auditor")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = text_of(response.text)
    for model, serving_now in (
        ("analytics/churn-model", "churn-00002 100 %"),
        (FRAUD, "fraud-00002 100 %"),
        ("risk-prod/limits-scorer", "limits-00001 100 %"),
    ):
        assert re.search(rf"{re.escape(model)} {re.escape(serving_now)}", text), model
    assert "Active rollouts None in progress." in text
    # Promotions and aborts apart from the routine looks (issue 14)
    outcomes = text.split("Promotions and aborts", 1)[1].split("Latest analysis verdicts")[0]
    looks = text.split("Latest analysis verdicts", 1)[1].split("Questions these pages")[0]
    assert "aborted: analysis failed: error_rate failed" in outcomes
    assert "promoted: step 2 passed; to 100 %" in outcomes
    assert outcomes.count("rollout_promoted") == 2  # rollouts A and D
    assert outcomes.count("rollout_aborted") == 2  # rollouts B and C
    assert "analysis_recorded" not in outcomes
    assert "verdict pass" not in outcomes
    assert looks.count("analysis_recorded") == 10  # the newest ten looks, nothing else
    assert "rollout_promoted" not in looks
    assert "rollout_aborted" not in looks
    # "since" links, by model name: each model's latest traffic change
    latest = []
    for model in ("analytics/churn-model", FRAUD, "risk-prod/limits-scorer"):
        namespace, name = model.split("/")
        changes = site.ledger.events(
            model=ModelRef(namespace=namespace, name=name),
            event_types=[EventType.TRAFFIC_CHANGED],
            newest_first=True,
            limit=1,
        ).entries
        latest.append(changes[0].seq)
    assert seqs_linked(response.text)[:3] == latest


def test_overview_for_a_viewer_leaves_out_the_audit_data(site: Site) -> None:
    response = site.get("/ui/", "viewer")
    assert response.status_code == 200
    text = text_of(response.text)
    assert FRAUD in text
    assert "Serving now" not in text
    assert "Promotions and aborts" not in text
    assert "Latest analysis verdicts" not in text
    assert "needs the auditor role" in text
    assert 'href="/ui/verify"' not in response.text  # the nav shows only pages they may open


def test_serving_after_the_promotion_names_revision_evidence_approvers_and_cr(site: Site) -> None:
    html = serving(site, "2026-03-04T02:13:00Z")
    text = text_of(html)
    assert "Revisions serving at that instant" in text
    assert re.search(rf"fraud-00002 100 % 2\.0\.1 s3://models/fraud-scorer/2 {DIGEST} 3", text)
    assert "fraud-00001" not in text.split("Put there by")[0].split("Revisions serving")[1]
    assert f"Change request {CR} (entry #19)" in text
    assert f"Approved by bob.approver, {CAB_APPROVER}" in text
    assert "rollout_promoted #22" in text
    assert "#18 at 2026-03-04T02:06:00Z: verdict pass score 100" in text
    assert "latency_p99 histogram pass p99 7.1 ms vs 7.0 ms" in text
    assert "backtest and CAB minutes reviewed" in text
    assert {21, 22, 19, 18, 11, 1} <= set(seqs_linked(html))


def provenance_rows(html: str) -> dict[str, str]:
    """Revision -> the text of its row in the provenance table."""
    section = html.split('id="provenance-heading"', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<tr data-revision="([^"]+)">(.*?)</tr>', section, flags=re.S)
    return {revision: text_of(row) for revision, row in rows}


def test_serving_names_the_change_requests_state_as_the_gate_read_it_then(site: Site) -> None:
    html = serving(site, "2026-03-04T02:13:00Z")
    text = text_of(html)
    assert (
        f"{CR} at the time: state Implement, approval approved — as servicenow-change read it "
        "at 2026-03-04T02:06:00Z (#19, gate open)"
    ) in text
    assert 'data-change-request="CHG0031337"' in html


def test_serving_tells_the_baselines_provenance_too(site: Site) -> None:
    """Rollout B's canary at 10 % over fraud-00002: the baseline came from rollout A's
    promotion under CR, and its registration; the canary is registered and not promoted."""
    html = serving(site, "2026-03-04T02:20:30Z")
    rows = provenance_rows(html)
    assert list(rows) == ["fraud-00002", "fraud-00003"]
    baseline = rows["fraud-00002"]
    assert baseline.startswith("fraud-00002 baseline 90 %")
    assert f"#1 2026-03-04T02:00:00Z, model version 2.0.1: s3://models/fraud-scorer/2 {DIGEST}" in (
        baseline
    )
    assert site.seeded is not None
    promoted_by = f"#22 2026-03-04T02:06:00Z in rollout {site.seeded.promoted} under {CR}"
    assert baseline.endswith(promoted_by)
    canary = rows["fraud-00003"]
    assert canary.startswith("fraud-00003 canary 10 %")
    assert "no artifact URI recorded" in canary
    assert canary.endswith("not promoted (still a canary)")


def test_serving_says_when_a_baseline_has_no_recorded_provenance(site: Site) -> None:
    rows = provenance_rows(serving(site, "2026-03-04T02:03:30Z"))
    assert rows["fraud-00001"] == (
        "fraud-00001 baseline 75 % no registration recorded no signature check recorded no "
        "promotion recorded: it served before canary-analyzer recorded one"
    )
    assert rows["fraud-00002"].startswith("fraud-00002 canary 25 % #1")


def test_serving_mid_rollout_shows_the_split_and_no_change_request_yet(site: Site) -> None:
    text = text_of(serving(site, "2026-03-04T02:03:30+00:00"))
    assert re.search(r"fraud-00001 75 % .* fraud-00002 25 %", text)
    assert "Put there by #10 at 2026-03-04T02:02:00Z" in text
    assert "none in the gate evidence or approvals of this rollout" in text
    assert "nobody on record before this change" in text  # bob approved at 02:03, after #10


def test_serving_in_another_zone_is_the_same_instant(site: Site) -> None:
    utc = text_of(serving(site, "2026-03-04T02:03:30Z"))
    berlin = text_of(serving(site, "2026-03-04T03:03:30+01:00"))
    assert utc.split("Put there by")[1] == berlin.split("Put there by")[1]


def test_serving_after_the_abort_shows_the_baseline_and_why(site: Site) -> None:
    text = text_of(serving(site, "2026-03-04T02:30:00Z"))
    assert re.search(r"fraud-00002 100 %", text)
    assert "fraud-00003" not in text.split("Put there by")[0].split("Revisions serving")[1]
    assert "rollout_aborted #29 by canary-analyzer/seed: analysis failed: error_rate failed" in text
    assert "verdict fail score 0" in text
    assert "error_rate proportion fail canary 2.1 % vs baseline 0.4 %" in text


def test_serving_before_any_history_says_so(site: Site) -> None:
    text = text_of(serving(site, "2026-03-04T01:00:00Z"))
    assert (
        "No traffic change of risk-prod/fraud-scorer is recorded at or before this instant" in text
    )


def test_serving_without_a_question_shows_the_form_with_known_models(site: Site) -> None:
    response = site.get("/ui/serving")
    assert response.status_code == 200
    assert '<form method="get" action="/ui/serving"' in response.text
    assert f'<option value="{FRAUD}">' in response.text


def test_events_newest_first_with_every_filter(site: Site) -> None:
    page = site.get("/ui/events", params={"limit": 25})
    assert page.status_code == 200
    assert seqs_linked(page.text)[:3] == [59, 58, 57]
    approvals = site.get("/ui/events", params={"type": "approval_given"})
    assert seqs_linked(approvals.text) == [48, 11]
    by_bob = site.get("/ui/events", params={"actor": "bob.approver"})
    assert seqs_linked(by_bob.text) == [11]
    window = site.get(
        "/ui/events",
        params={
            "model": FRAUD,
            "since": "2026-03-04T02:20:00Z",
            "until": "2026-03-04T02:21:00Z",
            "order": "oldest",
        },
    )
    assert seqs_linked(window.text) == [23, 24, 25, 26, 27]
    two_types = site.get(
        "/ui/events", params={"type": ["rollout_aborted", "rollout_promoted"], "order": "oldest"}
    )
    assert seqs_linked(two_types.text) == [22, 29, 36, 59]
    assert 'value="rollout_aborted" checked' in two_types.text  # the form keeps the filters


def test_events_pages_with_a_cursor_until_every_entry_was_seen(site: Site) -> None:
    seen: list[int] = []
    path = "/ui/events?limit=25&order=oldest"
    for _ in range(5):
        html = site.get(path).text
        seen.extend(seqs_linked(html))
        found = re.search(r'<a href="([^"]+)" rel="next">', html)
        if found is None:
            assert "End of the matching entries." in html
            break
        path = found.group(1).replace("&amp;", "&")
        assert "cursor=" in path
        assert "order=oldest" in path
        assert "limit=25" in path
    assert seen == list(range(1, 60))


def test_events_export_links_carry_the_filters_and_match_the_api_export(site: Site) -> None:
    params = {"model": FRAUD, "since": "2026-03-04T02:20:00Z", "type": "traffic_changed"}
    html = site.get("/ui/events", params=params).text
    links = re.findall(r'<a href="(/ui/export\?[^"]+)" download>', html)
    assert len(links) == 2
    csv_link = next(link for link in links if "format=csv" in link).replace("&amp;", "&")
    assert "model=risk-prod%2Ffraud-scorer" in csv_link
    assert "since=2026-03-04T02%3A20%3A00Z" in csv_link
    assert "type=" not in csv_link  # an export is the complete record of its range
    exported = site.get(csv_link)
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == (
        'attachment; filename="canary-analyzer-ledger.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(r["seq"]) for r in rows] == [23, 24, 25, 26, 27, 28, 29, 30]
    api = site.http.get(
        site.url + "/api/v1/audit/export",
        params={"format": "csv", "model": FRAUD, "since": "2026-03-04T02:20:00Z"},
        headers={"Authorization": f"Bearer {static_token('auditor')}"},
    )
    assert api.status_code == 200
    assert api.text == exported.text
    as_json = site.get("/ui/export", params={"format": "json", "model": FRAUD})
    assert [e["seq"] for e in json.loads(as_json.text)] == list(range(1, 31))


def test_entry_page_shows_every_field_the_evidence_and_its_chain_links(site: Site) -> None:
    entry = site.ledger.entry(21)
    previous = site.ledger.entry(20)
    assert entry is not None
    assert previous is not None
    response = site.get("/ui/events/21")
    assert response.status_code == 200
    html, text = response.text, text_of(response.text)
    for field in (
        "Seq 21",
        "Recorded at 2026-03-04T02:06:00Z",
        "Type traffic_changed",
        "Payload schema 1",
        "Actor canary-analyzer/seed",
        "Revision fraud-00002",
    ):
        assert field in text
    assert entry.hash in html
    assert entry.prev_hash in html
    assert previous.hash == entry.prev_hash
    assert "intact sha256(previous hash ‖ payload) equals the stored hash" in text
    assert "intact the previous hash is entry #20's hash" in text
    assert '<a href="/ui/events/20" rel="prev">' in html
    assert '<a href="/ui/events/22" rel="next">' in html
    assert "  &#34;split&#34;: [\n" in html  # pretty-printed evidence
    assert "&#34;cause&#34;:&#34;promoted&#34;" in html  # the hashed payload, byte for byte
    first = text_of(site.get("/ui/events/1").text)
    assert "first entry of the ledger" in first
    assert "the previous hash is 64 zeros" in first
    assert "head of the ledger" in text_of(site.get("/ui/events/59").text)


def test_a_missing_entry_is_a_404_page(site: Site) -> None:
    response = site.get("/ui/events/999")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no ledger entry 999 that your token may read" in text_of(response.text)


def test_verify_says_intact_with_the_chain_totals(site: Site) -> None:
    response = site.get("/ui/verify")
    assert response.status_code == 200
    text = text_of(response.text)
    seq, head_hash = site.ledger.head()
    assert "The ledger is intact" in text
    assert f"Entries verified {seq}" in text
    assert head_hash in response.text


def test_rollouts_list_filters_by_state_and_model(site: Site) -> None:
    assert site.seeded is not None
    everything = site.get("/ui/rollouts", "viewer").text
    ids = (
        site.seeded.promoted,
        site.seeded.failed_canary,
        site.seeded.hand_aborted,
        site.seeded.analytics,
    )
    assert all(f'href="/ui/rollouts/{i}"' in everything for i in ids)
    aborted = site.get("/ui/rollouts", "viewer", params={"state": "aborted"}).text
    assert f'href="/ui/rollouts/{site.seeded.failed_canary}"' in aborted
    assert f'href="/ui/rollouts/{site.seeded.hand_aborted}"' in aborted
    assert f'href="/ui/rollouts/{site.seeded.promoted if site.seeded else "?"}"' not in aborted
    one_model = site.get("/ui/rollouts", "viewer", params={"model": FRAUD}).text
    assert f'href="/ui/rollouts/{site.seeded.hand_aborted}"' not in one_model
    assert f'href="/ui/rollouts/{site.seeded.promoted if site.seeded else "?"}"' in one_model


def test_a_promoted_rollout_shows_its_steps_and_timeline(site: Site) -> None:
    assert site.seeded is not None
    response = site.get(f"/ui/rollouts/{site.seeded.promoted if site.seeded else '?'}")
    assert response.status_code == 200
    text = text_of(response.text)
    assert f"Model version 2.0.1 Artifact s3://models/fraud-scorer/2 {DIGEST}" in text
    for step, weight, entered in (
        (0, 10, "02:00"),
        (1, 25, "02:02"),
        (2, 50, "02:04"),
        (3, 100, "02:06"),
    ):
        assert re.search(rf"{step} {weight} % 120 s .* passed 2026-03-04T{entered}:00Z", text)
    timeline = text.split("Timeline", 1)[1]
    assert "bob.approver approved step 3 under CHG0031337" in timeline
    assert f"gates open [{CR}]: all 2 required gates open" in timeline
    assert seqs_linked(response.text)[-22:] == list(range(1, 23))


def test_an_aborted_rollout_shows_the_reason_and_who(site: Site) -> None:
    assert site.seeded is not None
    text = text_of(site.get(f"/ui/rollouts/{site.seeded.hand_aborted}").text)
    assert f"Abort reason {XSS_REASON}" in text
    assert re.search(r"0 10 % 120 s — aborted here", text)
    assert 'eve<script>alert("actor")</script> aborted:' in text


def test_a_viewer_sees_the_rollout_record_but_not_the_ledger_timeline(site: Site) -> None:
    assert site.seeded is not None
    response = site.get(f"/ui/rollouts/{site.seeded.failed_canary}", "viewer")
    assert response.status_code == 200
    text = text_of(response.text)
    assert "Abort reason analysis failed: error_rate failed" in text
    assert "it needs the auditor role" in text
    assert seqs_linked(response.text) == []


def test_an_unknown_rollout_is_a_404_page(site: Site) -> None:
    response = site.get("/ui/rollouts/no-such-rollout")
    assert response.status_code == 404
    assert "no rollout 'no-such-rollout' that your token may read" in text_of(response.text)


def test_rollouts_are_named_by_model_and_revisions_with_the_uuid_second(site: Site) -> None:
    assert site.seeded is not None
    html = site.get("/ui/rollouts").text
    name = f"{FRAUD}: fraud-00001 → fraud-00002"
    link = re.search(r'<a class="rollout-name" href="/ui/rollouts/([^"]+)">([^<]+)</a>', html)
    assert link is not None
    names = dict(re.findall(r'<a class="rollout-name" href="/ui/rollouts/([^"]+)">([^<]+)</a>',
                            html))  # fmt: skip
    assert names[site.seeded.promoted] == name
    assert names[site.seeded.failed_canary] == f"{FRAUD}: fraud-00002 → fraud-00003"
    page = site.get(f"/ui/rollouts/{site.seeded.promoted}").text
    assert re.search(r"<h1>([^<]+)</h1>", page).group(1) == name  # type: ignore[union-attr]
    assert f"<title>{name}" in page
    assert f"rollout {site.seeded.promoted}" in text_of(page)  # the UUID, second
    assert "Health finished. Analysis errors in a row: 0 of 4" in text_of(page)
    assert "unhealthy" not in page


def test_a_rollout_whose_target_keeps_failing_is_visibly_unhealthy(make_site: Any) -> None:
    site = make_site(seed=False)
    target = InMemoryTarget()
    target.add_model(FRAUD_REF, stable_revision="fraud-00001", canary_revision="fraud-00002")
    service = RolloutService(site.engine, site.ledger, target, clock=site.clock)
    engine = RolloutEngine(site.engine, site.ledger, target, VerdictByCanary(),
                           PolicyGateChecker(GatePolicyConfig(), {}), clock=site.clock,
                           replica_id="t")  # fmt: skip
    rollout = service.start(
        StartRollout(model=FRAUD_REF, tier=Tier.STANDARD, baseline_revision="fraud-00001",
                     canary_revision="fraud-00002", profile="fraud", plan=PLAN),
        Actor(subject="alice", roles=frozenset({"operator"})),
    )  # fmt: skip
    target.fail_next(10_000)  # the cluster refuses every call (the engine retries each tick)
    for _ in range(3):
        engine.tick()
        site.clock.advance(60)
    errors = site.ledger.events(rollout_id=rollout.id, event_types=[EventType.TARGET_ERROR])
    assert len(errors.entries) >= 3  # not vacuous: the target did fail, every tick
    page = text_of(site.get(f"/ui/rollouts/{rollout.id}").text)
    unhealthy = (
        "unhealthy: move to 10 % unconfirmed by the target for 180 s; "
        f"{len(errors.entries)} target errors since the last confirmed traffic change"
    )
    assert unhealthy in page
    assert f"Health {unhealthy}. Analysis errors in a row: 0 of 4" in page
    # lists show what the record says (no entries read there): the unconfirmed move
    listed = text_of(site.get("/ui/rollouts").text)
    assert "unhealthy: move to 10 % unconfirmed by the target for 180 s" in listed
    overview = site.get("/ui/", "auditor").text
    assert 'data-problems="1"' in overview  # active rollouts show it too
    target.fail_next(0)
    engine.tick()  # the cluster answers again: the move is confirmed, healthy
    healthy = text_of(site.get(f"/ui/rollouts/{rollout.id}").text)
    assert "unhealthy" not in healthy
    assert "Health healthy." in healthy


def test_the_now_button_asks_about_this_instant_and_the_form_says_how_to_write_local_time(
    site: Site,
) -> None:
    form = site.get("/ui/serving").text
    assert 'name="now"' in form
    assert "formnovalidate" in form  # the empty, required instant field does not block it
    assert "+01:00" in text_of(form)  # how to write a local time
    response = site.get("/ui/serving", params={"model": FRAUD, "now": "1"})
    assert response.status_code == 200
    text = text_of(response.text)
    now = site.clock().isoformat()
    assert f'value="{now}"' in response.text  # the field holds the instant asked about
    assert "fraud-00002 100 %" in text  # what serves now, after rollout B was aborted
    assert "still serving" in text


def test_serving_provenance_names_the_signature_result_of_each_revision(make_site: Any) -> None:
    site = make_site(seed=False)
    signer = CosignKeyPair.generate()
    artifact = b"fraud-scorer v2 model.onnx"
    target = InMemoryTarget()
    target.add_model(FRAUD_REF, stable_revision="fraud-00001", canary_revision="fraud-00002")
    config = SignatureGateConfig(public_keys=(TrustedKey(name="ml-platform",
                                                         pem=signer.public_pem),))  # fmt: skip
    gates = {SIGNATURE: SignatureGate(LedgerSignatures(site.ledger), config)}
    service = RolloutService(site.engine, site.ledger, target, clock=site.clock)
    engine = RolloutEngine(site.engine, site.ledger, target, VerdictByCanary(),
                           PolicyGateChecker(GatePolicyConfig(every_model=({"gate": SIGNATURE,
                                                                            "from_weight": 0},)),
                                             gates),
                           clock=site.clock, replica_id="t")  # fmt: skip
    service.start(
        StartRollout(model=FRAUD_REF, tier=Tier.STANDARD, baseline_revision="fraud-00001",
                     canary_revision="fraud-00002", profile="fraud", plan=PLAN,
                     artifact_digest=digest_of(artifact),
                     artifact_signature=signer.sign_blob(artifact)),
        Actor(subject="alice", roles=frozenset({"operator"})),
    )  # fmt: skip
    engine.tick()
    site.clock.advance(60)
    rows = provenance_rows(serving(site, site.clock().isoformat()))
    assert "open: signature verified with key 'ml-platform'" in rows["fraud-00002"]
    assert rows["fraud-00001"].endswith(
        "no registration recorded no signature check recorded no promotion recorded: it served "
        "before canary-analyzer recorded one"
    )
