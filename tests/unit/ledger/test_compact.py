"""Compact looks (ledger/compact.py): the delta gives back the result exactly, the compact entry
keeps the decision in clear, and expanding needs the base and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.ledger.chain import GENESIS_HASH, EntryRecord, build_entry, canonical_json
from analyzer.ledger.compact import (
    apply_changes,
    base_of,
    changes,
    compact_data,
    expand_all,
    expand_data,
    shape,
    verdicts_of,
)

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=30,
)


def same_shape(value: Any) -> st.SearchStrategy[Any]:
    """Values of ``value``'s shape with any leaves (any JSON scalars)."""
    if isinstance(value, dict):
        return st.fixed_dictionaries({k: same_shape(v) for k, v in value.items()})
    if isinstance(value, list):
        return st.tuples(*(same_shape(v) for v in value)).map(list)
    return scalars


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="#=0123456789.ab ", max_size=8)
)


@given(json_values.flatmap(lambda old: st.tuples(st.just(old), same_shape(old))))
def test_the_packed_changes_give_back_the_new_value_as_stored(pair: tuple[Any, Any]) -> None:
    old, new = pair
    packed = changes(old, new)
    assert packed is not None
    assert canonical_json(apply_changes(old, packed)) == canonical_json(new)


@given(json_values, json_values)
def test_values_of_another_shape_are_not_packed(old: Any, new: Any) -> None:
    packed = changes(old, new)
    if shape(old) != shape(new):
        assert packed is None
    else:
        assert packed is not None
        assert canonical_json(apply_changes(old, packed)) == canonical_json(new)


def test_types_the_ledger_tells_apart_are_never_taken_for_equal() -> None:
    # 1 == 1.0 == True in Python, but the canonical JSON of each differs
    for old, new in (({"a": 1}, {"a": 1.0}), ([1], [True]), ([0.0], [-0.0]), ([None], [0])):
        packed = changes(old, new)
        assert packed is not None
        assert canonical_json(apply_changes(old, packed)) == canonical_json(new)
    assert changes({"a": [1, 2]}, {"a": [1, 2]}) == {"at": "AA=="}


def test_a_reason_whose_numbers_moved_is_stored_as_its_digits() -> None:
    old = {"reason": "canary p50 0.07983 vs baseline 0.08003; harm beyond +10%"}
    new = {"reason": "canary p50 0.0812 vs baseline 0.07991; harm beyond +10%"}
    packed = changes(old, new)
    assert packed is not None
    assert packed["s"] == ["#,,0812,,07991,"]  # runs that did not move are left empty
    assert apply_changes(old, packed) == new


def result(e_value: float, n: int, verdict: str = "inconclusive") -> dict[str, Any]:
    metric = {
        "name": "latency", "kind": "histogram", "verdict": verdict,
        "classification": "pass", "reason": "not enough evidence yet: " + "x" * 400,
        "estimate": {"p99": {"baseline": 0.0121, "canary": 0.0124, "ci": [0.9, 1.2]}},
        "statistic": {"e_value": e_value, "threshold": 40.0, "method": "mixture e-process"},
        "n": {"baseline": 9 * n, "canary": n}, "critical": True, "weight": 1.0, "group": None,
    }  # fmt: skip
    return {"verdict": verdict, "score": None, "reason": "r" * 200, "alpha": 0.0125,
            "warnings": [], "metrics": [metric, dict(metric, name="errors")]}  # fmt: skip


def test_a_repeated_look_is_written_as_its_counts_and_decision_over_the_base() -> None:
    base, new = result(1.3, 1000), result(1.7, 1100)
    data = {"step": 0, "weight": 10, "result": new}
    compact = compact_data(data, base_seq=7, base_result=base)
    assert compact is not None
    assert "result" not in compact
    assert compact["repeats"]["base"] == 7
    assert base_of(compact) == 7
    assert compact["repeats"]["verdict"] == "inconclusive"  # the decision stays in clear
    assert len(canonical_json(compact)) < len(canonical_json(data)) / 4
    assert expand_data(compact, {"step": 0, "weight": 10, "result": base}) == data


def test_a_delta_nearly_as_large_as_the_result_is_not_worth_writing() -> None:
    base = result(1.3, 1000)
    other = result(2.0, 5)
    other["reason"] = "s" * 200
    for metric in other["metrics"]:
        metric["reason"] = "y" * 400
    assert compact_data({"result": other}, base_seq=1, base_result=base) is None


def test_verdicts_are_the_overall_and_each_metrics() -> None:
    assert verdicts_of(result(1, 1)) == verdicts_of(result(9, 9))
    changed = result(1, 1)
    changed["metrics"][1]["verdict"] = "fail"
    assert verdicts_of(changed) != verdicts_of(result(1, 1))


def entry(prev: EntryRecord | None, data: dict[str, Any], rollout: str = "r-1") -> EntryRecord:
    event = LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor="t", rollout_id=rollout, data=data)
    return build_entry(
        prev_seq=prev.seq if prev else 0,
        prev_hash=prev.hash if prev else GENESIS_HASH,
        event=event,
        recorded_at=T0,
    )


def test_expanding_reads_bases_it_is_not_given_in_one_call_and_leaves_the_stored_data() -> None:
    full = entry(None, {"step": 0, "result": result(1.3, 1000)})
    later = {"step": 0, "result": result(1.5, 1200)}
    compact = compact_data(later, base_seq=1, base_result=result(1.3, 1000))
    assert compact is not None
    second = entry(full, compact)
    calls: list[list[int]] = []

    def fetch(seqs: Any) -> list[EntryRecord]:
        calls.append(list(seqs))
        return [full]

    (expanded,) = expand_all([second], fetch)
    assert calls == [[1]]
    assert expanded.data() == later
    assert expanded.stored_data() == compact  # what is hashed is not touched
    assert expanded.payload == second.payload


def test_a_base_of_another_rollout_or_missing_leaves_the_compact_look_as_stored() -> None:
    full = entry(None, {"step": 0, "result": result(1.3, 1000)}, rollout="r-other")
    compact = compact_data(
        {"step": 0, "result": result(1.5, 1200)}, base_seq=1, base_result=result(1.3, 1000)
    )
    assert compact is not None
    second = entry(full, compact)
    assert expand_all([full, second], lambda _: [])[1].data() == compact
    assert expand_all([second], lambda _: [])[0].data() == compact


def test_changes_written_before_the_number_codec_still_expand() -> None:
    # as the previous encoding wrote them: floats as float64 bits (base64), integers in clear
    old = {"n": {"baseline": 9000, "canary": 1000}, "e_value": 1.3, "ci": [0.9, 1.2],
           "reason": "p50 0.0121 vs 0.0124", "flag": None}  # fmt: skip
    packed = {"at": "dQ==", "xt": "CA==", "f": "H4XrUbge7T8zMzMzMzP7Pw==", "i": [9900, 1100],
              "s": ["#,,0125,,"], "x": [0]}  # fmt: skip
    assert apply_changes(old, packed) == {
        "n": {"baseline": 9900, "canary": 1100}, "e_value": 1.7, "ci": [0.91, 1.2],
        "reason": "p50 0.0125 vs 0.0124", "flag": 0,
    }  # fmt: skip
    assert set(changes(old, apply_changes(old, packed)) or {}) == {"at", "xt", "n", "s", "x"}
