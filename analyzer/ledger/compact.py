"""Compact look entries: a look that repeats the last verdict records only what changed. Pure.

Every look of a driven rollout appends an ``analysis_recorded`` entry. Most looks of a long
step repeat the previous look's verdicts with new counts; writing the whole judge result each
time made the ledger grow by re-statement (4.6 kB a look, issue 20). So a look whose overall
verdict and per-metric verdicts equal the previous look's (same rollout, same step) is written
as a *compact* entry:

    {"step": 0, "weight": 10,
     "repeats": {"base": 1234, "verdict": "inconclusive", "score": 0.0,
                 "changed": <the result's leaves that differ from the base result's, packed>}}

``base`` is the seq of the last *full* look of that rollout and step (never another compact
one, so expanding is one hop). The result has the base result's shape (same keys, same list
lengths: same metrics); only leaves differ — counts, estimates, e-values, the numbers in the
reasons — and :func:`changes` packs exactly those (numbers against the values they replace,
texts as their digit runs when only those moved). :func:`expand_data` puts them back into the
base's result, giving the full result exactly as the judge answered it (numbers are copied
bit for bit, not recomputed). So the evidence is in the ledger, hashed and chained like any
other entry: ``ledger verify`` proves the compact entry and its base. The verdict and score
stay in clear beside the packed changes, so a reader without the base still sees the decision.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from analyzer.domain.events import EventType
from analyzer.ledger.chain import EntryRecord, canonical_json
from analyzer.ledger.number_codec import pack_numbers, unpack_numbers

REPEATS = "repeats"
ANALYSIS = EventType.ANALYSIS_RECORDED.value

# The leaves written by the number codec, against the values they replace.
_NUMBERS = ("f", "i")

# A delta larger than this share of the full result is not worth it: the look is written whole.
MAX_DELTA_SHARE = 0.5


def leaves(value: Any) -> list[Any]:
    """The scalar leaves of a JSON value in canonical order (sorted keys, list order)."""
    found: list[Any] = []
    _collect(value, found)
    return found


def _collect(value: Any, found: list[Any]) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value):
            _collect(value[key], found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)
    else:
        found.append(value)


# JSON's scalar types: a pair of them is a pair of leaves, decided without asking the ``Mapping``
# ABC below about each of a look's ~160 leaves (~15 % of compacting a fresh look).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _pair_leaves(old: Any, new: Any, pairs: list[tuple[Any, Any]]) -> bool:
    """Collect the (old, new) leaf pairs in canonical order; False when the shapes differ."""
    if type(old) in _SCALARS and type(new) in _SCALARS:
        pairs.append((old, new))
        return True
    if isinstance(old, Mapping):
        if not isinstance(new, Mapping) or old.keys() != new.keys():
            return False
        return all(_pair_leaves(old[key], new[key], pairs) for key in sorted(old))
    if isinstance(old, list):
        if not isinstance(new, list) or len(old) != len(new):
            return False
        return all(_pair_leaves(a, b, pairs) for a, b in zip(old, new, strict=True))
    if isinstance(new, Mapping | list):
        return False
    pairs.append((old, new))
    return True


def shape(value: Any) -> str:
    """The value with every leaf blanked: two values of one shape differ only in leaves."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(k)}:{shape(value[k])}" for k in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(shape(item) for item in value) + "]"
    return "_"


_DIGITS = re.compile(r"(\d+)")


def _same(old: Any, new: Any) -> bool:
    # 1 == 1.0 == True in Python, not in the canonical JSON: compare as the ledger stores them.
    # And 0.0 == -0.0, which the ledger stores apart too.
    if type(old) is not type(new) or old != new:
        return False
    return type(old) is not float or repr(old) == repr(new)


def _stream(value: Any) -> str:
    kind = type(value)
    return "f" if kind is float else "i" if kind is int else "s" if kind is str else "o"


def changes(old: Any, new: Any) -> dict[str, Any] | None:
    """The leaves of ``new`` that differ from ``old``'s, packed; None when the two do not have
    the same shape (the look is then written whole).

    ``at``: a bitmap (base64) over ``old``'s leaves of those that changed value but not type;
    their new values by type in leaf order: ``n`` the integers and floats, each written against
    the value it replaces (``ledger/number_codec.py``: exact, ~6 characters a number where JSON
    spends up to 24), ``s`` texts (only the digit runs, ``#`` then comma-joined, empty where a
    run did not move, when the text around them is the old one's: a reason whose numbers
    moved), ``o`` anything else. ``xt``: a bitmap of the leaves whose type changed (a number
    that became null), their values in ``x``. (Entries written before ``n`` keep floats as
    float64 bits in ``f`` and integers in ``i``; :func:`apply_changes` reads both forms.)
    """
    pairs: list[tuple[Any, Any]] = []
    if not _pair_leaves(old, new, pairs):
        return None
    moved = ((i, was, now) for i, (was, now) in enumerate(pairs) if not _same(was, now))
    return packed_changes(len(pairs), moved)


# Packs the numbers that moved, given as (index, old, new) in leaf order: pack_numbers of the
# (old, new) pairs, or a base's own packer that knows its old values' parts (compact_base.py).
NumberPacker = Callable[[list[tuple[int, Any, Any]]], str]


def _pack_pairs(numbers: list[tuple[int, Any, Any]]) -> str:
    return pack_numbers([(was, now) for _, was, now in numbers])


def packed_changes(
    count: int, moved: Iterable[tuple[int, Any, Any]], pack: NumberPacker = _pack_pairs
) -> dict[str, Any]:
    """The packed form (:func:`changes`) of the leaves ``moved`` ((index, old, new), in leaf
    order, each a value the ledger stores apart from the old) among ``count`` leaves; ``pack``
    writes the numbers (the same text as ``pack_numbers`` of their (old, new) pairs)."""
    size = (count + 7) // 8
    same_type, new_type = bytearray(size), bytearray(size)
    numbers: list[tuple[int, Any, Any]] = []
    streams: dict[str, list[Any]] = {"s": [], "o": [], "x": []}
    for index, was, now in moved:
        if type(was) is not type(now):
            new_type[index // 8] |= 1 << (index % 8)
            streams["x"].append(now)
            continue
        same_type[index // 8] |= 1 << (index % 8)
        kind = type(now)  # _stream's test, inline: most of a look's moved leaves are numbers
        if kind is float or kind is int:
            numbers.append((index, was, now))
        elif kind is str:
            streams["s"].append(_text_change(was, now))
        else:
            streams["o"].append(now)
    packed: dict[str, Any] = {"at": _b64(bytes(same_type))}
    if any(new_type):
        packed["xt"] = _b64(bytes(new_type))
    if numbers:
        packed["n"] = pack(numbers)
    packed.update((key, values) for key, values in streams.items() if values)
    return packed


def _text_change(was: Any, now: str) -> str:
    """``now`` as its digit runs ("#" then comma-joined) when only they differ from ``was``."""
    if isinstance(was, str):
        old_parts, new_parts = _DIGITS.split(was), _DIGITS.split(now)
        if old_parts[::2] == new_parts[::2]:
            # a run that did not move is left empty (a digit run never is): "p50", "+10%"
            runs = zip(old_parts[1::2], new_parts[1::2], strict=True)
            return "#" + ",".join("" if old == new else new for old, new in runs)
    return "=" + now if now[:1] in ("#", "=") else now


def _text_of(was: Any, stored: str) -> str:
    if stored.startswith("="):
        return stored[1:]
    if not stored.startswith("#"):
        return stored
    if not isinstance(was, str):
        raise ValueError("a digits-only text change applies to a text only")
    parts = _DIGITS.split(was)
    digits = stored[1:].split(",")
    if len(digits) != len(parts) // 2:
        raise ValueError("a digits-only text change does not fit its base text")
    parts[1::2] = [new or old for old, new in zip(parts[1::2], digits, strict=True)]
    return "".join(parts)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def apply_changes(old: Any, packed: Mapping[str, Any]) -> Any:
    """``old`` with the packed changes applied (a new value; ``old`` is not changed)."""
    before = leaves(old)
    size = (len(before) + 7) // 8
    same_type = base64.b64decode(str(packed["at"]), validate=True)
    new_type = base64.b64decode(str(packed.get("xt", "")), validate=True) or bytes(size)
    if len(same_type) != size or len(new_type) != size:
        raise ValueError("the change bitmaps do not fit the base")
    streams: dict[str, Iterator[Any]] = {
        key: iter(list(packed.get(key, ()))) for key in ("i", "s", "o", "x")
    }
    if "n" in packed:
        changed = [
            was
            for index, was in enumerate(before)
            if same_type[index // 8] & 1 << (index % 8)
            and not new_type[index // 8] & 1 << (index % 8)
            and _stream(was) in _NUMBERS
        ]
        numbers = iter(unpack_numbers(changed, str(packed["n"])))
        streams["f"] = streams["i"] = numbers
    else:  # written before "n": floats as little-endian float64 bits, integers as they are
        raw = base64.b64decode(str(packed.get("f", "")), validate=True)
        streams["f"] = iter(struct.unpack(f"<{len(raw) // 8}d", raw))
    after = list(before)
    try:
        for index, was in enumerate(before):
            bit = 1 << (index % 8)
            if new_type[index // 8] & bit:
                after[index] = next(streams["x"])
            elif same_type[index // 8] & bit:
                stream = _stream(was)
                value = next(streams[stream])
                after[index] = _text_of(was, value) if stream == "s" else value
    except StopIteration:
        raise ValueError("fewer packed values than changed leaves") from None
    return _rebuild(old, iter(after))


def _rebuild(value: Any, replaced: Iterator[Any]) -> Any:
    if isinstance(value, Mapping):
        return {key: _rebuild(value[key], replaced) for key in sorted(value)}
    if isinstance(value, list):
        return [_rebuild(item, replaced) for item in value]
    return next(replaced)


def verdicts_of(result: Mapping[str, Any]) -> tuple[Any, ...]:
    """What "the same verdict" means: the overall verdict and each metric's name and verdict."""
    metrics = result.get("metrics") or ()
    return (
        result.get("verdict"),
        tuple((m.get("name"), m.get("verdict")) for m in metrics if isinstance(m, Mapping)),
    )


def compact_data(
    data: Mapping[str, Any], *, base_seq: int, base_result: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The compact form of a look's ``data`` over the base entry's result, or None when the
    look should be written whole (no result, or a delta not much smaller than the result)."""
    result = data.get("result")
    if not isinstance(result, Mapping):
        return None
    stored = canonical_json(result)
    changed = changes(base_result, json.loads(stored))  # as stored: tuples are lists
    return compact_with(data, base_seq=base_seq, stored=stored, changed=changed)


def compact_with(
    data: Mapping[str, Any], *, base_seq: int, stored: str, changed: dict[str, Any] | None
) -> dict[str, Any] | None:
    """``data`` in compact form given its result's canonical text ``stored`` and the packed
    ``changed`` leaves over the base's (None: another shape); None when it is to be written
    whole (:func:`compact_data`)."""
    if changed is None or len(canonical_json(changed)) > MAX_DELTA_SHARE * len(stored):
        return None
    result = data["result"]
    compact = {key: value for key, value in data.items() if key != "result"}
    compact[REPEATS] = {
        "base": base_seq,
        "verdict": result.get("verdict"),
        "score": result.get("score"),
        "changed": changed,
    }
    return compact


def _may_be_compact(entry: EntryRecord) -> bool:
    """A cheap test before decoding: a compact look's canonical payload holds the key
    ``"repeats":{`` (a text value holding those characters has its quotes escaped), so an
    analysis entry without it is full and need not be decoded here — a page reading 500 looks
    decoded each of them once more only to learn that."""
    return entry.event_type == ANALYSIS and f'"{REPEATS}":{{' in entry.payload


def base_of(data: Mapping[str, Any]) -> int | None:
    """The base entry's seq of a compact look's data; None for any other data."""
    repeats = data.get(REPEATS)
    if isinstance(repeats, Mapping) and isinstance(repeats.get("base"), int):
        return int(repeats["base"])
    return None


def expand_data(data: Mapping[str, Any], base_data: Mapping[str, Any]) -> dict[str, Any]:
    """The full data of a compact look, given its base entry's (full) data."""
    repeats = data[REPEATS]
    base_result = base_data.get("result")
    if not isinstance(base_result, Mapping):
        raise ValueError("the base of a compact look is not a full look")
    expanded = {key: value for key, value in data.items() if key != REPEATS}
    expanded["result"] = apply_changes(base_result, repeats["changed"])
    return expanded


def expand_all(
    entries: Sequence[EntryRecord],
    fetch: Callable[[Sequence[int]], Iterable[EntryRecord]],
) -> list[EntryRecord]:
    """``entries`` with every compact look expanded (``EntryRecord.data()`` gives the full look).

    Bases among ``entries`` are used as they are; the others are asked of ``fetch`` (seqs →
    entries) in one call. A compact look whose base is missing, of another rollout or not a full
    look is left as stored (its readers show the verdict and score it keeps in clear)."""
    known: dict[int, EntryRecord] = {}
    bases: dict[int, int] = {}
    for entry in entries:
        known[entry.seq] = entry
        base = base_of(entry.stored_data()) if _may_be_compact(entry) else None
        if base is not None:
            bases[entry.seq] = base
    if not bases:
        return list(entries)
    missing = sorted(set(bases.values()) - known.keys())
    if missing:
        known.update((found.seq, found) for found in fetch(missing))
    return [_expanded(entry, bases.get(entry.seq), known) for entry in entries]


def _expanded(
    entry: EntryRecord, base: int | None, known: Mapping[int, EntryRecord]
) -> EntryRecord:
    found = known.get(base) if base is not None else None
    if (
        found is None
        or found.seq >= entry.seq
        or found.event_type != ANALYSIS
        or found.rollout_id != entry.rollout_id
    ):
        return entry
    base_data = found.stored_data()
    if base_of(base_data) is not None:
        return entry
    try:
        return replace(entry, expanded=expand_data(entry.stored_data(), base_data))
    except (ValueError, TypeError, KeyError, AttributeError):
        return entry
