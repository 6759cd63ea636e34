"""Pure conversions from Prometheus series to the judge's counts.

Nothing here does I/O: every function takes literal series and returns numbers, or raises
:class:`UnusableData` with the reason the data cannot be judged (the source turns it into a
``MissingObservation``).
"""

from __future__ import annotations

import functools
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


def endpoint_query(selector: str, window: int, lookback: int, staleness: int) -> str:
    """One query for every series' window endpoints, its resets, and the selector's freshness.

    * ``last``: the last sample inside the window (a pod that went away mid-window keeps it);
    * ``ref``: the last sample in the ``lookback`` before the window start, the reference the
      increase is counted from (as in the raw read);
    * ``resets``: counter resets over the window and the lookback, so a reset between the
      reference and the window cannot hide;
    * ``alive``: how many series have a sample in the last ``staleness`` seconds.
    """
    parts = {
        "last": f"last_over_time({selector}[{window}s])",
        "ref": f"last_over_time({selector}[{lookback}s] offset {window}s)",
        "resets": f"resets({selector}[{window + lookback}s])",
        "alive": f"count(last_over_time({selector}[{staleness}s]))",
    }
    return " or ".join(
        f'label_replace({expr}, "{PART_LABEL}", "{part}", "", "")' for part, expr in parts.items()
    )


SeriesKey = tuple[tuple[str, str], ...]


def series_key(labels: Mapping[str, str]) -> SeriesKey:
    """A series' identity: its labels without the name and the reader's own tag labels."""
    return _series_key(tuple(labels.items()))


@functools.lru_cache(maxsize=8192)
def _series_key(items: tuple[tuple[str, str], ...]) -> SeriesKey:
    # cached: the same series come back at every look (Prometheus sends their labels in the
    # same order each time), and filtering and sorting them was a tenth of a look's CPU
    return tuple(
        sorted((k, v) for k, v in items if k != "__name__" and not k.startswith("canary_analyzer_"))
    )


def increases_from_endpoints(
    series: Iterable[Series], label: str | None
) -> dict[str, float] | None:
    """Exact increases as last − reference per series, or ``None`` when that is not exact.

    ``None`` (the caller then reads the raw samples, which also explain *why*): a counter reset,
    a value lower than its reference, no series with a sample inside the window, or no fresh
    series at the window end. A series without a reference was born inside the window and counts
    from zero; one with a reference but no sample in the window contributes nothing.
    """
    parts: dict[str, dict[tuple[tuple[str, str], ...], Series]] = defaultdict(dict)
    for s in series:
        parts[s.labels.get(PART_LABEL, "")][series_key(s.labels)] = s
    last, ref = parts["last"], parts["ref"]
    if not last or not parts["alive"]:
        return None
    if any(s.points[-1][1] > 0 for s in parts["resets"].values()):
        return None
    sums: dict[str, float] = defaultdict(float)
    for key, s in last.items():
        last_value = s.points[-1][1]
        ref_value = ref[key].points[-1][1] if key in ref else 0.0
        if math.isnan(last_value) or math.isnan(ref_value):
            raise UnusableData("a counter sample is NaN")
        if last_value < ref_value:
            return None
        group = "" if label is None else dict(key).get(label)
        if group is None:
            raise UnusableData(f"a series has no {label!r} label: {dict(key)}")
        sums[group] += last_value - ref_value
    return dict(sums)


def endpoints_by_series(
    series: Iterable[Series],
) -> tuple[dict[SeriesKey, float], dict[SeriesKey, float], dict[SeriesKey, Mapping[str, str]]]:
    """The reference and last values of an exact endpoint read, per series (and its labels):
    what an incremental read remembers (``counters.CounterReader``)."""
    refs: dict[SeriesKey, float] = {}
    lasts: dict[SeriesKey, float] = {}
    labels: dict[SeriesKey, Mapping[str, str]] = {}
    for s in series:
        part = s.labels.get(PART_LABEL, "")
        if part not in ("ref", "last"):
            continue
        key = series_key(s.labels)
        (refs if part == "ref" else lasts)[key] = s.points[-1][1]
        labels.setdefault(key, s.labels)
    return refs, lasts, labels
