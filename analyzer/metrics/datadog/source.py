"""``DatadogSource``: the judge's evidence from Datadog's metrics query API, per revision.

How each kind is read (``R`` = ``rollup_seconds``; ``S`` = a profile's selector
``metric{scope}``, rendered with the revision's values):

* counters (histogram, proportion, categorical): ``sum:S by {label}.as_count().rollup(sum, R)``
  over the window; each point is the count in one rollup interval, so the points' sum is the
  count over the window, whatever interval Datadog settles on. Baseline and canary (and a
  proportion's events and total) go in **one request** (comma-separated queries, told apart by
  each series' ``query_index``), which matters under Datadog's per-org query rate limit.
* histogram buckets are the OpenMetrics check's ``<name>.bucket`` counts, cumulative over the
  ``upper_bound`` tag as Prometheus' are (``le_label: upper_bound``; ``inf``/``+Inf`` is the last
  bucket), differenced into per-bucket counts.
* samples: the profile's ``expr`` as written; every point of every series.
* threshold: the profile's ``expr``; the last point of its single series (the value at the
  window end, like Prometheus' instant query).

Every failure is data: a timeout, 5xx, exhausted or too-long rate limit, refused keys or a
malformed answer is ``MissingObservation(source_error=True)``; no series, a stale series (newest
point more than ``staleness_seconds`` before the window end), NaN, a partial histogram or
different bucket layouts are ``MissingObservation(source_error=False)``. Never a pass.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from collections.abc import Callable, Sequence

import httpx

from analyzer.domain.errors import IntegrationError, InvalidInputError
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
from analyzer.metrics.base import (
    MetricQuery,
    QueryLanguage,
    RenderedArm,
    TimeWindow,
    render_arm,
)
from analyzer.metrics.datadog.client import DatadogClient, DatadogRetryPolicy, DatadogSeries
from analyzer.metrics.datadog.query import render_datadog

_INFINITE_BOUNDS = frozenset({"inf", "+inf", "none", "infinity", "+infinity"})


class _Unusable(Exception):  # noqa: N818 - a reason carrier, not an error of ours
    """Datadog answered, but not with data that can be judged."""


_TAG_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]{0,199}$")


def _required(text: str | None, name: str, kind: MetricKind) -> None:
    if text is None:
        raise InvalidInputError(f"a {kind} metric needs query.{name}", field=f"query.{name}")


def parse_bound(raw: str) -> float:
    """An ``upper_bound`` tag value (``0.005``, ``1e+03``, ``inf``) as a float bound."""
    if raw.strip().lower() in _INFINITE_BOUNDS:
        return math.inf
    try:
        value = float(raw)
    except ValueError as exc:
        raise _Unusable(f"bucket bound {raw!r} is not a number") from exc
    if math.isnan(value) or value == -math.inf:
        raise _Unusable(f"bucket bound {raw!r} is not a bound")
    return value


def _per_bucket(cumulative: dict[str, float]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    by_bound = sorted((parse_bound(raw), count) for raw, count in cumulative.items())
    bounds = tuple(b for b, _ in by_bound)
    if not bounds or not math.isinf(bounds[-1]):
        raise _Unusable("no upper_bound:inf bucket: partial histogram")
    counts = [round(c) for _, c in by_bound]
    per_bucket = [counts[0]] + [b - a for a, b in itertools.pairwise(counts)]
    if any(c < 0 for c in per_bucket):
        raise _Unusable("cumulative bucket counts fall with the bound: partial histogram")
    return bounds, tuple(per_bucket)


class DatadogSource:
    """Reads per-revision evidence from Datadog (``/api/v1/query``). See the module docstring.

    ``rollup_seconds``: the interval counts are summed over; Datadog may widen it for long
    windows (sums stay exact). ``staleness_seconds``: when a revision's newest point (its
    interval's end) is this far before the window end, the data are stale and not judged.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        application_key: str,
        http: httpx.Client,
        timeout: float = 2.0,
        retry: DatadogRetryPolicy | None = None,
        rollup_seconds: int = 60,
        staleness_seconds: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rollup_seconds < 1:
            raise InvalidInputError("rollup_seconds must be at least 1", field="rollup_seconds")
        self._client = DatadogClient(
            base_url=base_url,
            api_key=api_key,
            application_key=application_key,
            http=http,
            timeout=timeout,
            retry=retry or DatadogRetryPolicy(),
            sleep=sleep,
        )
        self._rollup = rollup_seconds
        self._staleness = staleness_seconds

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
        if query.language is not QueryLanguage.DATADOG:
            raise InvalidInputError(
                f"the query is written in {query.language}; the Datadog source reads "
                "Datadog queries (a profile with query_language: datadog)",
                field="query.language",
            )
        base = render_arm(
            query,
            model,
            baseline,
            window=str(window.seconds),
            arm="baseline",
            renderer=render_datadog,
        )
        cand = render_arm(
            query, model, canary, window=str(window.seconds), arm="canary", renderer=render_datadog
        )
        self._check_required(spec, query)
        try:
            return self._fetch(spec, query, base, cand, window)
        except _Unusable as exc:
            return MissingObservation(reason=f"{spec.name}: {exc}", source_error=False)
        except InvalidInputError as exc:
            # An observation type refusing what Datadog returned: bad data, not bad input.
            return MissingObservation(
                reason=f"{spec.name}: unusable answer: {exc}", source_error=False
            )
        except IntegrationError as exc:
            return MissingObservation(reason=f"{spec.name}: datadog: {exc}", source_error=True)

    @staticmethod
    def _check_required(spec: MetricSpec, query: MetricQuery) -> None:
        kind = spec.kind
        if kind is MetricKind.PAIRED:
            _required(query.selector, "selector", kind)
            _required(query.category_label, "category_label", kind)
            _required(query.incumbent_label, "incumbent_label", kind)
            for key in ("incumbent_label", "category_label"):
                if not _TAG_KEY.fullmatch(str(getattr(query, key))):
                    raise InvalidInputError("is not a Datadog tag key", field=f"query.{key}")
        if kind in (MetricKind.HISTOGRAM, MetricKind.CATEGORICAL):
            _required(query.selector, "selector", kind)
        if kind is MetricKind.CATEGORICAL:
            _required(query.category_label, "category_label", kind)
        if kind is MetricKind.PROPORTION:
            _required(query.events, "events", kind)
            _required(query.total, "total", kind)
        if kind in (MetricKind.SAMPLES, MetricKind.THRESHOLD):
            _required(query.expr, "expr", kind)

    def _fetch(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        base: RenderedArm,
        cand: RenderedArm,
        window: TimeWindow,
    ) -> Observation:
        kind = spec.kind
        if kind is MetricKind.HISTOGRAM:
            arms = self._counts([base, cand], "selector", query.le_label, window)
            (b_bounds, b_counts), (c_bounds, c_counts) = (_per_bucket(a) for a in arms)
            if b_bounds != c_bounds:
                raise _Unusable(
                    f"bucket layouts differ between revisions: baseline {list(b_bounds)}, "
                    f"canary {list(c_bounds)}"
                )
            bounds = tuple(b * query.unit_scale if math.isfinite(b) else b for b in b_bounds)
            return HistogramObservation(bounds=bounds, baseline=b_counts, canary=c_counts)
        if kind is MetricKind.PROPORTION:
            return self._proportion(base, cand, window)
        if kind is MetricKind.CATEGORICAL:
            arms = self._counts([base, cand], "selector", query.category_label, window)
            # Categories the profile does not name are ignored; named ones never seen count 0.
            counts = [tuple(round(a.get(c, 0.0)) for c in spec.categories) for a in arms]
            return CategoricalObservation(
                categories=spec.categories, baseline=counts[0], canary=counts[1]
            )
        if kind is MetricKind.PAIRED:
            return self._paired(spec, query, cand, window)
        if kind is MetricKind.SAMPLES:
            return self._samples(query, base, cand, window)
        return self._threshold(query, base, cand, window)

    def _paired(
        self, spec: MetricSpec, query: MetricQuery, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        """The challenger's paired table: one count query grouped by both decision tags."""
        incumbent, challenger = str(query.incumbent_label), str(query.category_label)
        text = f"sum:{str(cand.selector).strip()} by {{{incumbent},{challenger}}}"
        (series,) = self._batch([f"{text}.as_count().rollup(sum, {self._rollup})"], window)
        if not series:
            raise _Unusable(f"no paired series for revision {cand.revision}")
        self._check_fresh(series, window, cand.revision)
        cells: dict[tuple[str, str], float] = {}
        for s in series:
            key = (s.tags.get(incumbent, ""), s.tags.get(challenger, ""))
            cells[key] = cells.get(key, 0.0) + math.fsum(v for _, v in s.points)
        pairs = tuple(
            tuple(round(cells.get((i, j), 0.0)) for j in spec.categories) for i in spec.categories
        )
        return PairedObservation(categories=spec.categories, pairs=pairs)

    # --- counters -------------------------------------------------------------------------

    def _count_query(self, selector: str, label: str | None) -> str:
        group = f" by {{{label}}}" if label else ""
        return f"sum:{selector.strip()}{group}.as_count().rollup(sum, {self._rollup})"

    def _counts(
        self, arms: Sequence[RenderedArm], part: str, label: str | None, window: TimeWindow
    ) -> list[dict[str, float]]:
        """Counts over the window per value of ``label`` (``""`` without one), per arm."""
        queries = [self._count_query(str(getattr(arm, part)), label) for arm in arms]
        answers = self._batch(queries, window)
        out = []
        for arm, series in zip(arms, answers, strict=True):
            if not series:
                raise _Unusable(f"no {part} series for revision {arm.revision}")
            self._check_fresh(series, window, arm.revision)
            by_value: dict[str, float] = {}
            for s in series:
                value = s.tags.get(label, "") if label else ""
                total = math.fsum(v for _, v in s.points)
                if not math.isfinite(total) or total < 0:
                    raise _Unusable(f"count {total} for revision {arm.revision} is not a count")
                by_value[value] = by_value.get(value, 0.0) + total
            out.append(by_value)
        return out

    def _proportion(self, base: RenderedArm, cand: RenderedArm, window: TimeWindow) -> Observation:
        queries = [
            self._count_query(str(getattr(arm, part)), None)
            for arm in (base, cand)
            for part in ("events", "total")
        ]
        answers = self._batch(queries, window)
        counts = []
        for i, arm in enumerate((base, cand)):
            events, total = answers[2 * i], answers[2 * i + 1]
            if not total:
                raise _Unusable(f"no total series for revision {arm.revision}")
            self._check_fresh(total, window, arm.revision)
            n_total = round(math.fsum(v for s in total for _, v in s.points))
            # An events count (5xx) only has points once an event happened: none is 0.
            n_events = round(math.fsum(v for s in events for _, v in s.points))
            if n_events > n_total or n_events < 0:
                raise _Unusable(
                    f"events ({n_events}) exceed total ({n_total}) for revision {arm.revision}: "
                    "the events selector must select a subset of the total's"
                )
            counts.append(EventCount(events=n_events, total=n_total))
        return ProportionObservation(baseline=counts[0], canary=counts[1])

    def _batch(self, queries: list[str], window: TimeWindow) -> list[list[DatadogSeries]]:
        """Each query's series, asked in one request (series carry their ``query_index``)."""
        series = self._client.query(",".join(queries), window.start, window.end)
        answers: list[list[DatadogSeries]] = [[] for _ in queries]
        for s in series:
            if not 0 <= s.query_index < len(queries):
                raise _Unusable(f"series for query #{s.query_index} of {len(queries)}")
            answers[s.query_index].append(s)
        return answers

    def _check_fresh(self, series: list[DatadogSeries], window: TimeWindow, revision: str) -> None:
        newest = max(
            (ts + max(s.interval, 0.0) for s in series for ts, _ in s.points), default=None
        )
        end = window.end.timestamp()
        if newest is None:
            raise _Unusable(f"no points for revision {revision} in the window")
        if newest < end - self._staleness:
            raise _Unusable(
                f"stale data for revision {revision}: newest point {end - newest:.0f} s "
                "before the window end"
            )

    # --- gauges and expressions -----------------------------------------------------------

    def _samples(
        self, query: MetricQuery, base: RenderedArm, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        answers = self._batch([str(base.expr), str(cand.expr)], window)
        values = []
        for arm, series in zip((base, cand), answers, strict=True):
            points = tuple(
                v * query.unit_scale for s in series for _, v in s.points if math.isfinite(v)
            )
            if not points:
                raise _Unusable(f"no samples for revision {arm.revision}")
            values.append(points)
        return SamplesObservation(baseline=values[0], canary=values[1])

    def _threshold(
        self, query: MetricQuery, base: RenderedArm, cand: RenderedArm, window: TimeWindow
    ) -> Observation:
        answers = self._batch([str(base.expr), str(cand.expr)], window)

        def value(series: list[DatadogSeries], revision: str) -> float:
            if len(series) != 1 or not series[0].points:
                raise _Unusable(f"expected one series for revision {revision}, got {len(series)}")
            last = series[0].points[-1][1]
            if not math.isfinite(last):
                raise _Unusable(f"value for revision {revision} is {last}")
            return last * query.unit_scale

        canary_value = value(answers[1], cand.revision)
        try:
            baseline_value: float | None = value(answers[0], base.revision)
        except _Unusable:
            baseline_value = None  # the bound is on the canary; the baseline is context only
        return ThresholdObservation(canary=canary_value, baseline=baseline_value)
