"""``SyntheticSource``: seeded, deterministic per-revision evidence (demo, tests, benchmarks)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

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
from analyzer.metrics.base import MetricQuery, TimeWindow, validate_revision
from analyzer.metrics.synthetic.generator import (
    DEFAULT_BUCKETS_MS,
    IntArray,
    RevisionBehaviour,
    bucket_probabilities,
    events_per_tick,
    latency_quantile,
    multinomial_per_tick,
    paired_probabilities,
    samples_per_step,
    traffic,
)


class _NoData(Exception):  # noqa: N818 - a reason carrier
    pass


@dataclass(frozen=True, slots=True)
class _Arm:
    revision: str
    behaviour: RevisionBehaviour
    requests: IntArray  # per tick, from tick 0 to the window's last tick


class SyntheticSource:
    """Generates cumulative evidence per revision as a function of elapsed time and weight.

    Deterministic given ``seed``, ``origin`` and the window: the same window gives the same
    observation, and a later window end never gives smaller counts. Revisions not in
    ``revisions`` have no data (``MissingObservation``), like an empty Prometheus selector.
    Histograms are in milliseconds times the query's ``unit_scale``; threshold metrics report the
    revision's analytic p99 latency (``threshold_quantile``).
    """

    def __init__(
        self,
        *,
        seed: int,
        origin: datetime,
        revisions: Mapping[str, RevisionBehaviour],
        request_rate: float = 50.0,
        tick_seconds: float = 10.0,
        buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS,
        threshold_quantile: float = 0.99,
    ) -> None:
        if origin.tzinfo is None:
            raise ValueError("origin must be timezone-aware")
        self._seed = seed
        self._origin = origin
        self._revisions = dict(revisions)
        self._rate = request_rate
        self._tick = tick_seconds
        self._buckets = buckets_ms
        self._quantile = threshold_quantile

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
        arms = (
            validate_revision(baseline, field="baseline"),
            validate_revision(canary, field="canary"),
        )
        try:
            return self._observe(spec, query, arms, window)
        except _NoData as exc:
            return MissingObservation(reason=f"{spec.name}: {exc}", source_error=False)

    def _behaviour(self, revision: str) -> RevisionBehaviour:
        if revision not in self._revisions:
            raise _NoData(f"no synthetic data for revision {revision}")
        return self._revisions[revision]

    def _tick_range(self, window: TimeWindow) -> tuple[int, int]:
        """Ticks ``[first, last)`` whose end falls inside ``(start, end]``."""
        start = (window.start - self._origin).total_seconds()
        end = (window.end - self._origin).total_seconds()
        last = math.floor(end / self._tick)
        first = max(0, math.floor(start / self._tick))
        if last <= first:
            raise _NoData("no synthetic traffic inside the window")
        return first, last

    def _observe(
        self, spec: MetricSpec, query: MetricQuery, names: tuple[str, str], window: TimeWindow
    ) -> Observation:
        behaviours = tuple(self._behaviour(r) for r in names)
        if spec.kind is MetricKind.THRESHOLD:
            values = [latency_quantile(b, self._quantile) * query.unit_scale for b in behaviours]
            return ThresholdObservation(canary=values[1], baseline=values[0])
        first, last = self._tick_range(window)
        if spec.kind is MetricKind.SAMPLES:
            return self._samples(spec, query, names, behaviours, window)
        arms = [
            _Arm(r, b, traffic(self._seed, r, b, ticks=last, tick=self._tick, rate=self._rate))
            for r, b in zip(names, behaviours, strict=True)
        ]
        if spec.kind is MetricKind.HISTOGRAM:
            return self._histogram(spec, query, arms, first)
        if spec.kind is MetricKind.PROPORTION:
            return self._proportion(spec, arms, first)
        if spec.kind is MetricKind.PAIRED:
            return self._paired(spec, arms, first)
        return self._categorical(spec, arms, first)

    def _histogram(
        self, spec: MetricSpec, query: MetricQuery, arms: list[_Arm], first: int
    ) -> Observation:
        counts = []
        for arm in arms:
            probabilities = bucket_probabilities(arm.behaviour, self._buckets)
            cells = multinomial_per_tick(
                self._seed, spec.name, arm.revision, arm.requests, probabilities
            )
            counts.append(tuple(int(c) for c in cells[first:].sum(axis=0)))
        bounds = tuple(b * query.unit_scale if math.isfinite(b) else b for b in self._buckets)
        return HistogramObservation(bounds=bounds, baseline=counts[0], canary=counts[1])

    def _proportion(self, spec: MetricSpec, arms: list[_Arm], first: int) -> Observation:
        counts = []
        for arm in arms:
            rate = arm.behaviour.event_rates.get(spec.name, arm.behaviour.error_rate)
            events = events_per_tick(self._seed, spec.name, arm.revision, arm.requests, rate)
            counts.append(
                EventCount(events=int(events[first:].sum()), total=int(arm.requests[first:].sum()))
            )
        return ProportionObservation(baseline=counts[0], canary=counts[1])

    def _categorical(self, spec: MetricSpec, arms: list[_Arm], first: int) -> Observation:
        counts = []
        for arm in arms:
            mix = list(arm.behaviour.decision_mix)
            if len(mix) != len(spec.categories):
                raise _NoData(
                    f"revision {arm.revision} has a {len(mix)}-category decision mix, "
                    f"the metric has {len(spec.categories)} categories"
                )
            cells = multinomial_per_tick(self._seed, spec.name, arm.revision, arm.requests, mix)
            counts.append(tuple(int(c) for c in cells[first:].sum(axis=0)))
        return CategoricalObservation(
            categories=spec.categories, baseline=counts[0], canary=counts[1]
        )

    def _paired(self, spec: MetricSpec, arms: list[_Arm], first: int) -> Observation:
        """A shadow run: the challenger's (canary's) requests are mirrored copies of the
        incumbent's, each decided by both; the incumbent decides by the baseline's mix."""
        incumbent, challenger = arms
        mix = incumbent.behaviour.decision_mix
        k = len(spec.categories)
        if len(mix) != k:
            raise _NoData(
                f"revision {incumbent.revision} has a {len(mix)}-category decision mix, "
                f"the metric has {k} categories"
            )
        probabilities = paired_probabilities(mix, challenger.behaviour.shadow_disagreement)
        cells = multinomial_per_tick(
            self._seed, spec.name, challenger.revision, challenger.requests, probabilities
        )
        flat = [int(c) for c in cells[first:].sum(axis=0)]
        pairs = tuple(tuple(flat[i * k : (i + 1) * k]) for i in range(k))
        return PairedObservation(categories=spec.categories, pairs=pairs)

    def _samples(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        names: tuple[str, str],
        behaviours: tuple[RevisionBehaviour, ...],
        window: TimeWindow,
    ) -> Observation:
        # One value per step, aligned to the origin like a Prometheus range query's steps.
        step = query.step_seconds
        start = (window.start - self._origin).total_seconds()
        end = (window.end - self._origin).total_seconds()
        first, last = max(0, math.ceil(start / step)), math.floor(end / step) + 1
        if last <= first:
            raise _NoData("no synthetic samples inside the window")
        values = [
            tuple(
                float(v) * query.unit_scale
                for v in samples_per_step(self._seed, spec.name, r, b, last)[first:]
            )
            for r, b in zip(names, behaviours, strict=True)
        ]
        return SamplesObservation(baseline=values[0], canary=values[1])
