"""The time-matched baseline of a blue/green verification: the previous revision's arm read
from the shifted window, the new revision's from the window itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analyzer.domain.model import ModelRef
from analyzer.domain.observation import (
    EventCount,
    MissingObservation,
    Observation,
    ProportionObservation,
)
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import MetricKind
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.metrics.time_matched import TimeMatchedBaseline

CUT = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
SPEC = MetricSpec(name="errors", kind=MetricKind.PROPORTION)
QUERY = MetricQuery(events="e", total="t")
MODEL = ModelRef(namespace="batch", name="scorer")


class ByWindow:
    """Counts as a function of the window start: errors only before the cut for the baseline."""

    def __init__(self, missing_before: datetime | None = None) -> None:
        self.windows: list[TimeWindow] = []
        self.missing_before = missing_before

    def observe(self, spec: MetricSpec, query: MetricQuery, *, model: ModelRef, baseline: str,
                canary: str, window: TimeWindow) -> Observation:  # fmt: skip
        self.windows.append(window)
        if self.missing_before is not None and window.start < self.missing_before:
            return MissingObservation(reason="no samples")
        before = window.end <= CUT
        # before the cut the old revision served (1 % errors), after it the new one (3 %)
        return ProportionObservation(
            baseline=EventCount(events=10 if before else 0, total=1000 if before else 0),
            canary=EventCount(events=0 if before else 30, total=0 if before else 1000),
        )


def test_baseline_arm_comes_from_the_shifted_window() -> None:
    source = ByWindow()
    matched = TimeMatchedBaseline(source, timedelta(minutes=10))
    window = TimeWindow(start=CUT, end=CUT + timedelta(minutes=4))
    obs = matched.observe(SPEC, QUERY, model=MODEL, baseline="old", canary="new", window=window)
    assert isinstance(obs, ProportionObservation)
    assert obs.baseline == EventCount(events=10, total=1000)  # the old revision, before the cut
    assert obs.canary == EventCount(events=30, total=1000)  # the new revision, now
    assert source.windows[1] == TimeWindow(
        start=CUT - timedelta(minutes=10), end=CUT - timedelta(minutes=6)
    )  # same length, same start offset: successive looks stay cumulative


def test_a_baseline_window_without_data_is_missing_and_says_which_window() -> None:
    source = ByWindow(missing_before=CUT)
    matched = TimeMatchedBaseline(source, timedelta(days=1))
    window = TimeWindow(start=CUT, end=CUT + timedelta(minutes=4))
    obs = matched.observe(SPEC, QUERY, model=MODEL, baseline="old", canary="new", window=window)
    assert isinstance(obs, MissingObservation)
    assert "time-matched window (2026-03-03T02:00:00Z" in obs.reason
