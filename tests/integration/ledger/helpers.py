"""Small helpers shared by the ledger integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef

MODEL = ModelRef(namespace="risk-prod", name="credit-decision")


class SteppingClock:
    """A clock that advances a fixed step on every read."""

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


def traffic(split: dict[str, float], rollout: str = "r1", step: int = 0) -> LedgerEvent:
    return LedgerEvent(
        type=EventType.TRAFFIC_CHANGED,
        actor="driver",
        model=MODEL,
        rollout_id=rollout,
        data={"split": [{"revision": r, "weight": w} for r, w in split.items()], "step": step},
    )


def run_cli(
    *args: str, database_url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env = environ | {"CANARY_ANALYZER_DATABASE_URL": database_url} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "analyzer.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


T0 = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
