"""Rollouts: one attempt to move a model's traffic from a baseline revision to a canary.

States: ``pending → progressing (step k) → promoted``, or ``→ aborted`` / ``→ failed``;
``paused`` is an overlay flag on ``pending``/``progressing``, not a state of its own, so resuming
returns exactly where the rollout was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef, Tier


class RolloutState(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (RolloutState.PROMOTED, RolloutState.ABORTED, RolloutState.FAILED)


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """Hold the canary at ``weight`` % for at least ``dwell``, judging every analysis interval."""

    weight: int
    dwell: timedelta
    # Gate names (see gates.policy) that must be open *before* traffic moves to this step.
    gates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.weight <= 100:
            raise InvalidInputError(f"step weight {self.weight} is not in 1..100", field="weight")
        if self.dwell < timedelta(0):
            raise InvalidInputError("dwell must not be negative", field="dwell")


@dataclass(frozen=True, kw_only=True, slots=True)
class StepPlan:
    """Weights with dwell times; the last step must be 100 %."""

    steps: tuple[Step, ...]
    analysis_interval: timedelta = timedelta(minutes=1)
    # A step that has not produced a pass by max_bake is judged at its horizon (pass only if the
    # judge says pass; inconclusive at max_bake fails the rollout: never promote on no evidence).
    max_bake: timedelta = timedelta(minutes=30)
    consecutive_error_limit: int = 4

    def __post_init__(self) -> None:
        if not self.steps:
            raise InvalidInputError("a plan needs at least one step", field="plan.steps")
        weights = [s.weight for s in self.steps]
        if weights != sorted(set(weights)):
            raise InvalidInputError("step weights must strictly increase", field="plan.steps")
        if weights[-1] != 100:
            raise InvalidInputError("the last step must be 100 %", field="plan.steps")
        if self.analysis_interval <= timedelta(0):
            raise InvalidInputError("analysis_interval must be positive", field="plan")
        if self.consecutive_error_limit < 1:
            raise InvalidInputError("consecutive_error_limit must be >= 1", field="plan")

    @classmethod
    def default(cls) -> StepPlan:
        dwell = timedelta(minutes=10)
        return cls(steps=tuple(Step(weight=w, dwell=dwell) for w in (10, 25, 50, 100)))


@dataclass(frozen=True, kw_only=True, slots=True)
class Rollout:
    """The durable record of one rollout (a row of the ``rollouts`` table)."""

    id: str
    model: ModelRef
    tier: Tier
    baseline_revision: str
    canary_revision: str
    profile: str
    plan: StepPlan
    state: RolloutState
    step_index: int  # -1 while pending; index into plan.steps while progressing
    paused: bool
    initiator: str
    created_at: datetime
    updated_at: datetime
    step_started_at: datetime | None = None
    # When the first step was entered: the analysis window (cumulative evidence) starts here.
    analysis_started_at: datetime | None = None
    next_tick_at: datetime | None = None
    change_request: str | None = None
    artifact_uri: str | None = None
    consecutive_errors: int = 0
    reason: str | None = None
    version: int = 0
    judge_state: dict[str, Any] = field(default_factory=dict)

    @property
    def canary_weight(self) -> int:
        """The weight this record claims the target has (0 unless progressing or promoted)."""
        if self.state is RolloutState.PROMOTED:
            return 100
        if self.state is RolloutState.PROGRESSING and self.step_index >= 0:
            return self.plan.steps[self.step_index].weight
        return 0
