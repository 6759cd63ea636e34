"""Pure conversions from Prometheus series to the judge's counts.

Nothing here does I/O: every function takes literal series and returns numbers, or raises
:class:`UnusableData` with the reason the data cannot be judged (the source turns it into a
``MissingObservation``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from analyzer.metrics.prometheus.client import Series


class UnusableData(Exception):  # noqa: N818 - a reason carrier, not an error of ours
    """The source answered, but the answer cannot be judged (empty, NaN, partial, stale...)."""


def parse_le(raw: str) -> float:
    """Map a ``le`` label value (``"0.005"``, ``"1e+03"``, ``"+Inf"``) to a float bound."""
    try:
        value = float(raw)
    except ValueError as exc:
        raise UnusableData(f"bucket bound le={raw!r} is not a number") from exc
    if math.isnan(value) or value == -math.inf:
        raise UnusableData(f"bucket bound le={raw!r} is not a valid upper bound")
    return value


def counter_increase(points: Sequence[tuple[float, float]], start: float) -> float:
    """Exact increase of one counter series after ``start``, counting resets.

    ``points`` are time-ordered and may begin before ``start``: the last point at or before
    ``start`` is the reference. A series with no point before ``start`` was born inside the
    window and counts from zero (a new canary pod's counters start at 0). A value lower than its
    predecessor is a reset (pod restart): the counter restarted from zero, so the new value is
    all increase. Unlike PromQL's ``increase()`` nothing is extrapolated, so counts stay whole.
    """
    previous = 0.0
    total = 0.0
    for ts, value in points:
        if math.isnan(value):
            raise UnusableData("a counter sample is NaN")
        if ts <= start:
            previous = value
            continue
        total += value - previous if value >= previous else value
        previous = value
    return total


def newest_sample(series: Iterable[Series]) -> float | None:
    return max((s.points[-1][0] for s in series if s.points), default=None)


def check_fresh(series: Sequence[Series], *, end: float, staleness: float, what: str) -> None:
    """Refuse evidence whose newest sample is older than ``staleness`` before the window end."""
    newest = newest_sample(series)
    if newest is None:
        raise UnusableData(f"no samples for {what}")
    if end - newest > staleness:
        raise UnusableData(
            f"stale data for {what}: newest sample {end - newest:.0f} s before the window end"
        )


def sum_increases_by(
    series: Iterable[Series], label: str | None, *, start: float
) -> dict[str, float]:
    """Sum the exact increases of ``series`` grouped by ``label`` (``None``: one group ``""``)."""
    sums: dict[str, float] = defaultdict(float)
    for s in series:
        key = "" if label is None else s.labels.get(label)
        if key is None:
            raise UnusableData(f"a series has no {label!r} label: {s.labels}")
        sums[key] += counter_increase(s.points, start)
    return dict(sums)


def sum_values_by(series: Iterable[Series], label: str | None) -> dict[str, float]:
    """Sum instant-vector values grouped by ``label`` (for ``increase`` mode)."""
    sums: dict[str, float] = defaultdict(float)
    for s in series:
        key = "" if label is None else s.labels.get(label)
        if key is None:
            raise UnusableData(f"a series has no {label!r} label: {s.labels}")
        value = s.points[-1][1]
        if math.isnan(value) or math.isinf(value):
            raise UnusableData(f"non-finite value {value} for {s.labels}")
        sums[key] += value
    return dict(sums)


def per_bucket_counts(
    cumulative_by_le: Mapping[str, float], *, strict: bool
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Convert cumulative-over-``le`` counts to per-bucket counts with float bounds.

    ``strict`` (exact counts): a cumulative count that decreases with ``le`` means
    series are missing or cover different spans, i.e. a partial histogram, and is refused.
    Otherwise (extrapolated ``increase()`` counts) small decreases are rounding noise and are
    flattened the way ``histogram_quantile`` does.
    """
    if not cumulative_by_le:
        raise UnusableData("no bucket series")
    by_bound = sorted((parse_le(le), count) for le, count in cumulative_by_le.items())
    bounds = tuple(b for b, _ in by_bound)
    if len(set(bounds)) != len(bounds):
        raise UnusableData("duplicate bucket bounds (the same le spelled two ways)")
    if not math.isinf(bounds[-1]):
        raise UnusableData('no le="+Inf" bucket: partial histogram')
    counts: list[int] = []
    running = 0
    for bound, raw in by_bound:
        cumulative = round(raw)
        if cumulative < running:
            if strict:
                raise UnusableData(f"partial histogram: cumulative count falls at le={bound:g}")
            cumulative = running
        counts.append(cumulative - running)
        running = cumulative
    return bounds, tuple(counts)


# --- exact increases from the window's endpoints ----------------------------------------------

PART_LABEL = "canary_analyzer_part"


def endpoint_query(selector: str, window_seconds: int, lookback_seconds: int) -> str:
    """One query for each series' value at the end, at the start, and its resets.

    The start value is ``selector offset W`` (Prometheus' lookback finds the last sample at or
    before the start, like the raw read's reference point). Resets are counted over the window
    plus the lookback, so a reset between the reference sample and the window cannot hide.
    """
    resets_range = window_seconds + lookback_seconds
    return (
        f'label_replace({selector}, "{PART_LABEL}", "end", "", "")'
        f' or label_replace({selector} offset {window_seconds}s, "{PART_LABEL}", "start", "", "")'
        f' or label_replace(resets({selector}[{resets_range}s]), "{PART_LABEL}", "resets", "", "")'
    )


def _series_key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    # The reader's own tag labels are not part of a series' identity.
    return tuple(
        sorted(
            (k, v)
            for k, v in labels.items()
            if k != "__name__" and not k.startswith("canary_analyzer_")
        )
    )


def increases_from_endpoints(
    series: Iterable[Series], label: str | None
) -> dict[str, float] | None:
    """Exact increases as end − start per series, or ``None`` when that would not be exact.

    Not exact (so the caller reads the raw samples instead): any counter reset, or any series
    that existed earlier in the window but has no value at its end (a pod that went away).
    A series without a start value was born inside the window and counts from zero.
    """
    parts: dict[str, dict[tuple[tuple[str, str], ...], Series]] = defaultdict(dict)
    for s in series:
        parts[s.labels.get(PART_LABEL, "")][_series_key(s.labels)] = s
    ends, starts, resets = parts["end"], parts["start"], parts["resets"]
    if not ends:
        return None
    if any(s.points[-1][1] > 0 for s in resets.values()):
        return None
    if any(key not in ends for key in (*starts, *resets)):
        return None
    sums: dict[str, float] = defaultdict(float)
    for key, s in ends.items():
        end_value = s.points[-1][1]
        start_value = starts[key].points[-1][1] if key in starts else 0.0
        if math.isnan(end_value) or math.isnan(start_value):
            raise UnusableData("a counter sample is NaN")
        if end_value < start_value:
            return None
        group = "" if label is None else dict(key).get(label)
        if group is None:
            raise UnusableData(f"a series has no {label!r} label: {dict(key)}")
        sums[group] += end_value - start_value
    return dict(sums)
