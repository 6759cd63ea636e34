"""The number packing a base does with its old values' parts kept (``pack_over``, used by
``CompactBase``) writes exactly the text of the reference ``pack_numbers``."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from analyzer.ledger import number_codec
from analyzer.ledger.number_codec import (
    Number,
    decimal_of,
    float_parts,
    pack_numbers,
    pack_over,
    unpack_numbers,
)

finite = st.floats(allow_nan=False, allow_infinity=False)  # every magnitude, subnormals, -0.0
every_float = st.floats()  # and inf and nan: pack_numbers packs them too (as XOR)
# rounded like the judge's e-values, z and intervals: short decimals
rounded = st.builds(round, st.floats(-1e6, 1e6), st.integers(0, 9))
floats = (
    finite | rounded | every_float | st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e22, 1e23, 0.1])
)
# a new value near the old one (the XOR form's case) or far from it
float_pairs = floats.flatmap(
    lambda old: st.tuples(
        st.just(old),
        floats
        | st.integers(1, 40).map(lambda k: _steps(old, k))
        | st.integers(-9, 9).map(lambda k: round(old * (1 + k / 1000), 8) if old else old),
    )
)
int_pairs = st.tuples(
    st.integers() | st.integers(-(2**200), 2**200), st.integers() | st.integers(-(2**200), 2**200)
)


def _steps(value: float, k: int) -> float:
    for _ in range(k):
        value = math.nextafter(value, math.inf)
    return value if math.isfinite(value) else 1.0


def _over(pairs: list[tuple[Number, Number]]) -> list[tuple[Any, Number, str]]:
    return [
        (float_parts(old), new, repr(new)) if type(old) is float else (old, new, "")
        for old, new in pairs
    ]


@given(st.lists(int_pairs | float_pairs, max_size=40))
@example([(0.0, -0.0), (-0.0, 0.0), (-0.0, -0.0), (0.0, 0.0), (7, 7), (0, 127), (0, 64)])
@example([(1.7976931348623157e308, 2.5e-308), (5e-324, -5e-324), (0.098599, 0.099555)])
def test_packing_over_kept_parts_writes_the_reference_text(
    pairs: list[tuple[Number, Number]],
) -> None:
    text = pack_over(_over(pairs))
    assert text == pack_numbers(pairs)
    news = unpack_numbers([old for old, _ in pairs], text)
    assert [repr(n) for n in news] == [repr(new) for _, new in pairs]


@given(finite | rounded)
def test_a_decimal_form_always_gives_its_float_back(value: float) -> None:
    # why pack_over need not check the decimal as _float_code does: it never fails
    found = decimal_of(value)
    if found is None:
        assert value == 0
        assert math.copysign(1.0, value) < 0
    else:
        assert repr(float(f"{found[0]}e{found[1]}")) == repr(value)


@given(st.integers(0, 2**140))
@example(0)
@example(127)
@example(128)
def test_a_varint_is_seven_bits_a_byte_low_first(value: int) -> None:
    expected = bytearray()
    rest = value
    while True:
        byte, rest = rest & 0x7F, rest >> 7
        expected.append(byte | (0x80 if rest else 0))
        if not rest:
            break
    assert number_codec._varint(value) == bytes(expected)


def test_an_int_paired_with_a_float_is_refused_either_way() -> None:
    with pytest.raises(TypeError):
        pack_over([(float_parts(1.5), 2, "2")])
    with pytest.raises(TypeError):
        pack_over([(1, 2.5, "2.5")])


@given(floats)
@example(-0.0)
@example(math.inf)
@example(-math.inf)
@example(math.nan)
def test_a_decimal_read_from_a_repr_is_the_decimal_of_its_float(value: float) -> None:
    assert number_codec._decimal_of_repr(repr(value)) == decimal_of(value)


@given(st.binary(max_size=600))
@example(b"")
@example(b"\x00")
@example(b"\xff" * 7)
def test_the_packed_text_is_base64s_base85(raw: bytes) -> None:
    assert number_codec._b85(raw) == base64.b85encode(raw).decode("ascii")
    assert number_codec._b85(bytearray(raw)) == base64.b85encode(raw).decode("ascii")


def test_the_base85_alphabet_is_base64s() -> None:
    assert number_codec._B85_CHARS.encode("ascii") == base64._b85alphabet
