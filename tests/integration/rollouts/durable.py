"""A traffic target whose state lives in its own PostgreSQL table, outside the engine's
transactions — like a real cluster, it survives the engine process being killed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from analyzer.domain.model import ModelRef
from analyzer.domain.result import AnalysisResult
from analyzer.domain.rollout import Rollout
from analyzer.domain.verdict import Verdict
from analyzer.rollouts.ports import AnalysisOutcome
from analyzer.targets.base import TrafficState, check_weight

DDL = """
CREATE TABLE IF NOT EXISTS test_target (
    model text PRIMARY KEY, stable text NOT NULL, canary text, weight int NOT NULL
)
"""


class TableTarget:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, ref: ModelRef, stable: str, canary: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(text(DDL))
            conn.execute(
                text("INSERT INTO test_target VALUES (:m, :s, :c, 0)"),
                {"m": str(ref), "s": stable, "c": canary},
            )

    def _update(self, ref: ModelRef, statement: str, **params: Any) -> TrafficState:
        with self._engine.begin() as conn:
            conn.execute(text(statement), {"m": str(ref), **params})
        return self.read_weight(ref)

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        check_weight(weight)
        return self._update(ref, "UPDATE test_target SET weight = :w WHERE model = :m", w=weight)

    def read_weight(self, ref: ModelRef) -> TrafficState:
        with self._engine.connect() as conn:
            row = conn.execute(
                text("SELECT stable, canary, weight FROM test_target WHERE model = :m"),
                {"m": str(ref)},
            ).one()
        return TrafficState(
            stable_revision=row.stable, canary_revision=row.canary, canary_weight=row.weight,
            requested_weight=row.weight, settled=True,
        )  # fmt: skip

    def promote(self, ref: ModelRef) -> TrafficState:
        return self._update(
            ref,
            "UPDATE test_target SET stable = coalesce(canary, stable), canary = NULL, weight = 0 "
            "WHERE model = :m",
        )

    def abort(self, ref: ModelRef) -> TrafficState:
        return self.set_weight(ref, 0)


class ByNameAnalyzer:
    """``bad-*`` models fail from their second step on; every other model passes."""

    def analyze(self, rollout: Rollout, *, since: datetime, now: datetime) -> AnalysisOutcome:
        bad = rollout.model.name.startswith("bad-") and rollout.step_index >= 1
        verdict = Verdict.FAIL if bad else Verdict.PASS
        result = AnalysisResult(
            verdict=verdict, score=0.0 if bad else 100.0, reason=f"by name: {verdict.value}",
            metrics=(), alpha=0.05,
        )  # fmt: skip
        return AnalysisOutcome(result=result, judge_state={})
