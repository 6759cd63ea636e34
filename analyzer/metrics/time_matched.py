"""A time-matched baseline: the previous revision's evidence read from an earlier window.

After a blue/green cut the previous revision serves nothing, so there is no concurrent baseline
to judge the new revision against: the verification window compares the new revision *now* with
the previous revision *then*. :class:`TimeMatchedBaseline` wraps any metric source and reads the
baseline arm from the window shifted back by ``offset`` (same length, same position relative to
its start, so looks stay cumulative) and the canary arm from the window itself. The offset is
the verification window's length by default (the window just before the cut) or a day or a week
to match the hour or weekday as well (docs/strategies.md, "Why before/after is weaker").

Over a source that batches (:class:`~analyzer.metrics.base.BatchedMetricSource`: Prometheus'
counter metrics in one query), the wrapper batches too: a look's counter metrics cost one query
for the window and one for the shifted window, not two per metric.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from analyzer.domain.model import ModelRef
from analyzer.domain.observation import MissingObservation, Observation, PairedObservation
from analyzer.domain.profile import MetricSpec
from analyzer.metrics.base import BatchedMetricSource, MetricQuery, MetricSource, TimeWindow


class TimeMatchedBaseline:
    """A :class:`MetricSource` whose baseline arm lies ``offset`` earlier than its canary arm."""

    def __init__(self, source: MetricSource, offset: timedelta) -> None:
        if offset <= timedelta(0):
            raise ValueError(f"the baseline offset must be positive, not {offset}")
        self._source = source
        self._offset = offset

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
        now = self._source.observe(
            spec, query, model=model, baseline=baseline, canary=canary, window=window
        )
        if isinstance(now, MissingObservation):
            return now
        then = self._then(window)
        earlier = self._source.observe(
            spec, query, model=model, baseline=baseline, canary=canary, window=then
        )
        return _matched(now, earlier, then)

    def batchable(self, spec: MetricSpec, query: MetricQuery) -> bool:
        """What the wrapped source batches (nothing, unless it batches)."""
        source = self._source
        return isinstance(source, BatchedMetricSource) and source.batchable(spec, query)

    def observe_many(
        self,
        metrics: Sequence[tuple[MetricSpec, MetricQuery]],
        *,
        model: ModelRef,
        baseline: str,
        canary: str,
        window: TimeWindow,
    ) -> dict[str, Observation]:
        """Every metric's :meth:`observe`: the window's reads in one batch, then the shifted
        window's for the metrics the first batch found (as :meth:`observe` reads the shifted
        window only after the window itself gave data)."""
        source = self._source
        if not isinstance(source, BatchedMetricSource):
            return {
                spec.name: self.observe(
                    spec, query, model=model, baseline=baseline, canary=canary, window=window
                )
                for spec, query in metrics
            }
        read = functools.partial(source.observe_many, model=model, baseline=baseline, canary=canary)
        now = read(metrics, window=window)
        found = [(s, q) for s, q in metrics if not isinstance(now[s.name], MissingObservation)]
        then = self._then(window)
        earlier = read(found, window=then) if found else {}
        return {
            spec.name: _matched(now[spec.name], earlier[spec.name], then)
            if spec.name in earlier
            else now[spec.name]
            for spec, _ in metrics
        }

    def _then(self, window: TimeWindow) -> TimeWindow:
        return TimeWindow(start=window.start - self._offset, end=window.end - self._offset)


def _matched(now: Observation, earlier: Observation, then: TimeWindow) -> Observation:
    """The canary arm of ``now`` (not missing: the shifted window is read only then) with the
    baseline arm of ``earlier`` (read over ``then``)."""
    if isinstance(earlier, MissingObservation):
        why = f"the baseline's time-matched window ({then.start:%Y-%m-%dT%H:%M:%SZ} to "
        why += f"{then.end:%Y-%m-%dT%H:%M:%SZ}): {earlier.reason}"
        return replace(earlier, reason=why)
    if type(earlier) is not type(now):
        return MissingObservation(reason="the source answered the two windows in two shapes")
    if isinstance(now, PairedObservation) or isinstance(earlier, PairedObservation):
        return now  # paired requests have no separate baseline arm (shadow runs only)
    # same type (checked above): the baseline arm of the earlier window, the canary's of now
    return replace(now, baseline=earlier.baseline)  # type: ignore[arg-type]
