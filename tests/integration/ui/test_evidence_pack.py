"""The evidence pack: the API and the CLI make it, ``ledger verify --pack`` checks it.

A pack verifies offline as made; it fails when one byte of an entry changes (payload, shown
data, a link); ``--against-ledger`` anchors it to the ledger and catches an insider who
rewrote an entry and re-hashed the chain after it (which the ledger's own verify cannot see).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from analyzer.domain.events import EventType
from analyzer.ledger.chain import entry_hash
from analyzer.ledger.pack import FORMAT, extract_pack, verify_pack
from tests.integration.ui.conftest import SCOPED_AUDITOR, Site, text_of
from tests.integration.ui.seed import CAB_APPROVER, CR, DIGEST

pytestmark = pytest.mark.postgres


def pack_of(site: Site, rollout: str, role: str = "auditor", **params: str) -> Any:
    return site.get(f"/api/v1/rollouts/{rollout}/evidence-pack", role, params=params)


def cli(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", *args], env=env,
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_the_api_pack_is_a_printable_report_holding_every_entry_verifiably(site: Site) -> None:
    assert site.seeded is not None
    rollout = site.seeded.promoted
    response = pack_of(site, rollout)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "attachment" in response.headers["content-disposition"]
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none'
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert re.search(r"<script", html, re.I) is None
    assert re.search(r'(href|src)="(https?:|/)', html) is None  # self-contained: no outside link
    assert html.count("<svg") >= 5
    pack = extract_pack(html)
    assert pack["format"] == FORMAT
    report = verify_pack(pack)
    assert report.intact, report.problems
    expected = site.ledger.events(rollout_id=rollout, limit=1000).entries
    assert [e["seq"] for e in pack["entries"]] == sorted(e.seq for e in expected)
    assert [e["hash"] for e in pack["entries"]] == [
        e.hash for e in sorted(expected, key=lambda e: e.seq)
    ]
    readable = text_of(html)
    assert "pack intact" in readable
    assert f"bob.approver four-eyes approver {CR}" in readable
    assert f"{CAB_APPROVER} change board (CAB) approver {CR}" in readable
    assert "bob.approver change board" not in readable  # a four-eyes approver, not the CAB
    assert f"s3://models/fraud-scorer/2 {DIGEST}" in readable
    assert f"{CR} Implement approved servicenow-change open" in readable
    assert "Outcome promoted" in readable
    # the same document as bare JSON
    as_json = pack_of(site, rollout, format="json")
    assert as_json.status_code == 200
    assert json.loads(as_json.text)["entries"] == pack["entries"]


def test_one_changed_byte_in_an_entry_fails_the_pack(site: Site) -> None:
    assert site.seeded is not None
    pack = extract_pack(pack_of(site, site.seeded.promoted, format="json").text)
    approval = next(e for e in pack["entries"] if e["event_type"] == "approval_given")
    later = extract_pack(pack_of(site, site.seeded.failed_canary, format="json").text)
    assert later["links"]  # its first entry follows another rollout's

    def broken(change: Any) -> list[str]:
        copy = json.loads(json.dumps(pack))
        change(next(e for e in copy["entries"] if e["seq"] == approval["seq"]), copy)
        report = verify_pack(copy)
        assert not report.intact
        return list(report.problems)

    def payload_byte(entry: dict[str, Any], _: Any) -> None:
        entry["payload"] = entry["payload"].replace("bob.approver", "bob.approves", 1)

    def data_byte(entry: dict[str, Any], _: Any) -> None:
        entry["data"]["comment"] = entry["data"]["comment"][:-1] + "X"

    def actor_byte(entry: dict[str, Any], _: Any) -> None:
        entry["actor"] = "bob.approvex"

    link = later["links"][0]
    link["hash"] = ("1" if link["hash"][0] != "1" else "2") + link["hash"][1:]
    problems = verify_pack(later).problems
    assert problems == (
        f"entry #{link['seq'] + 1}: prev_hash is not the hash of entry #{link['seq']}",
    )

    seq = approval["seq"]
    assert f"entry #{seq}: hash is not sha256(prev_hash ‖ payload)" in broken(payload_byte)
    assert f"entry #{seq}: data differs from the hashed payload" in broken(data_byte)
    assert f"entry #{seq}: actor differs from the hashed payload" in broken(actor_byte)


def test_the_html_file_fails_when_one_byte_of_its_json_changes(tmp_path: Path, site: Site) -> None:
    assert site.seeded is not None
    html = pack_of(site, site.seeded.failed_canary).text
    block = html.index('id="evidence-pack-json"')
    position = html.index("fraud-00003", block)  # inside the first entry naming the canary
    tampered = html[:position] + "fraud-00004" + html[position + len("fraud-00003") :]
    assert len(tampered) == len(html)
    assert verify_pack(extract_pack(html)).intact
    assert not verify_pack(extract_pack(tampered)).intact


def test_pack_rights_are_the_audit_apis(site: Site) -> None:
    assert site.seeded is not None
    assert pack_of(site, site.seeded.promoted, "viewer").status_code == 403
    assert pack_of(site, site.seeded.promoted, "operator").status_code == 403
    scoped = site.get(
        f"/api/v1/rollouts/{site.seeded.analytics}/evidence-pack",
        token=SCOPED_AUDITOR,
    )
    assert scoped.status_code in (403, 404)
    assert "churn" not in scoped.text
    assert pack_of(site, "no-such-rollout").status_code == 404
    assert pack_of(site, "bad id!").status_code == 422
    assert (
        site.get(f"/api/v1/rollouts/{site.seeded.promoted}/evidence-pack", None).status_code == 401
    )


def test_the_pages_offer_the_pack_to_a_signed_in_browser(site: Site) -> None:
    assert site.seeded is not None
    rollout = site.seeded.promoted
    page = site.get(f"/ui/rollouts/{rollout}").text
    assert f'href="/ui/rollouts/{rollout}/evidence-pack"' in page
    download = site.get(f"/ui/rollouts/{rollout}/evidence-pack")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    assert verify_pack(extract_pack(download.text)).intact
    assert site.get(f"/ui/rollouts/{rollout}/evidence-pack", "viewer").status_code == 403
    other = site.get(f"/ui/rollouts/{site.seeded.analytics}/evidence-pack", token=SCOPED_AUDITOR)
    assert other.status_code == 404  # another tenant's rollout is as if it did not exist
    assert "churn" not in other.text


def rehash_from(engine: Engine, seq: int) -> None:
    """What an insider with the owner's rights would do to hide a rewrite from ``verify``:
    recompute every hash from ``seq`` on, and the head."""
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"))
        previous = conn.execute(
            text("SELECT hash FROM ledger_entries WHERE seq = :s"), {"s": seq - 1}
        ).scalar_one()
        rows = conn.execute(
            text("SELECT seq, payload FROM ledger_entries WHERE seq >= :s ORDER BY seq"), {"s": seq}
        ).all()
        for row_seq, payload in rows:
            new = entry_hash(previous, payload)
            conn.execute(
                text("UPDATE ledger_entries SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": previous, "h": new, "s": row_seq},
            )
            previous = new
        conn.execute(text("ALTER TABLE ledger_head DISABLE TRIGGER ledger_head_forward"))
        conn.execute(text("UPDATE ledger_head SET hash = :h"), {"h": previous})
        conn.execute(text("ALTER TABLE ledger_head ENABLE TRIGGER ledger_head_forward"))
        conn.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only"))


def test_cli_pack_verifies_offline_and_against_the_ledger_until_a_rewrite(
    tmp_path: Path, make_site: Any
) -> None:
    site: Site = make_site()
    assert site.seeded is not None
    engine = site.engine
    out = tmp_path / "pack.html"
    made = cli(engine, "ledger", "pack", site.seeded.promoted, "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert "<svg" in out.read_text()
    offline = cli(engine, "ledger", "verify", "--pack", str(out))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert "pack intact" in offline.stdout
    anchored = cli(engine, "ledger", "verify", "--pack", str(out), "--against-ledger")
    assert anchored.returncode == 0, anchored.stdout + anchored.stderr
    assert "the same hashes at every seq" in anchored.stdout

    approval = site.ledger.events(
        rollout_id=site.seeded.promoted, event_types=[EventType.APPROVAL_GIVEN]
    ).entries[0]
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"))
        conn.execute(
            text(
                "UPDATE ledger_entries SET actor = 'mallory', "
                'payload = replace(payload, \'"actor":"bob.approver"\', \'"actor":"mallory"\') '
                "WHERE seq = :seq"
            ),
            {"seq": approval.seq},
        )
        conn.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only"))
    rehash_from(engine, approval.seq)
    assert site.ledger.verify().intact  # the rewrite is invisible to the chain alone ...
    caught = cli(engine, "ledger", "verify", "--pack", str(out), "--against-ledger")
    assert caught.returncode == 1  # ... but not to the pack made before it
    assert f"#{approval.seq}: the ledger's hash differs from the pack's" in caught.stdout
    assert cli(engine, "ledger", "verify", "--pack", str(out)).returncode == 0  # still itself

    junk = tmp_path / "junk.html"
    junk.write_text("<html>nothing here</html>")
    refused = cli(engine, "ledger", "verify", "--pack", str(junk))
    assert refused.returncode == 2
    assert "not an evidence pack" in refused.stderr
    assert cli(engine, "ledger", "pack", "no-such-rollout").returncode == 2
