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


class _Payload(msgspec.Struct):
    data: _Data


_DECODER = msgspec.json.Decoder(_Payload)


def look_data(payload: str) -> dict[str, Any] | None:
    """The part of an analysis entry's data the pictures and the summary read, as plain
    dictionaries; None when the payload does not have the expected shape (read it whole)."""
    try:
        decoded = _DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    data: dict[str, Any] = msgspec.to_builtins(decoded.data)
    return data
