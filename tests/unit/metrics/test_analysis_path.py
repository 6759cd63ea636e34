"""run_analysis over the synthetic source, and the CLI helpers (no Prometheus needed)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from analyzer.analysis import parse_since, run_analysis
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import Observation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import Verdict
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.profiles import parse_profile

ORIGIN = datetime(2026, 11, 27, tzinfo=UTC)
MODEL = ModelRef(namespace="models", name="fraud")
LOADED = parse_profile(
    "name: t\nmetrics:\n  - use: knative/latency\n  - use: knative/errors\n"
    "  - use: business/decisions\n"
)
WINDOW = TimeWindow(start=ORIGIN, end=ORIGIN + timedelta(hours=1))


def source(**canary: object) -> SyntheticSource:
    return SyntheticSource(
        seed=11,
        origin=ORIGIN,
        request_rate=40.0,
        revisions={
            "base": RevisionBehaviour(weight=0.5),
            "same": RevisionBehaviour(weight=0.5),
            "bad": RevisionBehaviour(weight=0.5, **canary),  # type: ignore[arg-type]
        },
    )


def verdicts(src: object, canary: str) -> dict[str, Verdict]:
    result, _ = run_analysis(LOADED.profile, LOADED.queries, src, MODEL, "base", canary, WINDOW)  # type: ignore[arg-type]
    return {"overall": result.verdict, **{m.name: m.verdict for m in result.metrics}}


def test_latency_regression_fails_and_identical_canary_does_not() -> None:
    assert verdicts(source(latency_shift=0.3), "bad")["latency"] is Verdict.FAIL
    same = verdicts(source(), "same")
    assert Verdict.FAIL not in same.values()
    assert Verdict.ERROR not in same.values()


def test_error_rate_regression_fails() -> None:
    got = verdicts(source(error_rate=0.03), "bad")
    assert got["errors"] is Verdict.FAIL
    assert got["overall"] is Verdict.FAIL


def test_state_carries_over_between_looks_and_an_executor_can_be_shared() -> None:
    src = source()
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, state = run_analysis(
            LOADED.profile,
            LOADED.queries,
            src,
            MODEL,
            "base",
            "same",
            TimeWindow(start=ORIGIN, end=ORIGIN + timedelta(minutes=30)),
            executor=pool,
        )
        second, _ = run_analysis(
            LOADED.profile, LOADED.queries, src, MODEL, "base", "same", WINDOW, state, executor=pool
        )
    assert first.metrics[0].n_canary < second.metrics[0].n_canary


class CrashingSource:
    """Breaks the contract by raising: the analysis must still not pass."""

    def __init__(self) -> None:
        self.calls = 0

    def observe(self, spec: MetricSpec, query: MetricQuery, **_: object) -> Observation:
        self.calls += 1
        raise RuntimeError("boom")


def test_a_crashing_source_is_an_error_verdict() -> None:
    got = verdicts(CrashingSource(), "same")
    assert got["overall"] is Verdict.ERROR
    assert Verdict.PASS not in got.values()


def test_bad_revision_is_refused_before_any_source_call() -> None:
    src = CrashingSource()
    with pytest.raises(InvalidInputError, match="canary"):
        verdicts(src, 'bad"} or vector(1)')
    assert src.calls == 0


def test_missing_query_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="no query configured"):
        run_analysis(LOADED.profile, {}, source(), MODEL, "base", "same", WINDOW)


NOW = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, NOW - timedelta(hours=1)),
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("2026-11-27T04:15:00+00:00", datetime(2026, 11, 27, 4, 15, tzinfo=UTC)),
        ("2026-11-27T04:15:00", datetime(2026, 11, 27, 4, 15, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str | None, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_parse_since_refuses_garbage() -> None:
    with pytest.raises(InvalidInputError, match="since"):
        parse_since("yesterday", NOW)


class ThreadRecordingSource:
    """The synthetic source, noting the thread each metric is observed on; ``refuse``: metrics
    whose observation raises ``InvalidInputError`` (a bad value only the source can see)."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self._inner = source()
        self.threads: dict[str, str] = {}
        self._refuse = refuse

    def observe(self, spec: MetricSpec, query: MetricQuery, **kwargs: object) -> Observation:
        self.threads[spec.name] = threading.current_thread().name
        if spec.name in self._refuse:
            raise InvalidInputError(f"{spec.name} refused", field=spec.name)
        return self._inner.observe(spec, query, **kwargs)  # type: ignore[arg-type]


def _look_on(pool: ThreadPoolExecutor, src: ThreadRecordingSource) -> list[str]:
    """The metrics' names in the result of one look whose fetches ``pool`` runs."""
    result, _ = run_analysis(
        LOADED.profile, LOADED.queries, src, MODEL, "base", "same", WINDOW, executor=pool  # type: ignore[arg-type]
    )  # fmt: skip
    return [m.name for m in result.metrics]


def test_a_looks_last_metric_is_fetched_on_its_own_thread_the_others_on_the_pool() -> None:
    src = ThreadRecordingSource()
    names = [m.name for m in LOADED.profile.metrics]
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pool") as pool:
        assert _look_on(pool, src) == names
    assert src.threads[names[-1]] == threading.current_thread().name
    assert all(src.threads[n].startswith("pool") for n in names[:-1])


def test_the_first_metrics_error_is_raised_as_when_every_fetch_was_on_the_pool() -> None:
    names = [m.name for m in LOADED.profile.metrics]
    src = ThreadRecordingSource(refuse=frozenset({names[0], names[-1]}))
    with ThreadPoolExecutor(max_workers=4) as pool, pytest.raises(InvalidInputError) as caught:
        _look_on(pool, src)
    assert caught.value.field == names[0]


# --- a source that batches (metrics.base.BatchedMetricSource) ------------------------------------

MIXED = parse_profile(
    "name: mixed\nmetrics:\n  - use: knative/latency\n  - use: knative/p99_latency\n"
    "  - use: knative/errors\n  - use: business/decisions\n"
)
COUNTED = ["latency", "errors", "decisions"]  # the knative p99 is a threshold: not batched


class BatchingSource(ThreadRecordingSource):
    """Batches the counter kinds: ``observe_many`` answers them from the synthetic source, noting
    each call and its thread; ``refuse`` raises as in ``observe``; ``crash`` breaks the contract."""

    def __init__(self, refuse: frozenset[str] = frozenset(), *, crash: bool = False) -> None:
        super().__init__(refuse)
        self.batches: list[list[str]] = []
        self._crash = crash

    def batchable(self, spec: MetricSpec, query: MetricQuery) -> bool:
        return spec.name in COUNTED

    def observe_many(
        self, metrics: list[tuple[MetricSpec, MetricQuery]], **kwargs: object
    ) -> dict[str, Observation]:
        self.batches.append([s.name for s, _ in metrics])
        for spec, _ in metrics:
            self.threads[spec.name] = threading.current_thread().name
        if self._crash:
            raise RuntimeError("boom")
        if refused := [s.name for s, _ in metrics if s.name in self._refuse]:
            raise InvalidInputError(f"{refused[-1]} refused", field=refused[-1])
        return {s.name: self._inner.observe(s, q, **kwargs) for s, q in metrics}  # type: ignore[arg-type]


def _mixed_look(pool: ThreadPoolExecutor, src: object) -> dict[str, Verdict]:
    result, _ = run_analysis(
        MIXED.profile, MIXED.queries, src, MODEL, "base", "same", WINDOW, executor=pool  # type: ignore[arg-type]
    )  # fmt: skip
    return {m.name: m.verdict for m in result.metrics}


def test_the_batched_metrics_are_one_call_on_this_thread_the_others_on_the_pool() -> None:
    src = BatchingSource()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pool") as pool:
        got = _mixed_look(pool, src)
        plain = _mixed_look(pool, ThreadRecordingSource())
    assert src.batches == [COUNTED]  # in profile order, once
    assert got == plain  # the same verdicts as per-metric reads of the same data
    assert list(got) == [m.name for m in MIXED.profile.metrics]
    here = threading.current_thread().name
    assert {src.threads[n] for n in COUNTED} == {here}
    assert src.threads["p99_latency"].startswith("pool")


def test_a_refusal_in_the_batch_raises_the_profiles_first_bad_metric() -> None:
    # observe_many names the last bad metric; asked one by one, the first one in profile order
    # is raised, as when the source does not batch
    src = BatchingSource(refuse=frozenset({"errors", "decisions"}))
    with ThreadPoolExecutor(max_workers=4) as pool, pytest.raises(InvalidInputError) as caught:
        _mixed_look(pool, src)
    assert caught.value.field == "errors"
    unbatched = ThreadRecordingSource(refuse=frozenset({"errors", "decisions"}))
    with ThreadPoolExecutor(max_workers=4) as pool, pytest.raises(InvalidInputError) as plain:
        _mixed_look(pool, unbatched)
    assert plain.value.field == caught.value.field


def test_a_batch_that_crashes_misses_its_metrics_only() -> None:
    src = BatchingSource(crash=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = _mixed_look(pool, src)
    assert src.batches == [COUNTED]
    assert {got[n] for n in COUNTED} == {Verdict.ERROR}
    assert got["p99_latency"] is not Verdict.ERROR


def test_a_batch_that_leaves_a_metric_out_misses_it() -> None:
    class Forgetful(BatchingSource):
        def observe_many(
            self, metrics: list[tuple[MetricSpec, MetricQuery]], **kwargs: object
        ) -> dict[str, Observation]:
            found = super().observe_many(metrics, **kwargs)
            del found["errors"]
            return found

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = _mixed_look(pool, Forgetful())
    assert got["errors"] is Verdict.ERROR
    assert got["latency"] is not Verdict.ERROR
