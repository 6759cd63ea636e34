"""Where a fresh look's work runs: in the API process's threads, or in worker processes.

A fresh look is a dozen milliseconds of CPU under the GIL (six Prometheus answers parsed, the
judge, its evidence). Run in the API process, it delays every request that arrives while it
runs: with every request a look at 40/s the p99 was 111 ms, against 41 ms with the looks in
workers (docs/benchmarks.md, API load). :class:`ProcessLooks` runs the fetch and the judge in
worker processes, on another core, while the request's thread waits with the GIL released; the
API process keeps only the row lock, the ledger entry and the answer.

Both runners satisfy :class:`LookRunner`. A look that cannot be run (a worker died, the look
overran the runner's own limit) comes back as an ``error`` verdict with the state unchanged
(``fail`` if the analysis had already failed: a fail is final), never as an exception: Argo must
get a 200 with a verdict, and no evidence may be half-counted. A look that overruns the
*caller's* ``timeout`` raises :class:`LookOverran` instead, so the caller can answer from what it
already knows (the session's last decision) before its own caller gives up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog

from analyzer.analyses.worker_pool import CallTimedOut, WorkerDied, WorkerPool, WorkersUnavailable
from analyzer.analysis import check_inputs, run_analysis, run_here
from analyzer.domain.errors import ConfigurationError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import MissingObservation
from analyzer.domain.profile import AnalysisProfile
from analyzer.domain.result import AnalysisResult
from analyzer.domain.verdict import Verdict
from analyzer.judge import JudgeState, judge
from analyzer.metrics.base import MetricQuery, MetricSource, TimeWindow
from analyzer.metrics.time_matched import TimeMatchedBaseline

log = structlog.get_logger(__name__)

T = TypeVar("T")
LookOutcome = tuple[AnalysisResult, JudgeState]
# (profile, queries, source, model, baseline, canary, window, state, *, executor) -> outcome
Analyzer = Callable[..., LookOutcome]


@dataclass(frozen=True, kw_only=True, slots=True)
class LookInput:
    """Everything one look needs besides the metric source (plain data: it crosses processes)."""

    profile: AnalysisProfile
    queries: Mapping[str, MetricQuery]
    model: ModelRef
    baseline: str
    canary: str
    window: TimeWindow
    state: JudgeState
    # blue_green verification: read the baseline arm this much earlier (a time-matched window,
    # metrics/time_matched.py); None: both arms from ``window`` (a concurrent comparison).
    baseline_offset: timedelta | None = None


class LookRunner(Protocol):
    """Fetches a look's metrics and judges them with the previous state."""

    def run(self, look: LookInput, *, timeout: float | None = None) -> LookOutcome:
        """The look's result and the state for the next look; ``InvalidInputError`` only for
        bad identifiers or templates, before anything is fetched. With ``timeout`` (seconds),
        :class:`LookOverran` when the look is not done by then (its result is dropped)."""
        ...

    def warm_up(self) -> None:
        """Do now whatever start-up the first look would otherwise pay for (may block)."""
        ...

    def close(self) -> None: ...


class LookOverran(Exception):  # noqa: N818 -- a condition, not a failure of the caller
    """The look did not finish within the caller's ``timeout``; its work will be dropped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the look did not finish within {seconds:g} s")
        self.seconds = seconds


def failed_look(look: LookInput, reason: str) -> LookOutcome:
    """An ``error`` verdict that keeps the previous state: nothing of this look is counted.

    An analysis that already failed answers ``fail`` (the judge's rule, applied to a look with
    every metric missing), so an outage never hides a decided fail.
    """
    down = MissingObservation(reason=reason, source_error=True)
    judged, _ = judge(look.profile, {m.name: down for m in look.profile.metrics}, look.state)
    if judged.verdict is Verdict.FAIL:
        return judged, look.state
    result = AnalysisResult(
        verdict=Verdict.ERROR, score=0.0, reason=reason, metrics=(), alpha=look.profile.alpha
    )
    return result, look.state


def _analyze(
    analyzer: Analyzer, source: MetricSource, look: LookInput, pool: Executor
) -> LookOutcome:
    if look.baseline_offset is not None:
        source = TimeMatchedBaseline(source, look.baseline_offset)
    return analyzer(
        look.profile,
        look.queries,
        source,
        look.model,
        look.baseline,
        look.canary,
        look.window,
        look.state,
        executor=pool,
    )


class CallerRuns(Executor):
    """Runs each submitted call at once, on the submitting thread: a look's metric fetches one
    after another (``concurrent_fetches=False``), with no thread to wake per fetch."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return run_here(fn, *args, **kwargs)


def _fetch_executor(concurrent: bool, threads: int, prefix: str) -> Executor:
    if concurrent:
        return ThreadPoolExecutor(max_workers=threads, thread_name_prefix=prefix)
    return CallerRuns()


class ThreadLooks:
    """Looks in this process: metric fetches on a long-lived thread pool (or one after another
    with ``concurrent_fetches=False``), the judge inline.

    The embedded default and the tests' choice (no process start-up, an injectable analyzer).
    """

    def __init__(
        self,
        source: MetricSource,
        *,
        analyzer: Analyzer = run_analysis,
        executor: Executor | None = None,
        concurrent_fetches: bool = True,
    ) -> None:
        # One long-lived pool for metric fetches: starting threads per look costs tail latency.
        self._owned = executor is None
        self._executor = executor or _fetch_executor(concurrent_fetches, 32, "look")
        # Looks with a deadline run on their own threads (a look submits its fetches to
        # ``_executor``; nesting both in one pool could starve it).
        self._bodies = ThreadPoolExecutor(max_workers=16, thread_name_prefix="look-body")
        self._source = source
        self._analyzer = analyzer

    def run(self, look: LookInput, *, timeout: float | None = None) -> LookOutcome:
        if timeout is None:
            return _analyze(self._analyzer, self._source, look, self._executor)
        check_inputs(look.profile, look.queries, look.baseline, look.canary)
        future = self._bodies.submit(_analyze, self._analyzer, self._source, look, self._executor)
        try:
            return future.result(timeout=max(timeout, 0.0))
        except FutureTimeout:
            log.warning("analysis.look.late", model=str(look.model), seconds=timeout)
            raise LookOverran(timeout) from None

    def warm_up(self) -> None:
        """Nothing to start: the threads are created as looks need them."""

    def close(self) -> None:
        self._bodies.shutdown(wait=False, cancel_futures=True)
        if self._owned:
            self._executor.shutdown(wait=False)


# --- worker processes ---------------------------------------------------------------------------


def _look_handler(
    source_factory: Callable[[], MetricSource], concurrent_fetches: bool
) -> Callable[[LookInput], LookOutcome]:
    """A worker's set-up (in the worker): its own source, built once, and its fetch pool."""
    source = source_factory()
    fetches = _fetch_executor(concurrent_fetches, 16, "fetch")

    def look_in_worker(look: LookInput) -> LookOutcome:
        return _analyze(run_analysis, source, look, fetches)

    return look_in_worker


class ProcessLooks:
    """Looks in ``processes`` worker processes, each with its own source built by
    ``source_factory`` (a picklable callable: workers are *spawned*, not forked, because the
    API process has threads whose held locks a fork would copy). A spawned worker starts bare:
    the factory is also where it configures logging (``analyzer.wiring.worker_source``).

    The hop is :class:`~analyzer.analyses.worker_pool.WorkerPool`: the request's own thread
    writes the look on an idle worker's pipe and waits on that pipe with the GIL released
    (no executor threads to wake, unlike ``concurrent.futures.ProcessPoolExecutor``: the hop
    costs 0.2–0.4 ms less CPU per look, docs/benchmarks.md). When every worker is busy the look
    waits for one, and that wait counts against its limit.

    ``timeout`` bounds how long a request waits for its look; a look that overruns answers
    ``error`` (the worker finishes it, and its late answer is read and dropped before that
    worker takes another look). A worker that dies (killed for memory, a crash in a native
    library) answers ``error`` for the look it held and is replaced by a new process; the
    other workers' looks go on.
    """

    def __init__(
        self,
        source_factory: Callable[[], MetricSource],
        *,
        processes: int = 2,
        timeout: float = 8.0,
        warm: bool = True,
        concurrent_fetches: bool = True,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._processes = processes
        self._timeout = timeout
        self._pool = WorkerPool(
            partial(_look_handler, source_factory, concurrent_fetches),
            processes=processes,
            name="look",
        )
        if warm:
            self.warm_up()

    def warm_up(self) -> None:
        """Start every worker now and wait until each has finished its imports (about a second
        each), so the first looks do not pay for it. ``serve`` calls this once its socket
        listens (``warm=False``): health probes answer meanwhile, and a look that arrives
        before the workers are ready simply waits for them."""
        started = time.monotonic()
        try:
            self._pool.wait_ready(timeout=120)
        except WorkersUnavailable as exc:
            self._pool.close()
            raise ConfigurationError(
                f"the look worker processes did not start ({exc}); see their output above, or "
                "set prometheus.look_processes=0 to run looks in this process"
            ) from exc
        log.info(
            "analysis.look.workers_ready",
            processes=self._processes,
            seconds=round(time.monotonic() - started, 3),
        )

    def run(self, look: LookInput, *, timeout: float | None = None) -> LookOutcome:
        # Bad identifiers and templates raise here, in the caller, as InvalidInputError (422).
        check_inputs(look.profile, look.queries, look.baseline, look.canary)
        limit = self._timeout if timeout is None else max(min(timeout, self._timeout), 0.0)
        try:
            outcome: LookOutcome = self._pool.call(look, timeout=limit)
        except CallTimedOut:
            log.warning("analysis.look.timeout", model=str(look.model), seconds=limit)
            if timeout is not None:
                raise LookOverran(limit) from None
            return failed_look(look, f"the look took longer than {limit:g} s; not counted")
        except WorkerDied:
            log.error("analysis.look.worker_died", model=str(look.model))
            return failed_look(look, "the worker process running this look died; not counted")
        except WorkersUnavailable as exc:
            log.error("analysis.look.no_worker", model=str(look.model), reason=str(exc))
            return failed_look(look, f"no look worker could take this look ({exc}); not counted")
        return outcome

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (tests and benchmarks read their CPU time)."""
        return self._pool.pids()

    def close(self) -> None:
        self._pool.close()
