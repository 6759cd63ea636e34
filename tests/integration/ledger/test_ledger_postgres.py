"""The ledger on a real PostgreSQL: append-only triggers, queries, verify and export via the CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.ledger.store import Ledger
from tests.integration.ledger.helpers import MODEL, T0, SteppingClock, run_cli, traffic

pytestmark = pytest.mark.postgres


def _seed(engine: Engine) -> Ledger:
    ledger = Ledger(engine, clock=SteppingClock(T0, timedelta(minutes=1)))
    ledger.record(
        LedgerEvent(
            type=EventType.REVISION_REGISTERED, actor="ci", model=MODEL, revision="credit-00007",
            data={"artifact_uri": "s3://models/credit/7", "digest": "sha256:aa"},
        )
    )  # fmt: skip
    ledger.record(
        LedgerEvent(
            type=EventType.REVISION_REGISTERED, actor="ci", model=MODEL, revision="credit-00008",
            data={"artifact_uri": "s3://models/credit/8", "digest": "sha256:bb"},
        )
    )  # fmt: skip
    ledger.record(traffic({"credit-00007": 100}, rollout="r0"))
    ledger.record(
        LedgerEvent(
            type=EventType.APPROVAL_GIVEN, actor="risk-officer", model=MODEL, rollout_id="r1",
            data={"change_request": "CHG0031337"},
        )
    )  # fmt: skip
    ledger.record(traffic({"credit-00007": 90, "credit-00008": 10}, step=0))
    ledger.record(traffic({"credit-00007": 75, "credit-00008": 25}, step=1))
    return ledger


def test_migrate_then_raw_update_and_delete_are_refused(empty_pg_url: str) -> None:
    result = run_cli("migrate", database_url=empty_pg_url)
    assert result.returncode == 0, result.stderr
    from analyzer.db import head_revision, make_engine

    assert f"database at revision {head_revision()}" in result.stdout

    engine = make_engine(empty_pg_url)
    _seed(engine)
    for statement in (
        "UPDATE ledger_entries SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM ledger_entries WHERE seq = 1",
        "TRUNCATE ledger_entries",
        "UPDATE ledger_head SET seq = 0",
    ):
        with (
            pytest.raises(DBAPIError, match=r"append-only|only moves forward"),
            engine.begin() as c,
        ):
            c.execute(text(statement))
    assert Ledger(engine).verify().entries == 6
    engine.dispose()


def test_unmigrated_database_is_refused_with_what_to_run(empty_pg_url: str) -> None:
    result = run_cli("ledger", "verify", database_url=empty_pg_url)
    assert result.returncode == 2
    assert "run `canary-analyzer migrate`" in result.stderr


def test_serving_at_answers_from_the_latest_split(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    # entries were recorded at T0 + 0..5 minutes; the 10/90 split at T0+4m, 25/75 at T0+5m
    before = ledger.serving_at(MODEL, T0 + timedelta(minutes=1))
    assert before.revisions == ()
    stable_only = ledger.serving_at(MODEL, T0 + timedelta(minutes=3, seconds=30))
    assert [(r.revision, r.weight) for r in stable_only.revisions] == [("credit-00007", 100.0)]
    during = ledger.serving_at(MODEL, T0 + timedelta(minutes=4, seconds=30))
    assert {r.revision: r.weight for r in during.revisions} == {
        "credit-00007": 90.0,
        "credit-00008": 10.0,
    }
    assert {r.revision: r.artifact_uri for r in during.revisions}["credit-00008"] == (
        "s3://models/credit/8"
    )
    assert [a.actor for a in during.approvals] == ["risk-officer"]
    later = ledger.serving_at(MODEL, T0 + timedelta(hours=5))
    assert {r.revision: r.weight for r in later.revisions}["credit-00008"] == 25.0


def test_serving_at_uses_an_index_not_a_scan(pg_engine: Engine) -> None:
    ledger = Ledger(pg_engine, clock=SteppingClock(T0, timedelta(milliseconds=10)))
    with pg_engine.begin() as conn:
        for batch in range(20):
            ledger.append_many(
                conn,
                [
                    traffic({"a": 100 - i % 100, "b": i % 100}, rollout=f"r{batch}")
                    for i in range(1000)
                ],
            )
        conn.execute(text("ANALYZE ledger_entries"))
    plan = _explain_serving(pg_engine)
    assert "Index" in plan, plan
    assert "Seq Scan" not in plan, plan


def _explain_serving(engine: Engine) -> str:
    query = text(
        "EXPLAIN SELECT * FROM ledger_entries WHERE model = :m AND event_type = 'traffic_changed' "
        "AND recorded_at <= :t ORDER BY recorded_at DESC, seq DESC LIMIT 1"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"m": str(MODEL), "t": T0 + timedelta(seconds=100)}).all()
    return "\n".join(r[0] for r in rows)


def test_events_are_paged_with_a_cursor(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    seen, cursor = [], None
    while True:
        page = ledger.events(model=MODEL, cursor=cursor, limit=4)
        seen.extend(e.seq for e in page.entries)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [1, 2, 3, 4, 5, 6]
    window = ledger.events(
        model=MODEL, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)
    )
    assert [e.seq for e in window.entries] == [3, 4]
    only = ledger.events(model=MODEL, event_types=[EventType.APPROVAL_GIVEN])
    assert [e.actor for e in only.entries] == ["risk-officer"]


def _disable_guard(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"))
        conn.execute(text(statement))
        conn.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only"))


def test_verify_cli_passes_then_names_an_altered_row(pg_engine: Engine, pg_url: str) -> None:
    _seed(pg_engine)
    ok = run_cli("ledger", "verify", database_url=pg_url)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ledger intact: 6 entries")
    _disable_guard(
        pg_engine,
        "UPDATE ledger_entries SET payload = replace(payload, 'CHG0031337', 'CHG0000001') "
        "WHERE seq = 4",
    )
    broken = run_cli("ledger", "verify", database_url=pg_url)
    assert broken.returncode == 1
    assert "seq 4" in broken.stdout


def test_verify_cli_names_an_entry_edited_and_rehashed_in_sql(
    pg_engine: Engine, pg_url: str
) -> None:
    """Before issue 13 this was reported at seq 5, whose prev_hash no longer matched."""
    _seed(pg_engine)
    edited = "replace(payload, 'CHG0031337', 'CHG0000001')"
    _disable_guard(
        pg_engine,
        f"UPDATE ledger_entries SET payload = {edited}, hash = encode(sha256("
        f"decode(prev_hash, 'hex') || convert_to({edited}, 'UTF8')), 'hex') WHERE seq = 4",
    )
    broken = run_cli("ledger", "verify", database_url=pg_url)
    assert broken.returncode == 1
    assert broken.stdout.startswith("ledger BROKEN at seq 4: entry 4 was changed and re-hashed")
    assert "entry 5, which was chained to" in broken.stdout


def test_verify_cli_names_a_removed_row(pg_engine: Engine, pg_url: str) -> None:
    _seed(pg_engine)
    _disable_guard(pg_engine, "DELETE FROM ledger_entries WHERE seq = 2")
    broken = run_cli("ledger", "verify", database_url=pg_url)
    assert broken.returncode == 1
    assert "BROKEN at seq 2" in broken.stdout


def test_export_json_and_csv_filtered(pg_engine: Engine, pg_url: str) -> None:
    _seed(pg_engine)
    as_json = run_cli(
        "ledger", "export", "--format", "json", "--model", str(MODEL),
        "--since", (T0 + timedelta(minutes=4)).isoformat(), database_url=pg_url,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    entries = json.loads(as_json.stdout)
    assert [e["seq"] for e in entries] == [5, 6]
    assert entries[0]["data"]["split"][1] == {"revision": "credit-00008", "weight": 10}
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    as_csv = run_cli("ledger", "export", "--format", "csv", database_url=pg_url)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 6
    assert rows[3]["actor"] == "risk-officer"
    bad = run_cli("ledger", "export", "--since", "yesterday", database_url=pg_url)
    assert bad.returncode == 2
    assert "--since" in bad.stderr


class _AppendsDuringVerify(Ledger):
    """A ledger whose ``head`` read is followed by another writer's append, the way a live
    service appends while the daily verification (or GET /audit/verify) runs."""

    appends_left = 1

    def head(self) -> tuple[int, str]:
        head = super().head()
        if self.appends_left:
            self.appends_left -= 1
            self.record(traffic({"credit-00007": 10, "credit-00008": 90}))
        return head


def test_appends_while_verifying_are_not_reported_as_a_broken_chain(pg_engine: Engine) -> None:
    _seed(pg_engine)
    ledger = _AppendsDuringVerify(pg_engine, clock=SteppingClock(T0, timedelta(minutes=1)))
    report = ledger.verify()
    assert report.intact, report.problem
    assert (report.entries, report.head_seq) == (6, 6)  # the chain as of the head it read
    assert Ledger(pg_engine).verify().entries == 7  # the next run covers the new entry


def test_an_entry_beyond_the_head_that_no_append_wrote_is_reported(pg_engine: Engine) -> None:
    _seed(pg_engine)
    # A row inserted behind the service's back (the append-only trigger guards UPDATE/DELETE;
    # only an append moves the head)
    with pg_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO ledger_entries (seq, recorded_at, event_type, schema_version, actor, "
            "model, revision, rollout_id, payload, prev_hash, hash) SELECT seq + 1, recorded_at, "
            "event_type, schema_version, 'mallory', model, revision, rollout_id, payload, hash, "
            "md5(hash) || md5(payload) FROM ledger_entries WHERE seq = 6"
        ))  # fmt: skip
    report = Ledger(pg_engine).verify()
    assert not report.intact
    assert report.first_bad_seq == 7
    assert "not written by an append" in (report.problem or "")
