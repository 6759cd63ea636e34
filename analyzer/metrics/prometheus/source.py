"""``PrometheusSource``: the judge's evidence from Prometheus, per revision, over a window."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

import httpx
import structlog

from analyzer.domain.errors import FatalIntegrationError, IntegrationError, InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    MissingObservation,
    Observation,
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
from analyzer.metrics.prometheus.convert import UnusableData
from analyzer.metrics.prometheus.counted import (
    COUNTED,
    CounterPlan,
    check_query,
    counter_plan,
)
from analyzer.metrics.prometheus.counters import (
    TAG_LABEL,
    CounterReader,
    Increases,
    ReadFailure,
    first_failure_raised,
)
from analyzer.metrics.templates import render


def _single_value(query: MetricQuery, series: list[Series], revision: str) -> float:
    if len(series) != 1:
        raise UnusableData(f"expected one series for revision {revision}, got {len(series)}")
    value = series[0].points[-1][1]
    if not math.isfinite(value):
        raise UnusableData(f"value for revision {revision} is {value}")
    return value * query.unit_scale


T = TypeVar("T")


def _build(plan: CounterPlan, read: Mapping[str, Increases | ReadFailure]) -> Observation:
    """``plan``'s observation from a read of its requests (their first failure raised)."""
    return plan.build(first_failure_raised(plan.requests, read))


def _guarded(spec: MetricSpec, fetch: Callable[[], T]) -> T | MissingObservation:
    """``fetch()``, with what the source turns into data turned into a missing observation."""
    try:
        return fetch()
    except UnusableData as exc:
        return MissingObservation(reason=f"{spec.name}: {exc}", source_error=False)
    except InvalidInputError as exc:
        # Raised by an observation type refusing what Prometheus returned (e.g. a histogram
        # with only a +Inf bucket): bad data, not bad input, since the input was checked before.
        return MissingObservation(reason=f"{spec.name}: unusable answer: {exc}", source_error=False)
    except IntegrationError as exc:
        return _unreachable(spec, exc)


def _unreachable(spec: MetricSpec, exc: IntegrationError) -> MissingObservation:
    """A metric Prometheus could not answer for (after the client's retries)."""
    return MissingObservation(reason=f"{spec.name}: prometheus: {exc}", source_error=True)


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

    A :class:`~analyzer.metrics.base.BatchedMetricSource`: :meth:`observe_many` reads the
    counters of every ``exact`` counter metric of a look in one query (``counters.py``).
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
        base, cand = self._prepare(
            spec, query, model=model, baseline=baseline, canary=canary, window=window
        )
        return _guarded(spec, functools.partial(self._fetch, spec, query, base, cand, window))

    def batchable(self, spec: MetricSpec, query: MetricQuery) -> bool:
        """Counter metrics in ``exact`` mode: their selectors all fit one tagged query."""
        return (
            spec.kind in COUNTED
            and query.mode is CounterMode.EXACT
            and query.language is QueryLanguage.PROMQL
        )

    def observe_many(
        self,
        metrics: Sequence[tuple[MetricSpec, MetricQuery]],
        *,
        model: ModelRef,
        baseline: str,
        canary: str,
        window: TimeWindow,
    ) -> dict[str, Observation]:
        """Every metric's observation, as :meth:`observe` gives it; the :meth:`batchable` ones'
        counters read in one query, the others one after another."""
        # Everything that can be refused is refused here, for every metric, before any request.
        prepared = [
            (
                spec,
                query,
                *self._prepare(
                    spec, query, model=model, baseline=baseline, canary=canary, window=window
                ),
            )
            for spec, query in metrics
        ]
        counted = [p for p in prepared if self.batchable(p[0], p[1])]
        out = self._observe_counted(counted, window) if counted else {}
        for spec, query, base, cand in prepared:
            if spec.name not in out:
                fetch = functools.partial(self._fetch, spec, query, base, cand, window)
                out[spec.name] = _guarded(spec, fetch)
        return {spec.name: out[spec.name] for spec, _ in metrics}

    def _prepare(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        *,
        model: ModelRef,
        baseline: str,
        canary: str,
        window: TimeWindow,
    ) -> tuple[RenderedArm, RenderedArm]:
        """Both arms rendered, and the query checked for what ``spec.kind`` needs: every
        refusal (``InvalidInputError``) comes from here, before anything is sent."""
        if query.language is not QueryLanguage.PROMQL:
            raise InvalidInputError(
                f"the query is written in {query.language}; the Prometheus source reads PromQL",
                field="query.language",
            )
        base = self._arm(query, model, baseline, window=f"{window.seconds}s", arm="baseline")
        cand = self._arm(query, model, canary, window=f"{window.seconds}s", arm="canary")
        check_query(spec, query)
        return base, cand

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

    def _fetch(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        base: RenderedArm,
        cand: RenderedArm,
        window: TimeWindow,
    ) -> Observation:
        """One metric's observation, its counters read on their own."""
        if spec.kind in COUNTED:
            plan = counter_plan(spec, query, base, cand)
            return plan.build(self._counters.read(query.mode, plan.requests, window))
        if spec.kind is MetricKind.SAMPLES:
            return self._samples(query, base, cand, window)
        return self._threshold(query, base, cand, window)

    def _observe_counted(
        self,
        counted: Sequence[tuple[MetricSpec, MetricQuery, RenderedArm, RenderedArm]],
        window: TimeWindow,
    ) -> dict[str, Observation]:
        """Several counter metrics' observations from one read (one query, or two when some
        selectors are remembered and others not): each metric's requests tagged and grouped
        by its index, so one metric's unusable data leave the others' alone."""
        out: dict[str, Observation] = {}
        plans: list[tuple[MetricSpec, str, CounterPlan]] = []
        for i, (spec, query, base, cand) in enumerate(counted):
            plan = _guarded(spec, functools.partial(counter_plan, spec, query, base, cand))
            if isinstance(plan, MissingObservation):
                out[spec.name] = plan
            else:
                plans.append((spec, f"m{i}-", plan))
        requests = [
            replace(r, tag=prefix + r.tag, group=prefix)
            for _, prefix, plan in plans
            for r in plan.requests
        ]
        try:
            read = self._counters.read_each(requests, window) if requests else {}
        except FatalIntegrationError as exc:
            # Prometheus refused the query (e.g. HTTP 400: a selector it cannot parse): each
            # metric is asked alone, so only the one it refuses goes missing.
            structlog.get_logger().warning(
                "prometheus.batch.refused", error=str(exc), metrics=len(plans)
            )
            return out | {
                spec.name: _guarded(
                    spec, functools.partial(self._fetch, spec, query, base, cand, window)
                )
                for spec, query, base, cand in counted
                if spec.name not in out
            }
        except IntegrationError as exc:
            # Failed after the client's retries: asked again per metric, it would fail as many
            # times over, and the look has a deadline.
            return out | {spec.name: _unreachable(spec, exc) for spec, _, _ in plans}
        for spec, prefix, plan in plans:
            mine = {r.tag: read[prefix + r.tag] for r in plan.requests}
            build = functools.partial(_build, plan, mine)
            out[spec.name] = _guarded(spec, build)
        return out

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
