"""A base cut once from its canonical text (ledger/compact_base.py) packs exactly what
``compact.changes`` packs from the decoded values, and refuses the same shapes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from analyzer.ledger.chain import canonical_json
from analyzer.ledger.compact import changes, compact_data
from analyzer.ledger.compact_base import CompactBase
from tests.unit.ledger.test_compact import json_values, result, same_shape

# Texts a canonical JSON writes with escapes, quotes, colons and brackets inside strings
tricky_text = st.text(alphabet='"\\:,{}[]\n\x00\u2028é#=0123456789.e-ab ', max_size=8)
tricky_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=30,
)  # fmt: skip


def _as_stored(value: Any) -> Any:
    return json.loads(canonical_json(value))  # what the ledger gives back: tuples are lists


def _same_packing(old: Any, new: Any) -> None:
    # a base is a look's result: a mapping
    expected = changes(_as_stored({"r": old}), _as_stored({"r": new}))
    got = CompactBase.of(1, {"r": old}).changes(canonical_json({"r": new}))
    assert got == expected
    if got is not None:
        assert canonical_json(got) == canonical_json(expected)


@given(json_values.flatmap(lambda old: st.tuples(st.just(old), same_shape(old))))
def test_a_base_cut_from_its_text_packs_the_same_changes(pair: tuple[Any, Any]) -> None:
    _same_packing(*pair)


@given(tricky_values, tricky_values)
def test_a_base_cut_from_its_text_refuses_the_same_shapes(old: Any, new: Any) -> None:
    _same_packing(old, new)


@given(tricky_values.flatmap(lambda old: st.tuples(st.just(old), same_shape(old))))
def test_texts_with_escapes_and_punctuation_inside_are_leaves(pair: tuple[Any, Any]) -> None:
    _same_packing(*pair)


def test_a_look_compacted_over_the_cut_base_is_byte_for_byte_the_same_entry() -> None:
    base, new = result(1.3, 1000), result(1.7, 1100)
    new["metrics"][0]["reason"] = "moved: 0.0812 vs 0.07991"
    data = {"step": 0, "weight": 10, "result": new}
    expected = compact_data(data, base_seq=7, base_result=base)
    got = CompactBase.of(7, base).compact(data)
    assert expected is not None
    assert got is not None
    assert canonical_json(got) == canonical_json(expected)
    assert got["repeats"]["base"] == 7
    # the texts a caller already has (the service's row text) give the same entry
    given_texts = CompactBase.of(7, base, stored=canonical_json(base))
    assert given_texts == CompactBase.of(7, base)
    assert given_texts.compact(data, stored=canonical_json(new)) == got


def test_a_result_of_another_shape_or_too_large_a_delta_is_written_whole() -> None:
    base = CompactBase.of(3, result(1.3, 1000))
    fewer = result(1.3, 1000)
    fewer["metrics"] = fewer["metrics"][:1]
    assert base.compact({"result": fewer}) is None
    other = result(2.0, 5)
    other["reason"] = "s" * 200
    for metric in other["metrics"]:
        metric["reason"] = "y" * 400
    assert base.compact({"result": other}) is None
    assert compact_data({"result": other}, base_seq=3, base_result=result(1.3, 1000)) is None
    assert base.compact({"no result": 1}) is None


@given(
    json_values.flatmap(
        lambda old: st.tuples(st.just(old), st.lists(same_shape(old), min_size=2, max_size=4))
    )
)
def test_a_base_compacting_look_after_look_packs_each_as_the_reference(
    case: tuple[Any, list[Any]],
) -> None:
    # the old values' parts a base keeps from one look are the ones the next look needs
    old, news = case
    base = CompactBase.of(1, {"r": old})
    for new in news + news[::-1]:
        expected = changes(_as_stored({"r": old}), _as_stored({"r": new}))
        got = base.changes(canonical_json({"r": new}))
        assert got == expected
        if got is not None:
            assert canonical_json(got) == canonical_json(expected)


def test_a_base_kept_across_looks_writes_each_look_as_compact_data_does() -> None:
    base_result = result(1.3, 1000)
    base = CompactBase.of(7, base_result)
    for k in range(1, 6):
        new = result(1.3 + k / 7, 1000 + 113 * k)
        new["metrics"][0]["statistic"]["threshold"] = -0.0 if k % 2 else 40.0 + k
        data = {"step": 0, "weight": 10, "result": new}
        expected = compact_data(data, base_seq=7, base_result=base_result)
        got = base.compact(data)
        assert expected is not None
        assert canonical_json(got) == canonical_json(expected)
