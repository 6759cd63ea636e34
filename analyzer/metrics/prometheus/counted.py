"""Counter metrics as plans: which counters to read, and the observation made from what was read.

A :class:`CounterPlan` is pure: its ``requests`` name the selectors (``counters.CounterRequest``)
and its ``build`` turns their increases into the metric's observation, or raises
:class:`~analyzer.metrics.prometheus.convert.UnusableData` with the reason it cannot be judged.
Splitting the read from the arithmetic lets ``PrometheusSource`` read one metric's counters on
their own (``observe``) or every counter metric of a look in one query (``observe_many``), and
build each observation the same way from either read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import (
    CategoricalObservation,
    EventCount,
    HistogramObservation,
    Observation,
    PairedObservation,
    ProportionObservation,
)
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import MetricKind
from analyzer.metrics.base import CounterMode, MetricQuery, RenderedArm
from analyzer.metrics.prometheus.convert import UnusableData, per_bucket_counts
from analyzer.metrics.prometheus.counters import CounterRequest, Increases

COUNTED = frozenset(
    {MetricKind.HISTOGRAM, MetricKind.PROPORTION, MetricKind.CATEGORICAL, MetricKind.PAIRED}
)
"""The kinds whose evidence is counter increases."""

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Reads = Mapping[str, Increases]
"""A plan's increases by its requests' tags."""


@dataclass(frozen=True, slots=True)
class CounterPlan:
    """One counter metric's reads, and how its observation is built from them."""

    requests: tuple[CounterRequest, ...]
    build: Callable[[Reads], Observation]


def check_label_value(value: str, field: str) -> None:
    if not _LABEL_VALUE.fullmatch(value):
        raise InvalidInputError(
            f"{value!r} cannot be a label value in a query (letters, digits, '_', '.', ':', '-')",
            field=field,
        )


def with_matcher(selector: str, label: str, value: str) -> str:
    """``selector`` with ``label="value"`` added to its matchers (both already checked)."""
    if not _LABEL_NAME.fullmatch(label):
        raise InvalidInputError(f"{label!r} is not a label name", field="query.incumbent_label")
    check_label_value(value, "categories")
    text = selector.rstrip()
    if text.endswith("}"):
        inner = text[text.rindex("{") + 1 : -1].strip()
        head = text[: text.rindex("{")]
        return f'{head}{{{inner + "," if inner else ""}{label}="{value}"}}'
    return f'{text}{{{label}="{value}"}}'


def required(text: str | None, name: str, kind: MetricKind) -> str:
    if text is None:
        raise InvalidInputError(f"a {kind} metric needs query.{name}", field=f"query.{name}")
    return text


def check_query(spec: MetricSpec, query: MetricQuery) -> None:
    """Refuse a query without what ``spec.kind`` needs (``InvalidInputError``)."""
    kind = spec.kind
    if kind is MetricKind.PROPORTION:
        required(query.events, "events", kind)
        required(query.total, "total", kind)
    elif kind in (MetricKind.SAMPLES, MetricKind.THRESHOLD):
        required(query.expr, "expr", kind)
    else:
        required(query.selector, "selector", kind)
    if kind in (MetricKind.CATEGORICAL, MetricKind.PAIRED):
        required(query.category_label, "category_label", kind)
    if kind is MetricKind.PAIRED:
        required(query.incumbent_label, "incumbent_label", kind)
        for value in spec.categories:
            check_label_value(value, "categories")


def counter_plan(
    spec: MetricSpec, query: MetricQuery, base: RenderedArm, cand: RenderedArm
) -> CounterPlan:
    """The plan of a counter metric whose query passed :func:`check_query`."""
    kind = spec.kind
    if kind is MetricKind.HISTOGRAM:
        return _histogram(query, base, cand)
    if kind is MetricKind.PROPORTION:
        return _proportion(base, cand)
    if kind is MetricKind.CATEGORICAL:
        return _categorical(spec, query, base, cand)
    if kind is MetricKind.PAIRED:
        return _paired(spec, query, cand)
    raise ValueError(f"{kind} is not a counter kind")  # pragma: no cover - callers check


def _by_label(
    base: RenderedArm, cand: RenderedArm, label: str | None
) -> tuple[CounterRequest, ...]:
    """Counter increases per value of ``label`` (``le``, a category), baseline then canary."""
    return tuple(
        CounterRequest(arm, str(r.selector), label, r.revision)
        for arm, r in (("baseline", base), ("canary", cand))
    )


def _arms(requests: tuple[CounterRequest, ...], read: Reads, kind: str) -> list[dict[str, float]]:
    arms = []
    for request in requests:
        by_value = read[request.tag]
        if by_value is None:
            raise UnusableData(f"no {kind} series for revision {request.what}")
        arms.append(by_value)
    return arms


def _histogram(query: MetricQuery, base: RenderedArm, cand: RenderedArm) -> CounterPlan:
    requests = _by_label(base, cand, query.le_label)
    strict = query.mode is CounterMode.EXACT

    def build(read: Reads) -> Observation:
        arms = _arms(requests, read, "bucket")
        (b_bounds, b_counts), (c_bounds, c_counts) = (
            per_bucket_counts(a, strict=strict) for a in arms
        )
        if b_bounds != c_bounds:
            raise UnusableData(
                f"bucket layouts differ between revisions: baseline {list(b_bounds)}, "
                f"canary {list(c_bounds)}"
            )
        bounds = tuple(b * query.unit_scale if math.isfinite(b) else b for b in b_bounds)
        return HistogramObservation(bounds=bounds, baseline=b_counts, canary=c_counts)

    return CounterPlan(requests, build)


def _event_count(read: Reads, arm: str, revision: str) -> EventCount:
    total = read[f"{arm}-total"]
    if total is None:
        raise UnusableData(f"no total series for revision {revision}")
    # A 5xx counter only exists after the first 5xx: no events series with a live total is 0.
    n_events = round((read[f"{arm}-events"] or {}).get("", 0.0))
    n_total = round(total.get("", 0.0))
    if n_events > n_total:
        raise UnusableData(
            f"events ({n_events}) exceed total ({n_total}) for revision {revision}: "
            "the events selector must select a subset of the total's"
        )
    return EventCount(events=n_events, total=n_total)


def _proportion(base: RenderedArm, cand: RenderedArm) -> CounterPlan:
    requests = tuple(
        CounterRequest(f"{arm}-{part}", str(getattr(r, part)), None, f"{r.revision} {part}")
        for arm, r in (("baseline", base), ("canary", cand))
        for part in ("events", "total")
    )

    def build(read: Reads) -> Observation:
        return ProportionObservation(
            baseline=_event_count(read, "baseline", base.revision),
            canary=_event_count(read, "canary", cand.revision),
        )

    return CounterPlan(requests, build)


def _categorical(
    spec: MetricSpec, query: MetricQuery, base: RenderedArm, cand: RenderedArm
) -> CounterPlan:
    requests = _by_label(base, cand, query.category_label)

    def build(read: Reads) -> Observation:
        arms = _arms(requests, read, "category")
        # Categories not named by the profile are ignored; named ones never seen count 0.
        counts = [tuple(round(by_cat.get(c, 0.0)) for c in spec.categories) for by_cat in arms]
        return CategoricalObservation(
            categories=spec.categories, baseline=counts[0], canary=counts[1]
        )

    return CounterPlan(requests, build)


def _paired(spec: MetricSpec, query: MetricQuery, cand: RenderedArm) -> CounterPlan:
    """The challenger's paired table: one counter read per incumbent decision (its label
    matcher added to the selector), grouped by the challenger's decision."""
    assert query.incumbent_label is not None
    assert cand.selector is not None
    requests = tuple(
        CounterRequest(
            f"incumbent-{i}",
            with_matcher(cand.selector, query.incumbent_label, value),
            query.category_label,
            f"{cand.revision} incumbent={value}",
        )
        for i, value in enumerate(spec.categories)
    )

    def build(read: Reads) -> Observation:
        if all(read[r.tag] is None for r in requests):
            raise UnusableData(f"no paired series for revision {cand.revision}")
        pairs = tuple(
            tuple(round((read[r.tag] or {}).get(c, 0.0)) for c in spec.categories) for r in requests
        )
        return PairedObservation(categories=spec.categories, pairs=pairs)

    return CounterPlan(requests, build)
