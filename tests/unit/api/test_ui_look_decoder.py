"""The fast look decoder gives exactly what the generic readers give on the whole entry. Pure."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from analyzer.api.ui.charts import look_parts
from analyzer.api.ui.look_decoder import decode_look, look_data
from analyzer.api.ui.pictures import LookCache
from analyzer.api.ui.summaries import summary_of
from analyzer.ledger.chain import EntryRecord, canonical_json
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
