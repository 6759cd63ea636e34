"""Counter increases over a window, for several selectors in as few queries as possible.

In ``exact`` mode every selector of a read goes into **one** instant query of window endpoints
and resets, each part tagged with a label. A read holds one metric's selectors (both revisions;
events and totals) or, through ``PrometheusSource.observe_many``, every counter metric of a look,
so a look costs one counter round trip in all (two when some selectors are remembered and others
read whole). A tag whose endpoints are not exact (a counter reset, a vanished series) is re-read
from its raw samples. ``increase`` mode asks Prometheus' ``increase()`` per selector.

**One request's trouble is its own.** :meth:`CounterReader.read_each` returns a request's
unusable data (stale, NaN, no label) or its failed raw read as that request's value, so a batch
of several metrics loses only the metric concerned. Requests share a ``group`` (one metric's):
after a group's first failure its later requests are not read (that failure is the group's
answer, as a per-metric read stops at it). A raw read that fails after its retries fails every
later raw read of the same call unasked: the look has a deadline, and a Prometheus that is down
for one is down for all. A failure of the tagged query itself is raised: it concerns them all.

**Incremental looks** (issue 20). Repeated looks of one session share the window's start and
only move its end, and an exact increase is ``last − reference`` per series: the reference
(the last sample before the start) never changes, and neither does a value already read. So the
reader remembers, per selector and window start, each series' reference and last value at the
previous look's end, and the next look asks Prometheus only for what moved since: the last
sample of each series over the *new* interval (over ``staleness`` when the interval is shorter:
those samples then also prove freshness), the resets over it (plus ``staleness`` before it, so a
restart between the previous sample and the first new one is seen) and, after a longer gap, the
freshness check. A Prometheus range selector costs what it covers, so a look's cost no longer
grows with the window (a 6-hour bake read 6 hours of samples at every look before). A reset, a
value below the remembered one, or no memory (first look, another replica or worker, a restart,
the memory's bound) reads the whole window as before: the answer is the same exact count either
way.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from analyzer.domain.errors import IntegrationError, RetryableError
from analyzer.metrics.base import CounterMode, TimeWindow
from analyzer.metrics.prometheus.client import PrometheusClient, Series
from analyzer.metrics.prometheus.convert import (
    PART_LABEL,
    SeriesKey,
    UnusableData,
    check_fresh,
    counter_increase,
    endpoint_query,
    endpoints_by_series,
    increases_from_endpoints,
    series_key,
    sum_increases_by,
    sum_values_by,
)

TAG_LABEL = "canary_analyzer_tag"

Increases = dict[str, float] | None
"""Increases grouped by a label's value (``""`` when ungrouped); ``None``: no series at all."""

ReadFailure = UnusableData | IntegrationError
"""Why one request has no increases: its data cannot be judged, or its raw read failed."""


@dataclass(frozen=True, slots=True)
class CounterRequest:
    """One selector to read: ``tag`` names it in the answer (a fixed, safe string); requests
    of one ``group`` (one metric's) stop at the group's first failure."""

    tag: str
    selector: str
    label: str | None
    what: str  # for messages: which revision and which counter
    group: str = ""


@dataclass(frozen=True, slots=True)
class _Memory:
    """What one selector's series showed at ``end``: reference and last value per series."""

    end: datetime
    refs: Mapping[SeriesKey, float]
    lasts: Mapping[SeriesKey, float]
    labels: Mapping[SeriesKey, Mapping[str, str]]


class CounterReader:
    def __init__(
        self,
        client: PrometheusClient,
        *,
        lookback: int,
        staleness: int,
        memory_size: int = 20_000,
    ) -> None:
        self._client = client
        self._lookback = lookback
        self._staleness = staleness
        # (selector, label, window start) -> what the last look saw; least recently used out
        self._memory: OrderedDict[tuple[str, str | None, datetime], _Memory] = OrderedDict()
        self._memory_size = memory_size
        self._lock = threading.Lock()
        self.incremental_reads = 0  # how many selectors were read incrementally (tests, bench)

    def read(
        self, mode: CounterMode, requests: Sequence[CounterRequest], window: TimeWindow
    ) -> dict[str, Increases]:
        """Every request's increases; raises the first failure in request order."""
        if mode is CounterMode.INCREASE:
            return {r.tag: self._extrapolated(r, window) for r in requests}
        return first_failure_raised(requests, self.read_each(requests, window))

    def read_each(
        self, requests: Sequence[CounterRequest], window: TimeWindow
    ) -> dict[str, Increases | ReadFailure]:
        """Every request's exact increases or its own failure (see the module docstring);
        raises ``IntegrationError`` when the tagged query itself fails. Tags must be unique."""
        known = {r.tag: m for r in requests if (m := self._recall(r, window)) is not None}
        out: dict[str, Increases | ReadFailure] = {}
        if known:
            out |= self._read_since(requests, known, window)
        rest = [r for r in requests if r.tag not in out]
        if rest:
            out |= self._read_whole(rest, window)
        return out

    def _read_whole(
        self, requests: Sequence[CounterRequest], window: TimeWindow
    ) -> dict[str, Increases | ReadFailure]:
        by_tag = self._by_tag(
            ((r.tag, self._endpoints(r.selector, window)) for r in requests), window
        )
        out: dict[str, Increases | ReadFailure] = {}
        failed: dict[str, ReadFailure] = {}  # by group: its first failure
        down: list[RetryableError] = []  # a raw read that failed after its retries
        for request in requests:
            if request.group in failed:
                out[request.tag] = failed[request.group]
                continue
            try:
                out[request.tag] = self._whole_one(
                    request, by_tag.get(request.tag, []), window, down
                )
            except (UnusableData, IntegrationError) as exc:
                out[request.tag] = failed[request.group] = exc
        return out

    def _whole_one(
        self,
        request: CounterRequest,
        endpoints: Sequence[Series],
        window: TimeWindow,
        down: list[RetryableError],
    ) -> Increases:
        """One request's increases from its endpoints, else from its raw samples."""
        # No endpoint series means no sample anywhere in the window: nothing to re-read.
        exact = increases_from_endpoints(endpoints, request.label) if endpoints else None
        if exact is not None:
            self._remember(request, window, endpoints)
        if exact is not None or not endpoints:
            return exact
        if down:
            raise down[0]
        try:
            return self._raw(request, window)
        except RetryableError as exc:
            down.append(exc)
            raise

    def _read_since(
        self,
        requests: Sequence[CounterRequest],
        known: Mapping[str, _Memory],
        window: TimeWindow,
    ) -> dict[str, Increases]:
        """The increases of the remembered selectors from what moved since their last look;
        a selector whose new samples are not exact (a reset) is left out (read whole)."""
        by_tag = self._by_tag(
            ((r.tag, self._moved(r.selector, known[r.tag], window)) for r in requests
             if r.tag in known),
            window,
        )  # fmt: skip
        out: dict[str, Increases] = {}
        for request in requests:
            memory = known.get(request.tag)
            if memory is None:
                continue
            moved = by_tag.get(request.tag, [])
            covered = _since(memory, window) <= self._staleness  # no "alive" part: see _moved_query
            found = _increases_since(memory, moved, request.label, covered=covered)
            if found is None:
                self._forget(request, window)
                continue
            increases, updated = found
            self._store(request, window, replace_end(memory, window.end, updated))
            with self._lock:
                self.incremental_reads += 1
            out[request.tag] = increases
        return out

    def _by_tag(
        self, parts: Iterable[tuple[str, str]], window: TimeWindow
    ) -> dict[str, list[Series]]:
        """One instant query of every ``(tag, expression)`` part, each series tagged with its
        part's tag; the answer's series by tag."""
        tagged = " or ".join(
            f'label_replace({expr}, "{TAG_LABEL}", "{tag}", "", "")' for tag, expr in parts
        )
        by_tag: dict[str, list[Series]] = defaultdict(list)
        for series in self._client.instant(tagged, window.end):
            by_tag[series.labels.get(TAG_LABEL, "")].append(series)
        return by_tag

    def _moved(self, selector: str, memory: _Memory, window: TimeWindow) -> str:
        return _moved_query(selector, _since(memory, window), self._staleness)

    # -- memory ------------------------------------------------------------------------------
    @staticmethod
    def _key(request: CounterRequest, window: TimeWindow) -> tuple[str, str | None, datetime]:
        return (request.selector, request.label, window.start)

    def _recall(self, request: CounterRequest, window: TimeWindow) -> _Memory | None:
        with self._lock:
            memory = self._memory.get(self._key(request, window))
        # only a later end of the same window: an earlier or equal one is read whole
        return memory if memory is not None and memory.end < window.end else None

    def _remember(
        self, request: CounterRequest, window: TimeWindow, endpoints: Sequence[Series]
    ) -> None:
        refs, lasts, labels = endpoints_by_series(endpoints)
        memory = _Memory(end=window.end, refs=refs, lasts=lasts, labels=labels)
        self._store(request, window, memory)

    def _store(self, request: CounterRequest, window: TimeWindow, memory: _Memory) -> None:
        key = self._key(request, window)
        with self._lock:
            self._memory[key] = memory
            self._memory.move_to_end(key)
            while len(self._memory) > self._memory_size:
                self._memory.popitem(last=False)

    def _forget(self, request: CounterRequest, window: TimeWindow) -> None:
        with self._lock:
            self._memory.pop(self._key(request, window), None)

    def _endpoints(self, selector: str, window: TimeWindow) -> str:
        return endpoint_query(selector, window.seconds, self._lookback, self._staleness)

    def _extrapolated(self, request: CounterRequest, window: TimeWindow) -> Increases:
        by = f"sum by ({request.label}) " if request.label else "sum "
        promql = f"{by}(increase({request.selector}[{window.seconds}s]))"
        series = self._client.instant(promql, window.end)
        return sum_values_by(series, request.label) if series else None

    def _raw(self, request: CounterRequest, window: TimeWindow) -> Increases:
        promql = f"{request.selector}[{window.seconds + self._lookback}s]"
        raw = self._client.instant(promql, window.end)
        if not raw:
            return None
        check_fresh(raw, end=window.end.timestamp(), staleness=self._staleness, what=request.what)
        start = window.start.timestamp()
        increases = sum_increases_by(raw, request.label, start=start)
        # Remembered as if each series had counted from last − increase: later looks add what
        # moved since (exact until the next reset, which sends them back here).
        refs: dict[SeriesKey, float] = {}
        lasts: dict[SeriesKey, float] = {}
        labels: dict[SeriesKey, Mapping[str, str]] = {}
        for series in raw:
            key, last = series_key(series.labels), series.points[-1][1]
            labels[key] = series.labels
            if series.points[-1][0] <= start:
                refs[key] = last
            else:
                lasts[key] = last
                refs[key] = last - counter_increase(series.points, start)
        self._store(request, window, _Memory(end=window.end, refs=refs, lasts=lasts,
                                             labels=labels))  # fmt: skip
        return increases


def first_failure_raised(
    requests: Sequence[CounterRequest], read: Mapping[str, Increases | ReadFailure]
) -> dict[str, Increases]:
    """``requests``' increases by tag, or the first failure among them (in their order)."""
    out: dict[str, Increases] = {}
    for request in requests:
        value = read[request.tag]
        if isinstance(value, Exception):
            raise value
        out[request.tag] = value
    return out


@functools.lru_cache(maxsize=1024)
def _moved_query(selector: str, since: int, staleness: int) -> str:
    """What moved over the last ``since`` seconds (cached: looks at a steady interval ask the
    same text each time).

    When the interval is no longer than ``staleness`` (Argo's and the driver's usual looks),
    the series' last samples are read over ``staleness`` instead, and any of them also says the
    selector is fresh: one selector evaluation fewer per look, a third of Prometheus' work on
    it. A last sample older than the interval is at or before the previous look's end, so it is
    the value already remembered (or the reference of a series with none in the window): it
    adds nothing.
    """
    parts = {
        "last": f"last_over_time({selector}[{max(since, staleness)}s])",
        # staleness before the interval too: a drop between the previous sample and the first
        # new one is a reset as well
        "resets": f"resets({selector}[{since + staleness}s])",
    }
    if since > staleness:
        parts["alive"] = f"count(last_over_time({selector}[{staleness}s]))"
    return " or ".join(
        f'label_replace({expr}, "{PART_LABEL}", "{part}", "", "")' for part, expr in parts.items()
    )


def replace_end(
    memory: _Memory, end: datetime, lasts: Mapping[SeriesKey, tuple[float, Mapping[str, str]]]
) -> _Memory:
    """``memory`` moved to ``end`` with the series' new last values (new series included)."""
    merged = dict(memory.lasts)
    labels = dict(memory.labels)
    for key, (value, series_labels) in lasts.items():
        merged[key] = value
        labels.setdefault(key, series_labels)
    return _Memory(end=end, refs=memory.refs, lasts=merged, labels=labels)


def _since(memory: _Memory, window: TimeWindow) -> int:
    """Whole seconds from the remembered look's end to this one's (at least one)."""
    return max(1, int((window.end - memory.end).total_seconds()))


def _increases_since(
    memory: _Memory, moved: Sequence[Series], label: str | None, *, covered: bool
) -> tuple[dict[str, float], dict[SeriesKey, tuple[float, Mapping[str, str]]]] | None:
    """The whole window's increases from the remembered values and what moved since; None when
    that is not exact (a reset, a value below the remembered one, nothing fresh). ``covered``:
    the last samples were read over the staleness, so any of them says the data are fresh."""
    parts: dict[str, list[Series]] = defaultdict(list)
    for series in moved:
        parts[series.labels.get(PART_LABEL, "")].append(series)
    if not parts["alive"] and not (covered and parts["last"]):
        return None  # nothing fresh
    if any(s.points[-1][1] > 0 for s in parts["resets"]):
        return None
    new: dict[SeriesKey, tuple[float, Mapping[str, str]]] = {}
    for series in parts["last"]:
        key = series_key(series.labels)
        value = series.points[-1][1]
        if math.isnan(value) or value < memory.lasts.get(key, memory.refs.get(key, 0.0)):
            return None
        new[key] = (value, series.labels)
    sums: dict[str, float] = defaultdict(float)
    for key in set(memory.lasts) | set(new):
        last = new[key][0] if key in new else memory.lasts[key]
        labels = new[key][1] if key in new else memory.labels[key]
        group = "" if label is None else labels.get(label)
        if group is None:
            return None  # the whole read names the series without the label
        sums[group] += last - memory.refs.get(key, 0.0)
    return dict(sums), new
