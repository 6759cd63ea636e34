"""Test doubles for driving rollouts: a manual clock and a scripted analyzer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.result import AnalysisResult
from analyzer.domain.rollout import Rollout, Step, StepPlan
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import AnalysisOutcome, GateCheck, OpenGates
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
MODEL = ModelRef(namespace="risk-prod", name="fraud-scorer")
ALICE = Actor(subject="alice", roles=frozenset({"operator"}))
BOB = Actor(subject="bob", roles=frozenset({"approver"}))
PLAN = StepPlan(
    steps=tuple(Step(weight=w, dwell=timedelta(minutes=2)) for w in (10, 25, 50, 100)),
    analysis_interval=timedelta(minutes=1),
    max_bake=timedelta(minutes=10),
    consecutive_error_limit=3,
)


class ManualClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta = timedelta(minutes=1)) -> None:
        self.now += delta


class ScriptedAnalyzer:
    """Answers with ``script(rollout)``; counts its looks and keeps a judge state counter."""

    def __init__(self, script: Callable[[Rollout], Verdict]) -> None:
        self.script = script
        self.looks = 0

    def analyze(self, rollout: Rollout, *, since: datetime, now: datetime) -> AnalysisOutcome:
        self.looks += 1
        verdict = self.script(rollout)
        result = AnalysisResult(
            verdict=verdict, score=100.0 if verdict is Verdict.PASS else 0.0,
            reason=f"scripted {verdict.value}", metrics=(), alpha=0.05,
        )  # fmt: skip
        looks = int(rollout.judge_state.get("looks", 0)) + 1
        return AnalysisOutcome(result=result, judge_state={"looks": looks})


class ScriptedGates:
    def __init__(self, open_: bool = True) -> None:
        self.open = open_

    def check(self, rollout: Rollout, *, target_step: int, now: datetime) -> GateCheck:
        return GateCheck(open=self.open, reason="test gate " + ("open" if self.open else "closed"),
                         evidence={"target_step": target_step})  # fmt: skip


class Rig:
    """A service, an engine and a memory target on one database."""

    def __init__(
        self,
        engine: Engine,
        script: Callable[[Rollout], Verdict],
        gates: Any = None,
        *,
        mirror: bool = False,
    ) -> None:
        self.clock = ManualClock()
        self.ledger = Ledger(engine, clock=self.clock)
        self.target = InMemoryTarget()
        self.target.add_model(MODEL, stable_revision="fraud-00001", canary_revision="fraud-00002")
        self.analyzer = ScriptedAnalyzer(script)
        # the in-memory target is also a request mirror (shadow runs) when asked to be
        shadow = self.target if mirror else None
        self.service = RolloutService(
            engine, self.ledger, self.target, clock=self.clock, mirror=shadow
        )
        self.engine = RolloutEngine(
            engine, self.ledger, self.target, self.analyzer, gates or OpenGates(),
            clock=self.clock, replica_id="test-replica", mirror=shadow,
        )  # fmt: skip

    def start(self, **changes: Any) -> Rollout:
        request = StartRollout(
            model=MODEL, tier=Tier.HOT_PATH, baseline_revision="fraud-00001",
            canary_revision="fraud-00002", profile="fraud", plan=PLAN,
        )  # fmt: skip
        for key, value in changes.items():
            object.__setattr__(request, key, value)
        return self.service.start(request, ALICE)

    def run(self, minutes: int) -> None:
        for _ in range(minutes):
            self.engine.tick()
            self.clock.advance()

    def weight(self) -> int:
        return self.target.read_weight(MODEL).canary_weight

    def weight_of(self, model: ModelRef) -> int:
        return self.target.read_weight(model).canary_weight
