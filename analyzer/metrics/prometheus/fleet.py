"""Counts of a fleet's rate metrics from Prometheus: one query per metric for every model.

For each metric one instant query returns, per model, the events and totals of the window since
the wave's upgrade and of the mirror window before it, four ``sum by (<model label>)
(increase(...))`` parts told apart by a tag label::

    label_replace(sum by (model) (increase(errors{…, model=~"a|b"}[600s])),
                  "tag", "after-events", "", "")
    or label_replace(sum by (model) (increase(requests{…}[600s] offset 900s)),
                  "tag", "before-total", "", "")
    or …

Model names are validated (DNS-1123) before they are put in the matcher and regex-escaped in
it; label values that come back are matched against the names asked for, so a series of a model
outside the fleet (or an odd label value) is never judged. ``increase()`` extrapolates to the
window's edges, so counts are rounded and events capped at the total.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.fleet import FleetRateQuery, RateWindows
from analyzer.domain.model import ModelRef
from analyzer.metrics.prometheus.client import PrometheusClient
from analyzer.metrics.templates import render

TAG = "canary_analyzer_tag"
_PARTS = ("after-events", "after-total", "before-events", "before-total")
_GOOD_PARTS = ("after-good", "after-total", "before-good", "before-total")
_BARE_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _with_models(selector: str, label: str, models: Sequence[str], field: str) -> str:
    """``selector`` with a ``label=~"m1|m2"`` matcher added (names already validated)."""
    alternatives = "|".join(m.replace(".", "\\\\.") for m in models)
    matcher = f'{label}=~"{alternatives}"'
    text = selector.strip()
    if _BARE_METRIC.match(text):
        return f"{text}{{{matcher}}}"
    if text.endswith("}") and text.count("{") == 1 and _BARE_METRIC.match(text.split("{")[0]):
        inner = text[text.index("{") + 1 : -1].strip()
        return f"{text[: text.index('{')]}{{{inner + ',' if inner else ''}{matcher}}}"
    raise InvalidInputError(
        "a fleet counter selector must be a metric name with optional matchers, "
        'e.g. modelmesh_errors_total{namespace="{namespace}"}',
        field=field,
    )


def fleet_query(
    query: FleetRateQuery,
    *,
    namespace: str,
    models: Sequence[str],
    window_seconds: int,
    offset_seconds: int,
) -> str:
    """The one PromQL query of a metric (exposed for tests and the benchmark). A latency share
    (``query.good``) asks for the good requests and the total: the source subtracts."""
    for model in models:
        ModelRef(namespace=namespace, name=model)  # validates both (DNS-1123)
    if window_seconds < 1 or offset_seconds < window_seconds:
        raise InvalidInputError(
            "the window must be positive and the mirror window must end before the after "
            "window starts",
            field="window",
        )
    values = {"namespace": namespace}
    field, counted = ("events", query.events) if query.events is not None else ("good", query.good)
    assert counted is not None  # FleetRateQuery holds exactly one of them
    events = _with_models(render(counted, values, field=field), query.model_label, models, field)
    total = _with_models(
        render(query.total, values, field="total"), query.model_label, models, "total"
    )
    parts = []
    for tag in _PARTS if query.events is not None else _GOOD_PARTS:
        selector = total if tag.endswith("total") else events
        offset = f" offset {offset_seconds}s" if tag.startswith("before") else ""
        inner = f"sum by ({query.model_label}) (increase({selector}[{window_seconds}s]{offset}))"
        parts.append(f'label_replace({inner}, "{TAG}", "{tag}", "", "")')
    return " or ".join(parts)


class PrometheusFleetSource:
    """Reads a fleet's rate metrics from Prometheus (one query per metric per look).

    ``client`` is shared with the rest of the service (retries, timeouts). Errors propagate as
    the client raises them (:class:`RetryableError`, :class:`FatalIntegrationError`); the fleet
    engine turns them into an ``error`` look that changes nothing.
    """

    def __init__(self, client: PrometheusClient) -> None:
        self._client = client

    def read(
        self,
        queries: Sequence[FleetRateQuery],
        *,
        namespace: str,
        models: Sequence[str],
        before_end: datetime,
        after_start: datetime,
        at: datetime,
    ) -> dict[str, dict[str, RateWindows]]:
        window = math.floor((at - after_start).total_seconds())
        offset = math.ceil((at - before_end).total_seconds())
        return {
            q.name: self._read_one(q, namespace, models, window=window, offset=offset, at=at)
            for q in queries
        }

    def _read_one(
        self,
        query: FleetRateQuery,
        namespace: str,
        models: Sequence[str],
        *,
        window: int,
        offset: int,
        at: datetime,
    ) -> dict[str, RateWindows]:
        promql = fleet_query(
            query,
            namespace=namespace,
            models=models,
            window_seconds=window,
            offset_seconds=offset,
        )
        wanted = set(models)
        found: dict[str, dict[str, float]] = {}
        for series in self._client.instant(promql, at):
            model = series.labels.get(query.model_label, "")
            tag = series.labels.get(TAG, "")
            value = series.points[-1][1] if series.points else math.nan
            if model in wanted and tag in (*_PARTS, *_GOOD_PARTS) and math.isfinite(value):
                found.setdefault(model, {})[tag] = max(value, 0.0)
        good = query.good is not None
        return {model: _windows(parts, good=good) for model, parts in found.items()}


def _windows(parts: Mapping[str, float], *, good: bool = False) -> RateWindows:
    after_total = float(round(parts.get("after-total", 0.0)))
    before_total = float(round(parts.get("before-total", 0.0)))

    def bad(when: str, total: float) -> float:
        if good:  # a latency share: the requests beyond the bound (no bucket: none within it)
            within = float(round(parts.get(f"{when}-good", 0.0)))
            return min(max(total - within, 0.0), total)
        return min(float(round(parts.get(f"{when}-events", 0.0))), total)

    return RateWindows(
        after_events=bad("after", after_total),
        after_total=after_total,
        before_events=bad("before", before_total),
        before_total=before_total,
    )
