"""What the database keeps of each look (``look_store.py``) on PostgreSQL: read instead of the
payloads, it draws exactly the pictures the payloads draw; it is made only from a payload that
hashes to its entry, used only while the entry's (and a compact look's base's) hash is the one it
was made from, and an edited row is found by re-deriving it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from analyzer.api.ui import look_store
from analyzer.api.ui.look_store import RolloutRead, StoredLook, keep, read_rollout, summary_rows
from analyzer.api.ui.pictures import (
    LOOK_CHARTS,
    LOOKS,
    CachedLook,
    LookCache,
    LookChartsCache,
    RolloutPictures,
    pictures_of,
)
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.compact import compact_data
from analyzer.ledger.store import Ledger
from tests.integration.ui.conftest import SCOPED_AUDITOR, Site, text_of
from tests.unit.api.test_ui_charts import judged

pytestmark = pytest.mark.postgres

MODEL = ModelRef(namespace="risk-prod", name="scorer")
ROLLOUT = "r-store"
T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)


@dataclass
class Seeded:
    ledger: Ledger
    full: list[int]  # seqs of full looks
    compact: int  # seq of the compact look, whose base is full[0]


INSIDER = "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"


def event(kind: EventType, rollout: str = ROLLOUT, **data: Any) -> LedgerEvent:
    return LedgerEvent(type=kind, actor="engine", model=MODEL, rollout_id=rollout,
                       revision="c", data=data)  # fmt: skip


@pytest.fixture
def seeded(pg_engine: Engine) -> Seeded:
    ticks = iter(range(1000))
    ledger = Ledger(pg_engine, clock=lambda: T0 + timedelta(minutes=next(ticks)))
    first = {"step": 0, "weight": 10, "result": judged()}
    with pg_engine.begin() as conn:
        split = [{"revision": "b", "weight": 90}, {"revision": "c", "weight": 10}]
        ledger.append(conn, event(EventType.TRAFFIC_CHANGED, split=split, canary_weight=10))
        base = ledger.append(conn, event(EventType.ANALYSIS_RECORDED, **first))
        ledger.append(conn, event(EventType.ANALYSIS_RECORDED, "other", **first))  # a neighbour
    later = copy.deepcopy(first)
    later["result"]["metrics"][0]["statistic"]["e_value"] = 0.125  # new numbers, same verdicts
    compact = compact_data(later, base_seq=base.seq, base_result=first["result"])
    assert compact is not None  # not vacuous: the second look is stored compactly
    second = copy.deepcopy(first)
    second["result"]["verdict"] = "inconclusive"
    with pg_engine.begin() as conn:
        small = ledger.append(conn, event(EventType.ANALYSIS_RECORDED, **compact))
        full = ledger.append(conn, event(EventType.ANALYSIS_RECORDED, **second))
    return Seeded(ledger=ledger, full=[base.seq, full.seq], compact=small.seq)


def draw(ledger: Ledger, read: RolloutRead) -> RolloutPictures:
    def full_data(entry: EntryRecord) -> dict[str, Any]:
        found = ledger.entry(entry.seq)
        assert found is not None
        return found.data()

    return pictures_of(read.entries, start=T0, end=T0 + timedelta(hours=1), stored=read.stored,
                       bases=read.bases, full_data=full_data, looks_cache=LookCache(),
                       charts_cache=LookChartsCache())  # fmt: skip


def kept_after_drawing(ledger: Ledger) -> tuple[RolloutPictures, list[dict[str, Any]]]:
    """Read, draw and keep, as the rollout page does."""
    read = read_rollout(ledger.engine, MODEL, ROLLOUT, 100)
    pictures = draw(ledger, read)

    def made(entry: EntryRecord) -> StoredLook | None:
        line = pictures.lines.get(entry.seq)
        return (
            StoredLook(parts=line.parts, line=line.summary)
            if isinstance(line, CachedLook)
            else None
        )

    rows = summary_rows(read, made)
    keep(ledger.engine, rows)
    return pictures, rows


def test_kept_summaries_replace_the_payloads_and_draw_the_same_pictures(seeded: Seeded) -> None:
    fresh, rows = kept_after_drawing(seeded.ledger)
    assert {r["seq"] for r in rows} == {*seeded.full, seeded.compact}
    assert fresh.looks == 3
    read = read_rollout(seeded.ledger.engine, MODEL, ROLLOUT, 100)
    assert set(read.stored) == {*seeded.full, seeded.compact}
    looks = [e for e in read.entries if e.event_type == EventType.ANALYSIS_RECORDED.value]
    assert [e.payload for e in looks] == ["", "", ""]  # no look's payload was read
    assert all(e.payload for e in read.entries if e not in looks)  # the others' were
    again = draw(seeded.ledger, read)
    assert again.evidence == fresh.evidence
    assert again.score == fresh.score
    assert again.sequences == fresh.sequences
    assert again.traffic == fresh.traffic
    assert again.last_analysis == fresh.last_analysis  # the last look read whole, apart
    assert again.last_analysis is not None
    assert {s: again.summary(s) for s in again.lines} == {s: fresh.summary(s) for s in fresh.lines}
    name = "error_rate"
    assert again.evidence is not None
    compact_parts = look_store.stored_look(read.stored[seeded.compact]).parts
    assert compact_parts is not None
    assert compact_parts.metrics[name].e_value == 0.125  # the expansion's numbers, not the base's


def test_a_payload_that_does_not_hash_is_never_kept(seeded: Seeded) -> None:
    engine = seeded.ledger.engine
    with engine.begin() as conn:  # rewritten in place: the stored hash no longer fits
        conn.execute(text(INSIDER))  # as the table's owner could
        conn.execute(text("UPDATE ledger_entries SET payload = replace(payload, "
                          "'\"verdict\":\"inconclusive\"', '\"verdict\":\"pass\"') WHERE seq = :s"),
                     {"s": seeded.full[1]})  # fmt: skip
    pictures, rows = kept_after_drawing(seeded.ledger)
    assert seeded.full[1] not in {r["seq"] for r in rows}
    assert pictures.summary(seeded.full[1]) is not None  # still shown, as the row says
    read = read_rollout(engine, MODEL, ROLLOUT, 100)
    assert seeded.full[1] not in read.stored  # read from its payload on every page
    assert read.stored.keys() == {seeded.full[0], seeded.compact}


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE ledger_entries SET hash = repeat('a', 64) WHERE seq = :look",
        "UPDATE ledger_entries SET hash = repeat('b', 64) WHERE seq = :base",
        "UPDATE ui_look_summaries SET version = version + 1 WHERE seq = :look",
    ],
    ids=["entry rehashed", "base rehashed", "made by other code"],
)
def test_a_summary_is_used_only_while_its_hashes_hold(seeded: Seeded, change: str) -> None:
    kept_after_drawing(seeded.ledger)
    engine = seeded.ledger.engine
    with engine.begin() as conn:
        conn.execute(text(INSIDER))
        conn.execute(text(change), {"look": seeded.compact, "base": seeded.full[0]})
    read = read_rollout(engine, MODEL, ROLLOUT, 100)
    assert seeded.compact not in read.stored
    compact = next(e for e in read.entries if e.seq == seeded.compact)
    assert compact.payload  # read from its payload, and expanded from its base
    assert compact.expanded is not None


def test_an_edited_summary_is_found_by_re_deriving_it(seeded: Seeded) -> None:
    kept_after_drawing(seeded.ledger)
    engine = seeded.ledger.engine
    assert look_store.check_stored(engine) == []
    with engine.begin() as conn:
        edit = {"was": '"e_value":0.125', "now": '"e_value":9.0', "s": seeded.compact}
        conn.execute(
            text(
                "UPDATE ui_look_summaries SET summary = replace(summary, :was, :now) WHERE seq = :s"
            ),
            edit,
        )
    assert look_store.check_stored(engine) == [
        f"look summary #{seeded.compact}: differs from its entry"
    ]


def test_the_page_drawn_from_kept_summaries_is_the_page_drawn_from_payloads(
    make_site: Callable[..., Site],
) -> None:
    """Through the pages, on a rollout the real engine judged: the second page, drawn after
    the process forgot everything, reads the kept summaries and is byte for byte the first;
    the verify page checks the summaries."""
    site = make_site()
    assert site.seeded is not None
    path = f"/ui/rollouts/{site.seeded.failed_canary}"
    LOOKS.clear()
    LOOK_CHARTS.clear()
    first = site.get(path)
    assert first.status_code == 200
    with site.engine.connect() as conn:
        kept = conn.execute(text("SELECT count(*) FROM ui_look_summaries")).scalar_one()
    assert kept > 0
    LOOKS.clear()
    LOOK_CHARTS.clear()
    again = site.get(path)  # from the kept summaries; the looks' charts kept too
    assert again.text == first.text
    with site.engine.connect() as conn:
        charts = conn.execute(text("SELECT count(*) FROM ui_look_charts")).scalar_one()
    assert charts == 1
    LOOKS.clear()
    LOOK_CHARTS.clear()
    assert site.get(path).text == first.text  # from the kept summaries and charts
    assert "Every look summary the rollout pages keep" in site.get("/ui/verify").text
    with site.engine.begin() as conn:  # an insider fakes the score chart's table
        conn.execute(text("UPDATE ui_look_charts SET charts = replace(charts, 'n/a', '99')"))
    broken = text_of(site.get("/ui/verify").text)
    assert "kept look summaries or charts differ" in broken
    assert f"kept charts of rollout {site.seeded.failed_canary}: differ from its looks" in broken
    scoped = text_of(site.get("/ui/verify", token=SCOPED_AUDITOR).text)
    assert "Kept look summaries or charts differ" in scoped
    assert "kept charts of rollout" not in scoped  # which ones spans every tenant
    with site.engine.begin() as conn:
        conn.execute(text("DELETE FROM ui_look_charts"))
        conn.execute(text("UPDATE ui_look_summaries SET summary = replace(summary, "
                          "'fail', 'pass')"))  # fmt: skip
    broken = text_of(site.get("/ui/verify").text)
    assert "kept look summaries or charts differ" in broken
    assert "differs from its entry" in broken


def test_a_refused_write_costs_the_next_page_its_head_start_not_this_page(
    make_site: Callable[..., Site],
) -> None:
    site = make_site()
    assert site.seeded is not None
    with site.engine.begin() as conn:  # as a read-only replica, or a role without the right
        conn.execute(text(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'read-only' USING ERRCODE = 'insufficient_privilege'; END $$;"
            "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON ui_look_summaries "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        ))  # fmt: skip
    LOOKS.clear()
    LOOK_CHARTS.clear()
    path = f"/ui/rollouts/{site.seeded.failed_canary}"
    first = site.get(path)
    assert first.status_code == 200
    assert "Evidence over the looks" in first.text
    with site.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ui_look_summaries")).scalar_one() == 0
    LOOKS.clear()
    LOOK_CHARTS.clear()
    assert site.get(path).text == first.text  # drawn from the payloads again


def test_a_row_rewritten_after_its_summary_was_kept_is_drawn_as_its_hash_says(
    seeded: Seeded,
) -> None:
    fresh, _ = kept_after_drawing(seeded.ledger)
    engine = seeded.ledger.engine
    with engine.begin() as conn:  # the hash left as it was: the chain no longer verifies there
        conn.execute(text(INSIDER))
        conn.execute(text("UPDATE ledger_entries SET payload = replace(payload, "
                          "'\"verdict\":\"inconclusive\"', '\"verdict\":\"pass\"') WHERE seq = :s"),
                     {"s": seeded.full[1]})  # fmt: skip
    read = read_rollout(engine, MODEL, ROLLOUT, 100)
    assert seeded.full[1] in read.stored  # the summary proven against the unchanged hash
    again = draw(seeded.ledger, read)
    assert again.score == fresh.score  # the look is still drawn inconclusive
    assert again.summary(seeded.full[1]) == fresh.summary(seeded.full[1])
    assert seeded.ledger.verify().first_bad_seq == seeded.full[1]  # which verify reports
