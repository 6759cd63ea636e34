"""What an ``analysis_recorded`` entry says, decoded without reading the rest of it.

A look's payload holds the whole judge result (~4 kB for four metrics: estimates, intervals,
per-bucket statistics); the pictures need a dozen values of it. Decoding 500 such payloads with
``json.loads`` and then walking the dictionaries was most of the time of a rollout page nobody
had opened since the process started (docs/ui.md, *Speed*). ``msgspec`` decodes the payload
against the shape below and skips every other key without building an object for it, about ten
times faster.

The decoded subset is turned back into plain dictionaries and read by the *same* readers as
before (:func:`~analyzer.api.ui.charts.look_parts`, :func:`~analyzer.api.ui.summaries.summary_of`),
so the pictures say exactly what the generic path says. Keys that were absent stay absent
(``UNSET`` is dropped), and a payload whose shape differs from the expected one (a ``result``
or a metric that is not an object, …) falls back to ``json.loads`` and the generic readers:
the fast path is only ever a faster way to the same answer (tested on real judge output and on
odd entries, tests/unit/api/test_ui_look_decoder.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from analyzer.api.ui.charts import LookParts, MetricAtLook, interval, mapping, number

_ABSENT: Any = UNSET  # a key that was not in the payload stays absent in the decoded subset


class _Statistic(msgspec.Struct):
    e_value: Any = _ABSENT
    threshold: Any = _ABSENT
    tolerance: Any = _ABSENT


class _Estimate(msgspec.Struct):
    intervals: Any = _ABSENT


class _Metric(msgspec.Struct):
    name: Any = _ABSENT
    kind: Any = _ABSENT
    verdict: Any = _ABSENT
    reason: Any = _ABSENT
    statistic: _Statistic | UnsetType | None = UNSET
    estimate: _Estimate | UnsetType | None = UNSET


class _Result(msgspec.Struct):
    verdict: Any = _ABSENT
    score: Any = _ABSENT
    reason: Any = _ABSENT
    metrics: list[_Metric] | UnsetType | None = UNSET


class _Data(msgspec.Struct):
    # The engine's and a fresh Argo look's verdict is under ``result``; a cached Argo answer
    # records it at the top level (summaries.analysis_view reads both).
    result: _Result | UnsetType | None = UNSET
    verdict: Any = _ABSENT
    score: Any = _ABSENT
    reason: Any = _ABSENT
    cached: Any = _ABSENT
    metrics: list[_Metric] | UnsetType | None = UNSET
    # A compact look (ledger/compact.py) keeps only what changed since its base look: the
    # generic path reads it as the ledger expanded it.
    repeats: Any = _ABSENT


class _Payload(msgspec.Struct):
    data: _Data


_DECODER = msgspec.json.Decoder(_Payload)
_NO_STATISTIC = _Statistic()
_NO_ESTIMATE = _Estimate()


class DecodedLook:
    """An analysis entry decoded by the fast path: its look, and its data subset on demand."""

    __slots__ = ("_data", "parts")

    def __init__(self, data: _Data) -> None:
        self._data = data
        self.parts = _parts_of(data)

    def data(self) -> dict[str, Any]:
        """The subset as plain dictionaries (absent keys absent), for the generic readers."""
        subset: dict[str, Any] = msgspec.to_builtins(self._data)
        return subset


def decode_look(payload: str) -> DecodedLook | None:
    """The fast path, or None when the payload does not have the expected shape (read it
    whole)."""
    try:
        data = _DECODER.decode(payload).data
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return DecodedLook(data) if data.repeats is UNSET else None


def look_data(payload: str) -> dict[str, Any] | None:
    """The part of an analysis entry's data the pictures and the summary read, as plain
    dictionaries; None when the payload does not have the expected shape (read it whole)."""
    decoded = decode_look(payload)
    return decoded.data() if decoded is not None else None


def _parts_of(data: _Data) -> LookParts | None:
    """:func:`~analyzer.api.ui.charts.look_parts`, read off the decoded structs instead of the
    dictionaries (no dictionary is built for a look nobody summarises); equal to it on every
    shape the decoder accepts (tested)."""
    source: _Result | _Data = data.result if isinstance(data.result, _Result) else data
    if not isinstance(source.verdict, str):
        return None
    metrics: dict[str, MetricAtLook] = {}
    for m in source.metrics or ():
        statistic = m.statistic if isinstance(m.statistic, _Statistic) else _NO_STATISTIC
        estimate = m.estimate if isinstance(m.estimate, _Estimate) else _NO_ESTIMATE
        metrics[_text(m.name)] = MetricAtLook(
            verdict=_text(m.verdict),
            e_value=number(statistic.e_value),
            threshold=number(statistic.threshold),
            interval=interval(mapping(estimate.intervals).get("rate")),
            tolerance=number(statistic.tolerance),
            kind=_text(m.kind),
        )
    return LookParts(verdict=source.verdict, score=number(source.score), metrics=metrics)


def _text(value: Any) -> str:
    """``str(m.get(key, ""))`` of the dictionary reader: absent is "", a null is "None"."""
    return "" if value is UNSET else str(value)
