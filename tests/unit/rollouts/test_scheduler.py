"""The APScheduler timer: ticks repeatedly, never overlaps, survives a failing tick."""

from __future__ import annotations

import threading
import time

from analyzer.rollouts.scheduler import TickScheduler


class SlowEngine:
    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.lock = threading.Lock()

    def tick(self) -> int:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            call = self.calls
        time.sleep(0.05)  # slower than the interval: ticks must not pile up in parallel
        with self.lock:
            self.running -= 1
        if call == 2:
            raise RuntimeError("a broken tick")
        return 1


def test_ticks_repeat_without_overlap_and_survive_errors() -> None:
    engine = SlowEngine()
    scheduler = TickScheduler(engine, interval_seconds=0.02)
    scheduler.start()
    time.sleep(0.6)
    scheduler.shutdown()
    assert engine.calls >= 4  # kept ticking after the second tick raised
    assert engine.max_running == 1
