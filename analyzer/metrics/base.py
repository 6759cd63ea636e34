"""The metric-source contract.

A :class:`MetricSource` turns one metric's query configuration, a model, a baseline and a canary
revision and an analysis window into an :class:`~analyzer.domain.observation.Observation`.

Contract (checked by the contract suite against every implementation):

* The observation is **cumulative since ``window.start``** up to ``window.end`` (counter
  increases, not rates), of exactly the kind the metric's ``MetricSpec.kind`` names:
  ``histogram`` → :class:`HistogramObservation` (per-bucket counts, ``+Inf`` last),
  ``proportion`` → :class:`ProportionObservation`, ``categorical`` →
  :class:`CategoricalObservation` (in the spec's category order), ``samples`` →
  :class:`SamplesObservation`, ``threshold`` → :class:`ThresholdObservation`.
* **Source failures are data.** Timeouts, 5xx, an unreachable server, malformed answers and
  exhausted retries return ``MissingObservation(reason, source_error=True)``; an answer without
  usable data (empty selector, NaN, stale or partial series, bucket layouts that differ between
  revisions) returns ``MissingObservation(reason, source_error=False)``. ``observe`` never raises
  for these.
* **Bad identifiers are refused before anything is sent.** A revision, namespace or model name
  that is not a DNS-1123 name (and so could smuggle query syntax), or a template with an unknown
  or misplaced placeholder, raises :class:`~analyzer.domain.errors.InvalidInputError` before any
  request leaves the process.
* The same arguments against the same data give the same observation (no hidden state between
  calls), and implementations are safe to call from several threads at once.

A source MAY also be a :class:`BatchedMetricSource`: one that reads several metrics of a look in
fewer round trips than one per metric (``PrometheusSource``: every ``exact`` counter metric in
one query). ``analysis.run_analysis`` then hands it the metrics it says it batches in one call;
the observations must be the ones ``observe`` gives each metric.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import Observation
from analyzer.domain.profile import MetricSpec

# Revisions are Knative revision names, Deployment names or Argo pod-template hashes: all
# DNS-1123 subdomains. Anything else (quotes, braces, "=~", backslashes, commas, newlines) is
# refused rather than escaped, so no value can ever change the shape of a query.
_REVISION = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def validate_revision(value: str, *, field: str) -> str:
    """Return ``value`` if it is a safe revision identifier, else raise ``InvalidInputError``."""
    if not isinstance(value, str) or not _REVISION.match(value):
        raise InvalidInputError(
            f"{value!r} is not a valid revision identifier (DNS-1123: lower-case letters, "
            "digits, '-' and '.', starting and ending alphanumeric, at most 253 characters)",
            field=field,
        )
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeWindow:
    """The analysis window: evidence is counted from ``start`` (exclusive) to ``end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidInputError("window bounds must be timezone-aware", field="window")
        if not self.end > self.start:
            raise InvalidInputError("window end must be after its start", field="window")

    @property
    def seconds(self) -> int:
        """Whole seconds in the window (PromQL range selectors take integers)."""
        return max(1, int((self.end - self.start).total_seconds()))

    @classmethod
    def since(cls, start: datetime, now: datetime) -> TimeWindow:
        """``[start, now]`` cut to whole seconds (at least one) for repeated looks from ``start``.

        Range selectors take whole seconds and are anchored at the window end, so a window of
        1.6 s would be read as starting 0.6 s late, and the next look's start would differ
        again: cumulative counts could fall between looks (read as a counter reset). Cutting the
        end keeps every look's start exactly at ``start``.
        """
        seconds = max(1, int((now - start).total_seconds()))
        return cls(start=start, end=start + timedelta(seconds=seconds))

    @classmethod
    def ending(cls, end: datetime, length: timedelta) -> TimeWindow:
        return cls(start=end - length, end=end)


class CounterMode(StrEnum):
    """How counter increases over the window are computed.

    ``exact`` (default): whole-number increases with no extrapolation. Each series' value at
    the window end minus its value at the start (a series born inside the window counts from
    zero), in one small query per revision; when a counter reset or a vanished series makes
    that inexact, the raw samples are read and increases summed client-side across resets.
    ``increase``: Prometheus' ``sum by (...) (increase(sel[window]))``, extrapolated to the
    window edges and therefore fractional (rounded) and slightly inflated.
    """

    EXACT = "exact"
    INCREASE = "increase"


class QueryLanguage(StrEnum):
    """Which query language a metric's templates are written in, i.e. which source reads them.

    ``promql``: Prometheus (``analyzer.metrics.prometheus``) and the synthetic source.
    ``datadog``: Datadog's metric query syntax (``analyzer.metrics.datadog``). A source refuses
    templates of the other language before anything is sent.
    """

    PROMQL = "promql"
    DATADOG = "datadog"


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricQuery:
    """Where one metric's evidence comes from: templates with named placeholders.

    Placeholders: ``{namespace}``, ``{model}``, ``{revision}`` (replaced by validated values,
    only inside quoted label values) and ``{window}`` (the window length, e.g. ``3600s``).

    * ``histogram``: ``selector`` selects the cumulative ``_bucket`` counters; ``le_label``.
    * ``proportion``: ``events`` and ``total`` select counters.
    * ``categorical``: ``selector`` selects counters; ``category_label`` names the category.
    * ``paired``: ``selector`` selects the shadow path's counters of the challenger
      (``{revision}`` is the canary); ``incumbent_label`` and ``category_label`` name the two
      models' decisions.
    * ``samples``: ``expr`` is evaluated every ``step_seconds`` over the window.
    * ``threshold``: ``expr`` is evaluated once at the window end.
    """

    selector: str | None = None
    events: str | None = None
    total: str | None = None
    expr: str | None = None
    le_label: str = "le"
    category_label: str | None = None
    mode: CounterMode = CounterMode.EXACT
    step_seconds: float = 60.0
    unit_scale: float = 1.0
    # Out of repr: session keys digest repr(query) (analyses.service.profile_digest), and
    # adding this field must not re-key the sessions of every existing PromQL profile. Two
    # queries of different languages already differ in their templates' syntax.
    language: QueryLanguage = field(default=QueryLanguage.PROMQL, repr=False)
    # ``paired``: the label naming the incumbent's decision (``category_label`` names the
    # challenger's). Out of repr for the same reason as ``language``; a paired query's templates
    # already differ from every other kind's.
    incumbent_label: str | None = field(default=None, repr=False)


class TemplateRenderer(Protocol):
    """A query language's template renderer (``templates.render``, ``render_datadog``)."""

    def __call__(
        self, template: str, values: Mapping[str, str], *, field: str | None = None
    ) -> str: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class RenderedArm:
    """One revision's queries, rendered from validated values."""

    revision: str
    selector: str | None
    events: str | None
    total: str | None
    expr: str | None


def render_arm(
    query: MetricQuery,
    model: ModelRef,
    revision: str,
    *,
    window: str,
    arm: str,
    renderer: TemplateRenderer,
) -> RenderedArm:
    """Every template of ``query`` rendered for one arm; ``window`` is the window length in
    the language's own syntax (``3600s`` for PromQL, ``3600`` for Datadog). The revision is
    validated first, so a bad one is refused (as ``arm``) before any template is touched."""
    values = {
        "namespace": model.namespace,
        "model": model.name,
        "revision": validate_revision(revision, field=arm),
        "window": window,
    }

    def one(template: str | None, name: str) -> str | None:
        return None if template is None else renderer(template, values, field=f"query.{name}")

    return RenderedArm(
        revision=revision,
        selector=one(query.selector, "selector"),
        events=one(query.events, "events"),
        total=one(query.total, "total"),
        expr=one(query.expr, "expr"),
    )


@runtime_checkable
class MetricSource(Protocol):
    """A place the judge's evidence comes from. See the module docstring for the contract."""

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
        """Cumulative evidence for ``spec`` over ``window``; failures as ``MissingObservation``."""
        ...


@runtime_checkable
class BatchedMetricSource(MetricSource, Protocol):
    """A metric source that reads several metrics of one look together.

    Contract: ``observe_many(metrics, ...)`` returns, keyed by each spec's name, exactly the
    observation ``observe`` would give that metric over the same data: a metric whose data are
    unusable, or that the source cannot read, is missing alone, never spoiling the others. Bad
    input raises ``InvalidInputError`` before any request is sent, as ``observe`` does. It
    accepts any metric; :meth:`batchable` says which ones it gains by reading together.
    """

    def batchable(self, spec: MetricSpec, query: MetricQuery) -> bool:
        """Whether ``spec`` is read in fewer round trips together with others."""
        ...

    def observe_many(
        self,
        metrics: Sequence[tuple[MetricSpec, MetricQuery]],
        *,
        model: ModelRef,
        baseline: str,
        canary: str,
        window: TimeWindow,
    ) -> dict[str, Observation]:
        """Every metric's observation by its name; failures as ``MissingObservation``."""
        ...
