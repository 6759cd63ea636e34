"""The ``analyze`` path: fetch every metric of a profile from a source, then judge.

Used by the service (Argo web provider, scheduler) through :func:`run_analysis` and by the CLI
through :func:`analyze_command`. Metrics are fetched concurrently (one task each on up to
``max_workers`` threads): a look is as slow as its slowest metric, not the sum of all of them.
A :class:`~analyzer.metrics.base.BatchedMetricSource` (Prometheus) reads the metrics it batches
(every ``exact`` counter metric) in one task and one round trip; the others are a task each,
concurrent with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import structlog

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import MissingObservation, Observation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.result import AnalysisResult
from analyzer.judge import JudgeState, judge
from analyzer.metrics.base import (
    BatchedMetricSource,
    MetricQuery,
    MetricSource,
    TimeWindow,
    validate_revision,
)
from analyzer.metrics.dialects import TEMPLATE_KEYS, check_query_template
from analyzer.metrics.prometheus import PrometheusSource, RetryPolicy
from analyzer.profiles import load_profile

T = TypeVar("T")

DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"
DEFAULT_SINCE = timedelta(hours=1)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def check_inputs(
    profile: AnalysisProfile, queries: Mapping[str, MetricQuery], baseline: str, canary: str
) -> None:
    """Refuse bad identifiers and templates before any metric is fetched."""
    validate_revision(baseline, field="baseline")
    validate_revision(canary, field="canary")
    for spec in profile.metrics:
        query = queries.get(spec.name)
        if query is None:
            raise InvalidInputError("no query configured", field=f"queries.{spec.name}")
        for key in TEMPLATE_KEYS:
            template = getattr(query, key)
            if template is not None:
                check_query_template(
                    template,
                    query.language,
                    key=key,
                    field=f"queries.{spec.name}.{key}",
                    shape=False,
                )


@dataclass(frozen=True, slots=True)
class _Look:
    """What every metric of one look shares."""

    source: MetricSource
    model: ModelRef
    baseline: str
    canary: str
    window: TimeWindow

    def observe(self, spec: MetricSpec, query: MetricQuery) -> Observation:
        return observe_guarded(
            self.source, spec, query, model=self.model, baseline=self.baseline,
            canary=self.canary, window=self.window,
        )  # fmt: skip

    def batched(
        self, specs: Sequence[MetricSpec], queries: Mapping[str, MetricQuery]
    ) -> list[MetricSpec]:
        """The metrics the source reads together (none unless it batches)."""
        source = self.source
        if not isinstance(source, BatchedMetricSource):
            return []
        return [s for s in specs if source.batchable(s, queries[s.name])]

    def one(self, spec: MetricSpec, query: MetricQuery) -> dict[str, Future[Observation]]:
        return {spec.name: run_here(self.observe, spec, query)}

    def together(
        self, metrics: Sequence[tuple[MetricSpec, MetricQuery]]
    ) -> dict[str, Future[Observation]]:
        """The batched metrics' observations, each as a done future (as :meth:`one`'s)."""
        assert isinstance(self.source, BatchedMetricSource)
        try:
            found = self.source.observe_many(
                metrics, model=self.model, baseline=self.baseline, canary=self.canary,
                window=self.window,
            )  # fmt: skip
        except InvalidInputError:
            # Refused before anything was sent. Asked one by one, the metrics raise what
            # per-metric reads raise, so the error of the profile's first bad metric is the one
            # run_analysis raises (whether the source batches or not); the good ones are read,
            # as they would have been.
            return {s.name: run_here(self.observe, s, q) for s, q in metrics}
        except Exception as exc:  # a source breaking its contract: a crash must never pass
            structlog.get_logger().exception(
                "metrics.source.crashed", metrics=[s.name for s, _ in metrics]
            )
            found = {s.name: _crashed(s.name, exc) for s, _ in metrics}
        return {s.name: run_here(_answered, found, s.name) for s, _ in metrics}


def observe_guarded(
    source: MetricSource,
    spec: MetricSpec,
    query: MetricQuery,
    *,
    model: ModelRef,
    baseline: str,
    canary: str,
    window: TimeWindow,
) -> Observation:
    """``source.observe``, with a source that raises (breaking its contract) turned into a
    missing observation: a crash must still never pass. Bad input still raises."""
    try:
        return source.observe(
            spec, query, model=model, baseline=baseline, canary=canary, window=window
        )
    except InvalidInputError:
        raise
    except Exception as exc:
        structlog.get_logger().exception("metrics.source.crashed", metric=spec.name)
        return _crashed(spec.name, exc)


def _crashed(name: str, exc: Exception) -> MissingObservation:
    """What a metric gets from a source that raised (breaking its contract)."""
    return MissingObservation(
        reason=f"{name}: source failed unexpectedly: {exc!r}", source_error=True
    )


def _answered(found: Mapping[str, Observation], name: str) -> Observation:
    """``name``'s observation in a batch's answer; a source that left it out broke its
    contract, and a metric without evidence must never pass."""
    if name in found:
        return found[name]
    return MissingObservation(reason=f"{name}: the source gave no observation", source_error=True)


def _fetch_all(
    look: _Look, profile: AnalysisProfile, queries: Mapping[str, MetricQuery], pool: Executor
) -> dict[str, Observation]:
    """Every metric's observation, fetched concurrently: every metric the source does not batch
    as a task of its own, the batched ones as one task, last (usually the look's largest); all
    but the last task on ``pool``, the last on this thread, which would otherwise only wait
    (one thread fewer to wake per look). Concurrent, not one after another: measured, the look's
    wall p50 12.0 against 14.7 ms (docs/benchmarks.md, *One counter query per look*)."""
    specs = profile.metrics
    batched = look.batched(specs, queries)
    names = {s.name for s in batched}
    tasks: list[Callable[[], dict[str, Future[Observation]]]] = [
        partial(look.one, s, queries[s.name]) for s in specs if s.name not in names
    ]
    if batched:
        tasks.append(partial(look.together, [(s, queries[s.name]) for s in batched]))
    running = [pool.submit(task) for task in tasks[:-1]] + [run_here(tasks[-1])]
    futures: dict[str, Future[Observation]] = {}
    for task in running:
        futures |= task.result()
    # in profile order, so the first metric's error is the one raised, as with all on the pool
    return {s.name: futures[s.name].result() for s in specs}


def run_here(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
    """``fn(*args, **kwargs)`` run on this thread, as a done future (its error kept in it, as
    a pool's future keeps it)."""
    future: Future[T] = Future()
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:
        future.set_exception(exc)
    return future


# Positional parameters are the documented call shape shared with the service and the CLI.
def run_analysis(  # noqa: PLR0917
    profile: AnalysisProfile,
    queries: Mapping[str, MetricQuery],
    source: MetricSource,
    model: ModelRef,
    baseline: str,
    canary: str,
    window: TimeWindow,
    state: JudgeState | None = None,
    *,
    max_workers: int = 8,
    executor: Executor | None = None,
) -> tuple[AnalysisResult, JudgeState]:
    """Fetch every metric of ``profile`` over ``window`` (concurrently) and judge them.

    ``state`` is the judge state returned by the previous look at the same canary/baseline pair
    (``None`` at the first look); persist the returned state for the next one. Raises
    ``InvalidInputError`` only for bad identifiers/templates, before anything is fetched;
    every source failure arrives at the judge as a ``MissingObservation``.

    A long-lived service passes its own ``executor`` (threads are then not started per look,
    which is a few milliseconds on a busy host); otherwise one with up to ``max_workers``
    threads lives for this call.
    """
    check_inputs(profile, queries, baseline, canary)
    look = _Look(source, model, baseline, canary, window)
    if executor is not None:
        return judge(profile, _fetch_all(look, profile, queries, executor), state)
    workers = max(1, min(max_workers, len(profile.metrics)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="analyze") as pool:
        observations = _fetch_all(look, profile, queries, pool)
    return judge(profile, observations, state)


def parse_since(text: str | None, now: datetime) -> datetime:
    """``--since``: a duration back from ``now`` (``90s``, ``30m``, ``2h``, ``1d``) or ISO 8601."""
    if text is None:
        return now - DEFAULT_SINCE
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInputError(
            f"{text!r} is neither a duration (30m, 2h) nor an ISO 8601 time", field="since"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def analyze_command(
    *,
    profile: str | Path,
    model: str,
    baseline: str,
    canary: str,
    since: str | None = None,
    prometheus_url: str = DEFAULT_PROMETHEUS_URL,
    timeout: float = 2.0,
    now: datetime | None = None,
    http: httpx.Client | None = None,
    source: MetricSource | None = None,
) -> dict[str, Any]:
    """What ``canary-analyzer analyze`` prints: one look, as verdict JSON.

    ``profile`` is a YAML file or a preset name. The look reads Prometheus at
    ``prometheus_url`` unless a ``source`` is given (the CLI passes the Datadog source for a
    ``query_language: datadog`` profile). Raises ``InvalidInputError`` (exit 2) for bad input;
    any verdict, including ``error``, is a normal return.
    """
    loaded = load_profile(profile)
    model_ref = ModelRef.parse(model)
    end = now or datetime.now(UTC)
    window = TimeWindow(start=parse_since(since, end), end=end)
    client = http or httpx.Client()
    try:
        if source is None:
            source = PrometheusSource(
                base_url=prometheus_url, http=client, timeout=timeout, retry=RetryPolicy()
            )
        result, _ = run_analysis(
            loaded.profile, loaded.queries, source, model_ref, baseline, canary, window
        )
    finally:
        if http is None:
            client.close()
    return {
        **result.to_json(),
        "model": str(model_ref),
        "baseline": baseline,
        "canary": canary,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
    }
