"""Backtests, the I/O part: fetch each recorded look from a metric source and judge it.

Each canary is replayed by one worker thread, look after look (a look continues the sequential
state of the one before it); canaries run side by side. A look is fetched **once** for every
profile compared: metrics with the same name, kind and query are read once and judged by each
profile that still needs the look (one that already failed the canary, or passed its segment,
does not). Every source failure reaches the judge as a missing observation (``error``, never a
pass), exactly as in the service: the look goes through ``analysis.observe_guarded`` and
``judge``, the functions the service uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

from analyzer.analysis import check_inputs, observe_guarded
from analyzer.backtests.replay import CanaryReplay, PlannedLook, RecordedCanary, profile_at
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import Observation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.result import AnalysisResult
from analyzer.domain.verdict import Verdict
from analyzer.judge import JudgeState, judge
from analyzer.metrics.base import MetricQuery, MetricSource, TimeWindow
from analyzer.metrics.time_matched import TimeMatchedBaseline
from analyzer.profiles import LoadedProfile

# One fetched metric: its name, kind, categories and query, which is all a source reads.
_FetchKey = tuple[str, str, tuple[str, ...], str]


@dataclass(frozen=True, kw_only=True, slots=True)
class NamedProfile:
    """A profile under the label the report shows (its name, or the file it came from)."""

    label: str
    loaded: LoadedProfile


def _key(spec: MetricSpec, query: MetricQuery) -> _FetchKey:
    return (spec.name, spec.kind.value, spec.categories, f"{query.language}:{query!r}")


def _window(look: PlannedLook) -> TimeWindow:
    """The look's window cut to whole seconds from its start, as the service cuts it."""
    return TimeWindow.since(look.start, look.end)


def _judged(
    profile: AnalysisProfile, observations: Mapping[str, Observation], state: JudgeState | None
) -> tuple[AnalysisResult, JudgeState | None]:
    """The judge's answer; data the judge refuses (say, an infinite sample a source let through)
    is an ``error`` look with the state unchanged, as in the service, not the end of the run."""
    try:
        return judge(profile, observations, state)
    except InvalidInputError as exc:
        reason = f"the judge refused this look's data: {exc}"
        error = AnalysisResult(verdict=Verdict.ERROR, score=0.0, reason=reason, metrics=(),
                               alpha=profile.alpha)  # fmt: skip
        return error, state


class BacktestRunner:
    """Replays recorded canaries through profiles, reading a :class:`MetricSource`."""

    def __init__(
        self,
        source: MetricSource,
        *,
        workers: int = 4,
        fetch_workers: int = 8,
    ) -> None:
        self._source = source
        self._workers = max(1, workers)
        self._fetch_workers = max(1, fetch_workers)

    def run(
        self,
        canaries: Sequence[RecordedCanary],
        profiles: Sequence[NamedProfile],
        *,
        progress: Callable[[int], None] | None = None,
        every_look: bool = False,
        as_run: Callable[[RecordedCanary], NamedProfile] | None = None,
    ) -> list[CanaryReplay]:
        """Every canary through every profile, in input order (canary-major).

        ``progress(n)`` is called with the number of looks just done (from worker threads,
        serialised). ``every_look`` judges looks after a decision too (for benchmarks: the
        cost of full canaries); decisions are the same either way. ``as_run(canary)``, when
        given, is one more profile per canary, first: the one it ran with.
        """
        per_canary = {
            canary.id: ([as_run(canary)] if as_run is not None else []) + list(profiles)
            for canary in canaries
        }
        for canary in canaries:
            for named in per_canary[canary.id]:
                check_inputs(named.loaded.profile, named.loaded.queries, canary.baseline,
                             canary.canary)  # fmt: skip
        lock = threading.Lock()

        def done(n: int) -> None:
            if progress is not None:
                with lock:
                    progress(n)

        with (
            ThreadPoolExecutor(self._fetch_workers, thread_name_prefix="bt-fetch") as fetch,
            ThreadPoolExecutor(self._workers, thread_name_prefix="bt-canary") as pool,
        ):
            futures = [
                pool.submit(self._replay, canary, per_canary[canary.id], fetch, done, every_look)
                for canary in canaries
            ]
            return [replay for future in futures for replay in future.result()]

    def _replay(
        self,
        canary: RecordedCanary,
        profiles: Sequence[NamedProfile],
        fetch: Executor,
        done: Callable[[int], None],
        every_look: bool,
    ) -> list[CanaryReplay]:
        replays = [CanaryReplay(canary=canary, profile=p.label) for p in profiles]
        for index, look in enumerate(canary.looks):
            wanted = [
                (named, replay)
                for named, replay in zip(profiles, replays, strict=True)
                if every_look or replay.wants(index)
            ]
            if not wanted:
                done(len(canary.looks) - index)
                break
            observed = self._fetch(canary, look, [named for named, _ in wanted], fetch)
            for named, replay in wanted:
                profile = profile_at(named.loaded.profile, look)
                observations = {
                    spec.name: observed[_key(spec, named.loaded.queries[spec.name])]
                    for spec in profile.metrics
                }
                result, state = _judged(profile, observations, replay.state_for(index))
                replay.record(index, result, state)
            done(1)
        for replay in replays:
            if len(replay.verdicts) < len(canary.looks):
                replay.record(len(canary.looks) - 1, None, None)
        return replays

    def _fetch(
        self,
        canary: RecordedCanary,
        look: PlannedLook,
        profiles: Sequence[NamedProfile],
        fetch: Executor,
    ) -> Mapping[_FetchKey, Observation]:
        window = _window(look)
        specs: dict[_FetchKey, tuple[MetricSpec, MetricQuery]] = {}
        for named in profiles:
            for spec in named.loaded.profile.metrics:
                query = named.loaded.queries[spec.name]
                specs.setdefault(_key(spec, query), (spec, query))
        futures = {
            key: fetch.submit(self._observe, canary, spec, query, window)
            for key, (spec, query) in specs.items()
        }
        return {key: future.result() for key, future in futures.items()}

    def _observe(
        self, canary: RecordedCanary, spec: MetricSpec, query: MetricQuery, window: TimeWindow
    ) -> Observation:
        source = self._source
        if canary.baseline_offset is not None:
            source = TimeMatchedBaseline(source, canary.baseline_offset)
        return observe_guarded(
            source, spec, query, model=canary.model, baseline=canary.baseline,
            canary=canary.canary, window=window,
        )  # fmt: skip
