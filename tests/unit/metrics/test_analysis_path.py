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
