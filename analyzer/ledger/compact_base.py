"""A whole look kept as the base of the compact looks that follow it, cut once. Pure.

Compacting a look over its base (``ledger/compact.py``) pairs the two results' leaves. On
decoded values that meant, per look, decoding the base's canonical text, encoding the new
result canonically and decoding it again, then walking both trees in Python (issue 20: cut
this way, compacting a 5-metric look went from 538 to 423 µs). The canonical text alone says
the same:

* its keys are sorted, so its scalar tokens, in text order, are the leaves in canonical order;
* two texts are of one shape exactly when they are equal with their leaves blanked (the same
  punctuation and the same keys in the same places);
* two leaf tokens are equal exactly when the ledger stores the same value (``_same`` of the
  decoded ones): canonical JSON writes each value one way, and ``1``, ``1.0``, ``true`` and
  ``-0.0`` apart.

So :class:`CompactBase` cuts a base's text into its shape and leaf tokens once, and
:meth:`CompactBase.changes` cuts a new look's text (one C-speed ``re.split``), compares the
shapes and the tokens, and decodes only the leaves that moved: the same packed changes as
:func:`~analyzer.ledger.compact.changes` of the decoded values, byte for byte.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzer.ledger.chain import canonical_json
from analyzer.ledger.compact import compact_with, packed_changes
from analyzer.ledger.number_codec import FloatParts, float_parts, pack_over

# Possessive: a string that is not a key is not scanned again character by character (half of
# the split's time with a backtracking pattern).
_STRING = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
# A key (a string and its colon: group 1) or a leaf (a string, a number, true, false or null:
# group 2); what lies between them is punctuation. Canonical JSON has no whitespace.
_TOKENS = re.compile(f'({_STRING}:)|({_STRING}|[^,:\\[\\]{{}}"]+)', re.DOTALL)
_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
# Joins tokens into one text (a list of them took twice the memory of the result's text):
# never in canonical JSON, which writes control characters escaped.
_SEPARATOR = "\x00"


def _cut(text: str) -> tuple[tuple[str, str], list[str]]:
    """``text``'s shape and its leaf tokens. The shape is its punctuation runs and its keys:
    which tokens are keys follows from the runs (a leaf is followed by a run opening with
    ``,``, ``]`` or ``}``; a key by an empty run or one opening with ``{`` or ``[``)."""
    parts = _TOKENS.split(text)
    keys = _SEPARATOR.join(filter(None, parts[1::3]))
    leaves = list(filter(None, parts[2::3]))
    return (_SEPARATOR.join(parts[0::3]), keys), leaves


def _value_of(token: str) -> Any:
    """The value a canonical JSON scalar token decodes to (as ``json.loads`` gives it)."""
    if token[0] == '"':
        return token[1:-1] if "\\" not in token else json.loads(token)
    if token in _CONSTANTS:
        return _CONSTANTS[token]
    if "." in token or "e" in token or "E" in token:
        return float(token)
    return int(token)


# An old float's decimal power not worked out yet, and none (no decimal form: -0.0)
_UNKNOWN, _NO_DECIMAL = -32768, 32767  # a double's decimal power is within -324..308


@dataclass(frozen=True, slots=True)
class CompactBase:
    """The whole look at ledger ``seq`` as a base: its result's shape and leaf tokens (about
    the memory of the result's canonical text).

    Packing a look's numbers works out, for each old float that moved, its float64 bits and its
    decimal power: the same for every look over this base, so each is worked out at the first
    look that needs it and kept, by leaf index, in two arrays (10 bytes a leaf, where a dict of
    tuples took ~120 a float): a session repeats its verdict, and so its base, for many looks
    (issue 20: half of packing a look's numbers was this old side)."""

    seq: int
    shape: tuple[str, str]
    count: int  # leaves
    leaves: str  # their tokens, joined by _SEPARATOR
    # {0: (bits, powers)} once a look has needed them (a frozen class's mutable slot)
    _old_floats: dict[int, tuple[array[int], array[int]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, seq: int, result: Mapping[str, Any], *, stored: str | None = None) -> CompactBase:
        """The base of the whole look at ``seq`` whose result is ``result`` (``stored``: its
        canonical text, when the caller has it)."""
        shape, leaves = _cut(canonical_json(result) if stored is None else stored)
        return cls(seq=seq, shape=shape, count=len(leaves), leaves=_SEPARATOR.join(leaves))

    def changes(self, stored: str) -> dict[str, Any] | None:
        """The packed changes (``compact.changes``) of the result whose canonical text is
        ``stored`` over this base's; None when it has another shape."""
        shape, after = _cut(stored)
        if shape != self.shape:
            return None
        before = self.leaves.split(_SEPARATOR) if self.count else []
        moved = (
            (index, _value_of(was), _value_of(now))
            for index, (was, now) in enumerate(zip(before, after, strict=True))
            if was != now
        )
        return packed_changes(self.count, moved, lambda numbers: self._pack(numbers, after))

    def _pack(self, numbers: list[tuple[int, Any, Any]], after: list[str]) -> str:
        """``pack_numbers`` of the (old, new) pairs of ``numbers`` ((index, old, new)), with
        the old floats' parts kept from earlier looks and the new floats' reprs read from their
        tokens ``after`` (canonical JSON writes a float as its ``repr``)."""
        kept = self._old_floats.get(0)
        if kept is None:  # setdefault: two threads compacting over one base keep one pair
            fresh = (array("Q", bytes(8 * self.count)), array("h", [_UNKNOWN]) * self.count)
            kept = self._old_floats.setdefault(0, fresh)
        bits, powers = kept
        pairs: list[tuple[int | FloatParts, Any, str]] = []
        for index, was, now in numbers:
            if type(was) is not float:
                pairs.append((was, now, ""))
                continue
            power = powers[index]
            if power == _UNKNOWN:
                parts = float_parts(was)
                bits[index] = parts[0]  # before the power, which says the bits are there
                powers[index] = _NO_DECIMAL if parts[1] is None else parts[1]
            else:
                parts = (bits[index], None if power == _NO_DECIMAL else power)
            pairs.append((parts, now, after[index]))
        return pack_over(pairs)

    def compact(
        self, data: Mapping[str, Any], *, stored: str | None = None
    ) -> dict[str, Any] | None:
        """``data`` (a look's, with a ``result``) in compact form over this base, or None when
        it is to be written whole: the same as ``compact.compact_data`` over the base's result.
        ``stored``: the result's canonical text, when the caller has it (a look's service
        encoded it for the session row: not encoded twice)."""
        result = data.get("result")
        if not isinstance(result, Mapping):
            return None
        if stored is None:
            stored = canonical_json(result)
        return compact_with(data, base_seq=self.seq, stored=stored, changed=self.changes(stored))
