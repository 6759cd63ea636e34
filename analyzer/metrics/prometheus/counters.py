"""Counter increases over a window, for several selectors in as few queries as possible.

In ``exact`` mode every selector of one observation (both revisions; events and totals) goes
into **one** instant query of window endpoints and resets, each part tagged with a label, so a
look costs one round trip per metric. A tag whose endpoints are not exact (a counter reset, a
vanished series) is re-read from its raw samples. ``increase`` mode asks Prometheus'
``increase()`` per selector.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.metrics.base import CounterMode, TimeWindow
from analyzer.metrics.prometheus.client import PrometheusClient, Series
from analyzer.metrics.prometheus.convert import (
    check_fresh,
    endpoint_query,
    increases_from_endpoints,
    sum_increases_by,
    sum_values_by,
)

TAG_LABEL = "canary_analyzer_tag"

Increases = dict[str, float] | None
"""Increases grouped by a label's value (``""`` when ungrouped); ``None``: no series at all."""


@dataclass(frozen=True, slots=True)
class CounterRequest:
    """One selector to read: ``tag`` names it in the answer (a fixed, safe string)."""

    tag: str
    selector: str
    label: str | None
    what: str  # for messages: which revision and which counter


class CounterReader:
    def __init__(self, client: PrometheusClient, *, lookback: int, staleness: int) -> None:
        self._client = client
        self._lookback = lookback
        self._staleness = staleness

    def read(
        self, mode: CounterMode, requests: Sequence[CounterRequest], window: TimeWindow
    ) -> dict[str, Increases]:
        if mode is CounterMode.INCREASE:
            return {r.tag: self._extrapolated(r, window) for r in requests}
        tagged = " or ".join(
            f"label_replace({self._endpoints(r.selector, window)}, "
            f'"{TAG_LABEL}", "{r.tag}", "", "")'
            for r in requests
        )
        by_tag: dict[str, list[Series]] = defaultdict(list)
        for series in self._client.instant(tagged, window.end):
            by_tag[series.labels.get(TAG_LABEL, "")].append(series)
        out: dict[str, Increases] = {}
        for request in requests:
            endpoints = by_tag.get(request.tag, [])
            # No endpoint series means no sample anywhere in the window: nothing to re-read.
            exact = increases_from_endpoints(endpoints, request.label) if endpoints else None
            out[request.tag] = (
                exact if exact is not None or not endpoints else self._raw(request, window)
            )
        return out

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
        return sum_increases_by(raw, request.label, start=window.start.timestamp())
