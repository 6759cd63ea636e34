"""The runner with a counting in-memory source: each look fetched once for every profile,
progress adds up, decisions stop fetching, and data the judge refuses is an error look."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from analyzer.backtests.replay import PlannedLook, RecordedCanary
from analyzer.backtests.runner import BacktestRunner, NamedProfile
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    EventCount,
    Observation,
    ProportionObservation,
    SamplesObservation,
)
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import Verdict
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.profiles import parse_profile

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
MODEL = ModelRef(namespace="risk", name="fraud")
PROFILE = """
name: {name}
metrics:
  - name: errors
    kind: proportion
    tolerance: {tolerance}
    query: {{events: 'e{{r="{{revision}}"}}', total: 't{{r="{{revision}}"}}'}}
"""


class CountingSource:
    """Errors per look: the canary ``bad`` has 2 %, every other 0.1 %; ``inf`` answers samples
    with an infinite value (what the judge refuses)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, datetime]] = []
        self._lock = threading.Lock()

    def observe(
        self, spec: MetricSpec, query: MetricQuery, *, model: ModelRef, baseline: str,
        canary: str, window: TimeWindow,
    ) -> Observation:  # fmt: skip
        with self._lock:
            self.calls.append((spec.name, canary, window.end))
        if canary == "inf":
            return SamplesObservation(baseline=(1.0,), canary=(float("inf"),))
        minutes = int((window.end - window.start).total_seconds() // 60)
        total = 20_000 * minutes
        rate = 0.02 if canary == "bad" else 0.001
        return ProportionObservation(
            baseline=EventCount(events=int(total * 0.001), total=total),
            canary=EventCount(events=int(total * rate), total=total),
        )


def canary(name: str, looks: int = 10) -> RecordedCanary:
    return RecordedCanary(
        id=name, model=MODEL, baseline="base", canary=name,
        looks=tuple(PlannedLook(start=T0, end=T0 + timedelta(minutes=k + 1), bake_elapsed=None)
                    for k in range(looks)),
    )  # fmt: skip


def named(name: str, tolerance: float = 0.001) -> NamedProfile:
    loaded = parse_profile(PROFILE.format(name=name, tolerance=tolerance))
    return NamedProfile(label=name, loaded=loaded)


def test_each_look_is_fetched_once_for_every_profile_and_stops_at_the_decision() -> None:
    source = CountingSource()
    done: list[int] = []
    profiles = [named("a"), named("b", tolerance=0.001)]
    (first, second) = BacktestRunner(source, workers=2).run([canary("bad")], profiles,
                                                             progress=done.append)  # fmt: skip
    assert first.verdict is Verdict.FAIL
    assert second.verdict is Verdict.FAIL
    assert first.decided_at is not None
    looks_fetched = {end for _, _, end in source.calls}
    assert len(source.calls) == len(looks_fetched)  # one fetch per look, shared by both
    assert len(looks_fetched) == first.decided_at + 1  # nothing after the decision
    assert sum(done) == 10  # the progress bar reaches the end


def test_data_the_judge_refuses_is_an_error_look_and_the_run_goes_on() -> None:
    source = CountingSource()
    samples = parse_profile(
        "name: s\nmetrics:\n  - name: cpu\n    kind: samples\n"
        "    query: {expr: 'cpu{r=\"{revision}\"}'}\n"
    )
    replays = BacktestRunner(source).run(
        [canary("inf", looks=2), canary("fine", looks=2)],
        [NamedProfile(label="s", loaded=samples)],
    )
    assert list(replays[0].verdicts) == [Verdict.ERROR, Verdict.ERROR]
    assert replays[0].verdict is Verdict.ERROR
    assert "refused" in replays[0].to_json()["reason"]
    assert replays[1].canary.id == "fine"
