"""Numbers written against the values they replace: how a compact look stores what moved. Pure.

A compact look (``ledger/compact.py``) stores the numbers of a judge result that changed since
its base look. As JSON a float costs up to 24 characters, as float64 bits in base64 10.7; this
codec writes each number relative to the one it replaces, in as few bytes as give it back
exactly, and the whole run as one base85 text (its alphabet has no quote and no backslash, so
canonical JSON stores it as is):

* an integer: its difference from the old value, zigzag-encoded as a varint (counts grow by
  hundreds a look: two bytes, where JSON spends five or six digits);
* a float, the shorter of
  - its shortest decimal form (``repr``) as an integer mantissa and a power of ten, written
    only when the power differs from the old value's: the judge rounds its e-values, z and
    intervals to 6–8 decimals, which take 3–5 bytes;
  - its float64 bits XOR the old value's, without the leading zero bytes: a value near the
    old one shares the sign, the exponent and the top of the mantissa.

  The choice is a 4-bit header per float; the headers come first, two to a byte.

Exact by construction: an integer is old + difference; a decimal is ``float("<m>e<p>")``,
which Python rounds correctly, and is chosen only when it gives back the same value (never for
``-0.0``, whose decimal form would lose the sign); XOR is its own inverse.
"""

from __future__ import annotations

import base64
import math
import struct
import sys
from array import array
from collections.abc import Sequence

Number = int | float

_XOR_LAST = 7  # headers 0..7: the XOR in header + 1 bytes
_DECIMAL_SAME_POWER = 8  # the decimal mantissa; the power is the old value's
_DECIMAL_OWN_POWER = 9  # a power byte (offset by 128), then the mantissa


def decimal_of(value: float) -> tuple[int, int] | None:
    """``value`` as (mantissa, power of ten) from its shortest decimal form, the mantissa
    without trailing zeros; None for a non-finite value or ``-0.0``."""
    if not math.isfinite(value) or (value == 0 and math.copysign(1.0, value) < 0):
        return None
    return _decimal_of_repr(repr(value))


# The reprs of the floats without a decimal form (decimal_of)
_NO_DECIMAL_REPRS = frozenset({"-0.0", "inf", "-inf", "nan"})


def _decimal_of_repr(text: str) -> tuple[int, int] | None:
    """:func:`decimal_of` the float whose ``repr`` is ``text``."""
    if text in _NO_DECIMAL_REPRS:
        return None
    # repr: "-0.00123", "160.0", "1e-05", "1.5e+16" (string work: a regex took twice as long)
    significand, _, exponent = text.partition("e")
    whole, _, fraction = significand.partition(".")
    digits = whole + fraction
    kept = digits.rstrip("0")
    if not kept:  # 0.0
        return 0, 0
    return int(kept), int(exponent or 0) - len(fraction) + len(digits) - len(kept)


_FLOAT64 = struct.Struct(">d")
_UINT64 = struct.Struct(">Q")


def _bits(value: float) -> int:
    return int(_UINT64.unpack(_FLOAT64.pack(value))[0])


def _float_of(bits: int) -> float:
    return float(_FLOAT64.unpack(_UINT64.pack(bits))[0])


def _varint(value: int) -> bytes:
    if value < 0x80:  # most deltas of counts
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def _float_code(old: float, new: float) -> tuple[int, bytes]:
    """The header and body of ``new`` over ``old``: the shorter exact form."""
    xor = _bits(old) ^ _bits(new)
    size = max(1, (xor.bit_length() + 7) // 8)
    best = (size - 1, xor.to_bytes(size, "big"))
    found = decimal_of(new)
    if found is None:
        return best
    mantissa, power = found
    body = _varint(_zigzag(mantissa))
    if len(body) >= size or float(f"{mantissa}e{power}") != new:
        return best
    before = decimal_of(old)
    if before is not None and before[1] == power:
        return _DECIMAL_SAME_POWER, body
    if -128 <= power < 128 and len(body) + 1 < size:
        return _DECIMAL_OWN_POWER, bytes([power + 128]) + body
    return best


def pack_numbers(pairs: Sequence[tuple[Number, Number]]) -> str:
    """The new values of ``pairs`` ((old, new), both ints or both floats, in order) as text."""
    headers: list[int] = []
    bodies = bytearray()
    for old, new in pairs:
        if type(old) is float and type(new) is float:
            header, body = _float_code(old, new)
            headers.append(header)
            bodies += body
        elif type(old) is int and type(new) is int:
            bodies += _varint(_zigzag(new - old))
        else:
            raise TypeError(f"not a pair of ints or of floats: {old!r}, {new!r}")
    return _text(headers, bodies)


def _text(headers: list[int], bodies: bytearray) -> str:
    headers += [0] * (len(headers) % 2)
    nibbles = bytes(headers[i] << 4 | headers[i + 1] for i in range(0, len(headers), 2))
    return _b85(nibbles + bodies)


# base64's b85 alphabet (RFC 1924), its pairs in the order base64 builds them
_B85_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
_B85_PAIRS = [a + b for a in _B85_CHARS for b in _B85_CHARS]


def _b85(raw: bytes | bytearray) -> str:
    """``base64.b85encode(raw).decode()``, written as text directly: base64's builds a struct
    format per call and tests each word for folding that b85 never does (~40 % of its time)."""
    padding = -len(raw) % 4
    words = array("I", bytes(raw) + bytes(padding))
    if sys.byteorder == "little":  # base85 reads each four bytes big-endian
        words.byteswap()
    pairs, chars = _B85_PAIRS, _B85_CHARS
    text = "".join([pairs[w // 614125] + pairs[w // 85 % 7225] + chars[w % 85] for w in words])
    return text[: len(text) - padding]


# What pack_numbers works out of an old float, worked out once per base instead (an old value
# is the base look's, the same for every look compacted over it): its float64 bits and the power
# of ten of its decimal form (None when it has none).
FloatParts = tuple[int, int | None]


def float_parts(old: float) -> FloatParts:
    """The parts of ``old`` that :func:`pack_over` takes in its place."""
    found = decimal_of(old)
    return _bits(old), None if found is None else found[1]


def pack_over(numbers: Sequence[tuple[int | FloatParts, Number, str]]) -> str:
    """:func:`pack_numbers` of the (old, new) pairs of ``numbers`` ((old, new, text)), each old
    float given as its :func:`float_parts` (an old int as itself) and each new float with its
    ``repr`` as ``text`` (a canonical JSON text holds it: a base has it at hand; ignored for an
    int): the same text, byte for byte (the property tests hold it to that)."""
    headers: list[int] = []
    bodies = bytearray()
    for old, new, text in numbers:
        if type(new) is float and type(old) is tuple:
            header, body = _float_code_over(old, new, text)
            headers.append(header)
            bodies += body
        elif type(new) is int and type(old) is int:
            bodies += _varint(_zigzag(new - old))
        else:
            raise TypeError(f"not a pair of ints or of floats: {old!r}, {new!r}")
    return _text(headers, bodies)


def _float_code_over(old: FloatParts, new: float, text: str) -> tuple[int, bytes]:
    """:func:`_float_code` given ``old``'s parts. Its check that the decimal gives ``new`` back
    is left out: ``repr`` is the shortest text that reads back as the value, the decimal is the
    same number (trailing zeros moved into the power), and ``float()`` rounds correctly, so it
    always does (``decimal_of`` excludes -0.0 and non-finite values)."""
    xor = old[0] ^ int(_UINT64.unpack(_FLOAT64.pack(new))[0])
    size = (xor.bit_length() + 7) // 8 or 1
    found = _decimal_of_repr(text) if size > 1 else None  # a decimal takes a byte at least
    if found is not None:
        mantissa, power = found
        zigzag = mantissa * 2 if mantissa >= 0 else -mantissa * 2 - 1
        length = (zigzag.bit_length() + 6) // 7 or 1  # its varint's, not built unless used
        if length < size:
            if old[1] == power:
                return _DECIMAL_SAME_POWER, _varint(zigzag)
            if -128 <= power < 128 and length + 1 < size:
                return _DECIMAL_OWN_POWER, bytes((power + 128,)) + _varint(zigzag)
    return size - 1, xor.to_bytes(size, "big")


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    """The varint at ``raw[at]`` and the index after it."""
    value, shift = 0, 0
    while True:
        if at >= len(raw):
            raise ValueError("the packed numbers end early")
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def unpack_numbers(olds: Sequence[Number], text: str) -> list[Number]:
    """The new values packed by :func:`pack_numbers` over ``olds`` (the same old values, in the
    same order); ``ValueError`` when the text does not fit them."""
    try:
        raw = base64.b85decode(text)
    except ValueError as exc:
        raise ValueError(f"the packed numbers are not base85: {exc}") from None
    at = (sum(1 for old in olds if type(old) is float) + 1) // 2  # the header bytes
    headers = iter([n for byte in raw[:at] for n in (byte >> 4, byte & 0xF)])
    news: list[Number] = []
    for old in olds:
        if type(old) is int:
            delta, at = _read_varint(raw, at)
            news.append(old + _unzigzag(delta))
        elif type(old) is float:
            value, at = _read_float(old, next(headers, -1), raw, at)
            news.append(value)
        else:
            raise TypeError(f"not an int or a float: {old!r}")
    if at != len(raw):
        raise ValueError("more packed numbers than changed numbers")
    return news


def _read_float(old: float, header: int, raw: bytes, at: int) -> tuple[float, int]:
    if 0 <= header <= _XOR_LAST:
        end = at + header + 1
        if end > len(raw):
            raise ValueError("the packed numbers end early")
        return _float_of(_bits(old) ^ int.from_bytes(raw[at:end], "big")), end
    if header == _DECIMAL_SAME_POWER:
        before = decimal_of(old)
        if before is None:
            raise ValueError("a decimal with its old power over an old value without one")
        power = before[1]
    elif header == _DECIMAL_OWN_POWER and at < len(raw):
        power, at = raw[at] - 128, at + 1
    else:
        raise ValueError(f"a float header {header} that does not fit")
    mantissa, at = _read_varint(raw, at)
    return float(f"{_unzigzag(mantissa)}e{power}"), at
