"""``PrometheusSource``: the judge's evidence from Prometheus, per revision, over a window."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable

import httpx

from analyzer.domain.errors import FatalIntegrationError, IntegrationError, InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    CategoricalObservation,
    EventCount,
    HistogramObservation,
    MissingObservation,
    Observation,
    PairedObservation,
    ProportionObservation,
    SamplesObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import MetricKind
from analyzer.lru import BoundedLru
from analyzer.metrics.base import (
    CounterMode,
    MetricQuery,
    QueryLanguage,
    RenderedArm,
    TimeWindow,
    render_arm,
)
from analyzer.metrics.prometheus.client import PrometheusClient, RetryPolicy, Series
from analyzer.metrics.prometheus.convert import UnusableData, per_bucket_counts
from analyzer.metrics.prometheus.counters import (
    TAG_LABEL,
    CounterReader,
    CounterRequest,
    Increases,
)
from analyzer.metrics.templates import render

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_label_value(value: str, field: str) -> None:
    if not _LABEL_VALUE.fullmatch(value):
        raise InvalidInputError(
            f"{value!r} cannot be a label value in a query (letters, digits, '_', '.', ':', '-')",
            field=field,
        )


def with_matcher(selector: str, label: str, value: str) -> str:
    """``selector`` with ``label="value"`` added to its matchers (both already checked)."""
    if not _LABEL_NAME.fullmatch(label):
        raise InvalidInputError(f"{label!r} is not a label name", field="query.incumbent_label")
    _check_label_value(value, "categories")
    text = selector.rstrip()
    if text.endswith("}"):
        inner = text[text.rindex("{") + 1 : -1].strip()
        head = text[: text.rindex("{")]
        return f'{head}{{{inner + "," if inner else ""}{label}="{value}"}}'
    return f'{text}{{{label}="{value}"}}'


def _event_count(read: dict[str, Increases], arm: str, revision: str) -> EventCount:
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


def _single_value(query: MetricQuery, series: list[Series], revision: str) -> float:
    if len(series) != 1:
        raise UnusableData(f"expected one series for revision {revision}, got {len(series)}")
    value = series[0].points[-1][1]
    if not math.isfinite(value):
        raise UnusableData(f"value for revision {revision} is {value}")
    return value * query.unit_scale


def _required(text: str | None, name: str, kind: MetricKind) -> str:
    if text is None:
        raise InvalidInputError(f"a {kind} metric needs query.{name}", field=f"query.{name}")
    return text


class PrometheusSource:
    """Reads per-revision evidence from Prometheus' HTTP API.

    ``timeout`` bounds each HTTP request; ``retry`` bounds the attempts. ``lookback_seconds`` is
    how far before the window start a counter's reference sample is looked for: a series with no
    sample in it counts from zero (born inside the window), so it must exceed any scrape gap you
    expect (1 h by default). ``staleness_seconds``: when no series of a selector has a sample
    this close to the window end, the data are stale and not judged (a revision that stopped
    being scraped must not be judged on old evidence).

    ``http``: an ``httpx`` client to send the queries with (the caller's to close); without
    one, the source keeps its own connections (kept-alive ``http.client`` ones for a plain-HTTP
    URL: ``keepalive.py``), closed by :meth:`close`.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: httpx.Client | None = None,
        timeout: float = 2.0,
        retry: RetryPolicy | None = None,
        query_timeout: float | None = None,
        lookback_seconds: float = 3600.0,
        staleness_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = PrometheusClient(
            base_url=base_url,
            http=http,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            query_timeout=query_timeout,
            sleep=sleep,
        )
        self._counters = CounterReader(
            self._client, lookback=int(lookback_seconds), staleness=int(staleness_seconds)
        )
        self._arms: BoundedLru[tuple[MetricQuery, str, str, str, str, str], RenderedArm] = (
            BoundedLru(2048)
        )

    def close(self) -> None:
        """Close the connections the source opened itself."""
        self._client.close()

    @property
    def incremental_reads(self) -> int:
        """How many counter selectors were read incrementally so far (see ``counters``)."""
        return self._counters.incremental_reads

    def observe(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        *,
        model: ModelRef,
        baseline: str,
        canary: str,
        window: TimeWindow,
    ) -> Observation:
        # Everything that can be refused is refused here, before the first request.
        if query.language is not QueryLanguage.PROMQL:
            raise InvalidInputError(
                f"the query is written in {query.language}; the Prometheus source reads PromQL",
                field="query.language",
            )
        base = self._arm(query, model, baseline, window=f"{window.seconds}s", arm="baseline")
        cand = self._arm(query, model, canary, window=f"{window.seconds}s", arm="canary")
        fetch = self._fetcher(spec, query)
        try:
            return fetch(base, cand, window)
        except UnusableData as exc:
            return MissingObservation(reason=f"{spec.name}: {exc}", source_error=False)
        except InvalidInputError as exc:
            # Raised by an observation type refusing what Prometheus returned (e.g. a histogram
            # with only a +Inf bucket): bad data, not bad input, since the input was checked above.
            return MissingObservation(
                reason=f"{spec.name}: unusable answer: {exc}", source_error=False
            )
        except IntegrationError as exc:
            return MissingObservation(reason=f"{spec.name}: prometheus: {exc}", source_error=True)

    def _arm(
        self, query: MetricQuery, model: ModelRef, revision: str, *, window: str, arm: str
    ) -> RenderedArm:
        """``render_arm``, cached: a session renders the same templates for the same revisions
        at every look. The window's length is part of the key only for a query whose templates
        use ``{window}``; a refusal is not cached (it is raised again each time)."""
        templates = (query.selector, query.events, query.total, query.expr)
        timed = any(t is not None and "{window}" in t for t in templates)
        key = (query, model.namespace, model.name, revision, arm, window if timed else "")
        found = self._arms.get(key)
        if found is None:
            found = render_arm(query, model, revision, window=window, arm=arm, renderer=render)
            self._arms.put(key, found)
        return found

    def _fetcher(
        self, spec: MetricSpec, query: MetricQuery
    ) -> Callable[[RenderedArm, RenderedArm, TimeWindow], Observation]:
        kind = spec.kind
        if kind is MetricKind.HISTOGRAM:
            _required(query.selector, "selector", kind)
            return lambda b, c, w: self._histogram(query, b, c, w)
        if kind is MetricKind.PROPORTION:
            _required(query.events, "events", kind)
            _required(query.total, "total", kind)
            return lambda b, c, w: self._proportion(query, b, c, w)
        if kind is MetricKind.CATEGORICAL:
            _required(query.selector, "selector", kind)
            _required(query.category_label, "category_label", kind)
            return lambda b, c, w: self._categorical(spec, query, b, c, w)
        if kind is MetricKind.PAIRED:
            _required(query.selector, "selector", kind)
            _required(query.category_label, "category_label", kind)
            _required(query.incumbent_label, "incumbent_label", kind)
            for value in spec.categories:
                _check_label_value(value, "categories")
            return lambda b, c, w: self._paired(spec, query, c, w)
        _required(query.expr, "expr", kind)
        if kind is MetricKind.SAMPLES:
            return lambda b, c, w: self._samples(query, b, c, w)
        return lambda b, c, w: self._threshold(query, b, c, w)

    # --- counters -------------------------------------------------------------------------

    def _by_label(
        self,
        query: MetricQuery,
        base: RenderedArm,
        cand: RenderedArm,
        window: TimeWindow,
        *,
        label: str | None,
        kind: str,
    ) -> list[dict[str, float]]:
        """Counter increases per value of ``label`` (``le``, a category), baseline then canary."""
        requests = [
            CounterRequest(arm, str(r.selector), label, r.revision)
            for arm, r in (("baseline", base), ("canary", cand))
        ]
        read = self._counters.read(query.mode, requests, window)
        arms = []
        for request in requests:
            by_value = read[request.tag]
            if by_value is None:
                raise UnusableData(f"no {kind} series for revision {request.what}")
            arms.append(by_value)
        return arms

    def _histogram(
        self, query: MetricQuery, base: RenderedArm, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        arms = self._by_label(query, base, cand, window, label=query.le_label, kind="bucket")
        strict = query.mode is CounterMode.EXACT
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

    def _proportion(
        self, query: MetricQuery, base: RenderedArm, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        requests = [
            CounterRequest(f"{arm}-{part}", str(getattr(r, part)), None, f"{r.revision} {part}")
            for arm, r in (("baseline", base), ("canary", cand))
            for part in ("events", "total")
        ]
        read = self._counters.read(query.mode, requests, window)
        return ProportionObservation(
            baseline=_event_count(read, "baseline", base.revision),
            canary=_event_count(read, "canary", cand.revision),
        )

    def _categorical(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        base: RenderedArm,
        cand: RenderedArm,
        window: TimeWindow,
    ) -> Observation:
        arms = self._by_label(
            query, base, cand, window, label=query.category_label, kind="category"
        )
        # Categories not named by the profile are ignored; named ones never seen count 0.
        counts = [tuple(round(by_cat.get(c, 0.0)) for c in spec.categories) for by_cat in arms]
        return CategoricalObservation(
            categories=spec.categories, baseline=counts[0], canary=counts[1]
        )

    def _paired(
        self, spec: MetricSpec, query: MetricQuery, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        """The challenger's paired table: one counter read per incumbent decision (its label
        matcher added to the selector), grouped by the challenger's decision."""
        assert query.incumbent_label is not None
        assert cand.selector is not None
        requests = [
            CounterRequest(
                f"incumbent-{i}",
                with_matcher(cand.selector, query.incumbent_label, value),
                query.category_label,
                f"{cand.revision} incumbent={value}",
            )
            for i, value in enumerate(spec.categories)
        ]
        read = self._counters.read(query.mode, requests, window)
        if all(read[r.tag] is None for r in requests):
            raise UnusableData(f"no paired series for revision {cand.revision}")
        pairs = tuple(
            tuple(round((read[r.tag] or {}).get(c, 0.0)) for c in spec.categories) for r in requests
        )
        return PairedObservation(categories=spec.categories, pairs=pairs)

    # --- gauges and expressions -----------------------------------------------------------

    def _samples(
        self, query: MetricQuery, base: RenderedArm, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        values = []
        for arm in (base, cand):
            series = self._client.range(str(arm.expr), window.start, window.end, query.step_seconds)
            points = tuple(v * query.unit_scale for s in series for _, v in s.points)
            if not points:
                raise UnusableData(f"no samples for revision {arm.revision}")
            values.append(points)
        return SamplesObservation(baseline=values[0], canary=values[1])

    def _threshold(
        self, query: MetricQuery, base: RenderedArm, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        arms = {"baseline": base, "canary": cand}
        tagged = " or ".join(
            f'label_replace(({arm.expr}), "{TAG_LABEL}", "{name}", "", "")'
            for name, arm in arms.items()
        )
        try:
            by_arm: dict[str, list[Series]] = {name: [] for name in arms}
            for series in self._client.instant(tagged, window.end):
                by_arm.setdefault(series.labels.get(TAG_LABEL, ""), []).append(series)
        except FatalIntegrationError:
            # A scalar expression cannot carry a label: ask once per revision instead (a broken
            # expression fails again there and becomes a source error).
            by_arm = {n: self._client.instant(str(a.expr), window.end) for n, a in arms.items()}
        canary_value = _single_value(query, by_arm["canary"], cand.revision)
        try:
            baseline_value: float | None = _single_value(query, by_arm["baseline"], base.revision)
        except UnusableData:
            baseline_value = None  # the bound is on the canary; the baseline is context only
        return ThresholdObservation(canary=canary_value, baseline=baseline_value)
