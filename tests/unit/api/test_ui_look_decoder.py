"""The fast look decoder gives exactly what the generic readers give on the whole entry. Pure."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from analyzer.api.ui.charts import look_parts
from analyzer.api.ui.look_decoder import decode_look, look_data
from analyzer.api.ui.pictures import LookCache, LookChartsCache, pictures_of
from analyzer.api.ui.summaries import summary_of
from analyzer.ledger.chain import EntryRecord, canonical_json
from analyzer.ledger.compact import compact_data, expand_all
from tests.unit.api.test_ui_charts import judged

KIND = "analysis_recorded"


def payload(data: Any) -> str:
    return canonical_json({"seq": 9, "event_type": KIND, "data": data})


def both_ways(data: Any) -> None:
    """The subset read by msgspec gives the same look and summary as the whole data."""
    small = look_data(payload(data))
    assert small is not None
    assert look_parts(small) == look_parts(data)
    assert summary_of(KIND, small) == summary_of(KIND, data)
    decoded = decode_look(payload(data))
    assert decoded is not None
    assert decoded.parts == look_parts(data)  # read off the structs, without dictionaries


def engine_look() -> dict[str, Any]:
    return {"step": 1, "weight": 10, "result": judged()}


def test_a_real_judge_result_decodes_to_the_same_look_and_summary() -> None:
    data = engine_look()
    both_ways(data)
    parts = look_parts(data)
    assert parts is not None
    assert len(parts.metrics) == 5


def test_the_subset_holds_only_what_the_readers_read() -> None:
    small = look_data(payload(engine_look()))
    assert small is not None
    errors = next(m for m in small["result"]["metrics"] if m["name"] == "error_rate")
    assert set(errors) <= {"name", "kind", "verdict", "reason", "statistic", "estimate"}
    assert set(errors["statistic"]) <= {"e_value", "threshold", "tolerance"}
    assert set(errors["estimate"]) == {"intervals"}
    assert len(json.dumps(small)) < len(payload(engine_look())) / 2


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["result"].pop("score"),  # absent stays absent (score None, not "None")
        lambda d: d["result"]["metrics"][0].pop("name"),  # absent name: "" as before
        lambda d: d["result"]["metrics"][0].__setitem__("statistic", None),
        lambda d: d["result"]["metrics"][0].__setitem__("estimate", None),
        lambda d: d["result"]["metrics"][0]["statistic"].__setitem__("e_value", "inf"),
        lambda d: d["result"].__setitem__("metrics", None),
        lambda d: d["result"].__setitem__("score", True),
        lambda d: d.__setitem__("result", None),  # no result: the top level is read
        lambda d: d.update(result=None, verdict="inconclusive", score=0, cached=True),
    ],
)
def test_odd_but_well_formed_entries_read_the_same(change: Any) -> None:
    data = copy.deepcopy(engine_look())
    change(data)
    both_ways(data)


@pytest.mark.parametrize(
    "data",
    [
        {"result": "pass"},  # result not an object
        {"result": {"verdict": "pass", "metrics": ["latency"]}},  # a metric not an object
        {"result": {"verdict": "pass", "metrics": [{"name": "x", "statistic": [1, 2]}]}},
        {"result": {"verdict": "pass", "metrics": {"name": "x"}}},
    ],
)
def test_other_shapes_are_left_to_the_generic_readers(data: dict[str, Any]) -> None:
    assert look_data(payload(data)) is None
    entry = EntryRecord(
        seq=3, recorded_at=datetime(2026, 3, 4, tzinfo=UTC), event_type=KIND, schema_version=1,
        actor="a",
        model="ns/m", rollout_id="r", revision=None, payload=payload(data),
        prev_hash="0" * 64, hash="1" * 64,
    )  # fmt: skip
    cached = LookCache().get(entry)  # the cache falls back to the whole entry: same answer
    assert cached.parts == look_parts(data)
    assert cached.summary == summary_of(KIND, data)


def test_not_json_is_left_to_the_generic_reader() -> None:
    assert look_data("{not json") is None


def look_entry(seq: int, data: dict[str, Any]) -> EntryRecord:
    return EntryRecord(
        seq=seq, recorded_at=datetime(2026, 3, 4, 2, seq, tzinfo=UTC), event_type=KIND,
        schema_version=1, actor="e", model="ns/m", rollout_id="r", revision="c",
        payload=canonical_json({"seq": seq, "type": KIND, "data": data}),
        prev_hash="0" * 64, hash=f"{seq:064d}",
    )  # fmt: skip


def test_compact_looks_are_read_as_the_ledger_expanded_them() -> None:
    """A look that repeats its base's verdicts is stored compactly (ledger/compact.py): the
    pictures draw it from its expansion, with the numbers it really had, and a rewritten base
    is expanded afresh rather than read from the cache."""
    first = engine_look()
    later = copy.deepcopy(first)
    later["result"]["metrics"][0]["statistic"]["e_value"] = 0.125  # new numbers, same verdicts
    compact = compact_data(later, base_seq=1, base_result=first["result"])
    assert compact is not None  # not vacuous: the second look is stored compactly
    assert look_data(payload(compact)) is None  # left to the generic reader (the expansion)
    stored = [look_entry(1, first), look_entry(2, compact)]
    entries = expand_all(stored, lambda _: ())
    assert entries[1].expanded is not None
    cache = LookCache()
    pictures = pictures_of(entries, start=entries[0].recorded_at, end=entries[1].recorded_at,
                           looks_cache=cache, charts_cache=LookChartsCache())  # fmt: skip
    assert pictures.looks == 2  # the compact look is drawn, not dropped
    name = first["result"]["metrics"][0]["name"]
    cached = cache.get(entries[1], entries[0])
    assert cached.parts is not None
    assert cached.parts.metrics[name].e_value == 0.125
    assert cached.parts == look_parts(later)
    rewritten = copy.deepcopy(first)
    rewritten["result"]["metrics"][0]["statistic"]["threshold"] = 1.0
    again = expand_all([look_entry(1, rewritten), stored[1]], lambda _: ())
    fresh = cache.get(again[1], again[0])
    assert fresh is not cached
    assert fresh.parts is not None
    assert fresh.parts.metrics[name].threshold == 1.0
