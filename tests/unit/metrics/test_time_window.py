"""``TimeWindow.since``: repeated looks from one start keep that start exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analyzer.metrics.base import TimeWindow

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def test_the_end_is_cut_to_whole_seconds_so_the_start_never_moves() -> None:
    for fraction in (0.0, 0.2, 0.6, 0.99):
        for whole in (0, 1, 59, 600):
            now = T0 + timedelta(seconds=whole + fraction)
            window = TimeWindow.since(T0, now)
            assert window.start == T0
            assert window.end - window.seconds * timedelta(seconds=1) == T0  # PromQL's start
            assert window.end <= max(now, T0 + timedelta(seconds=1))


def test_a_window_is_at_least_one_second() -> None:
    assert TimeWindow.since(T0, T0).seconds == 1
