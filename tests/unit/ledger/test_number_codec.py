"""The number codec of compact looks (ledger/number_codec.py): exact for every int and float,
and shorter than float64 bits for the numbers a judge result holds."""

from __future__ import annotations

import base64
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.ledger.number_codec import decimal_of, pack_numbers, unpack_numbers

floats = st.floats(allow_nan=False, allow_infinity=False)
# rounded like the judge's e-values, z and intervals
rounded = st.builds(round, st.floats(-1e3, 1e3), st.integers(0, 8))
int_pairs = st.tuples(st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70))
float_pairs = st.tuples(floats | rounded, floats | rounded)


def same(a: float | int, b: float | int) -> bool:
    """Equal as the ledger stores them: same type and, for floats, the same bits."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


@given(st.lists(int_pairs | float_pairs, max_size=40))
def test_every_number_comes_back_exactly(pairs: list[tuple[float, float]]) -> None:
    text = pack_numbers(pairs)
    news = unpack_numbers([old for old, _ in pairs], text)
    assert len(news) == len(pairs)
    assert all(same(got, new) for got, (_, new) in zip(news, pairs, strict=True))


@pytest.mark.parametrize(
    ("old", "new"),
    [(0.0, -0.0), (-0.0, 0.0), (5e-324, -5e-324), (1.7976931348623157e308, 2.5e-308),
     (0.1, 0.1 + 2**-56), (1e22, 1e23), (3.0, 1e-05), (0.0, 0.0)],
)  # fmt: skip
def test_signed_zeros_subnormals_and_extremes_come_back_exactly(old: float, new: float) -> None:
    (got,) = unpack_numbers([old], pack_numbers([(old, new)]))
    assert same(got, new)


def test_a_rounded_float_takes_its_decimal_digits_and_a_count_its_difference() -> None:
    # e-value 0.098599 -> 0.099555 (same power: 3 bytes) and a count 24000 -> 24403 (2 bytes)
    raw = base64.b85decode(pack_numbers([(0.098599, 0.099555), (24000, 24403)]))
    assert len(raw) == 1 + 3 + 2  # one byte of headers
    # a full-precision float near its old value: its XOR drops the common leading bytes
    raw = base64.b85decode(pack_numbers([(0.08051385374231887, 0.08028371653673397)]))
    assert len(raw) < 1 + 8


def test_the_text_has_no_character_json_would_escape() -> None:
    text = pack_numbers([(float(i), 1 / (i + 3)) for i in range(300)])
    assert '"' not in text
    assert "\\" not in text
    assert text.isascii()
    assert text.isprintable()


def test_decimal_form_is_the_shortest_repr_without_trailing_zeros() -> None:
    assert decimal_of(0.098599) == (98599, -6)
    assert decimal_of(-160.0) == (-16, 1)
    assert decimal_of(1e-05) == (1, -5)
    assert decimal_of(0.0) == (0, 0)
    assert decimal_of(-0.0) is None
    assert decimal_of(math.inf) is None


def test_a_text_that_does_not_fit_its_old_values_is_refused() -> None:
    text = pack_numbers([(1.5, 2.5), (10, 12)])
    with pytest.raises(ValueError, match="more packed numbers"):
        unpack_numbers([1.5], text)
    with pytest.raises(ValueError, match="end early"):
        unpack_numbers([1.5, 10, 7], text)
    with pytest.raises(ValueError, match="not base85"):
        unpack_numbers([1.5], "not base85 '")
