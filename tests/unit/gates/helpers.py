"""Shared literals for gate tests."""

from __future__ import annotations

from datetime import UTC, datetime

from analyzer.domain.model import ModelRef, Tier
from gates.base import GateContext, GateDecision, closed, opened

MODEL = ModelRef(namespace="credit", name="pd-scorer")
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday


def context(**overrides: object) -> GateContext:
    values: dict[str, object] = {
        "model": MODEL,
        "tier": Tier.REGULATED,
        "rollout_id": "ro-42",
        "canary_revision": "pd-scorer-predictor-00007",
        "canary_version": "3.2.0",
        "target_step": 3,
        "target_weight": 100,
        "change_request": "CHG0031337",
        "initiator": "alice@bank.example",
        "now": NOW,
    }
    values.update(overrides)
    return GateContext(**values)  # type: ignore[arg-type]


class FixedGate:
    """A gate that always answers the same way (or raises), for policy tests."""

    def __init__(self, name: str, *, is_open: bool = True, error: Exception | None = None) -> None:
        self._name = name
        self._open = is_open
        self._error = error
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    def check(self, ctx: GateContext) -> GateDecision:
        self.calls += 1
        if self._error is not None:
            raise self._error
        if self._open:
            return opened(self._name, ctx, "fine")
        return closed(self._name, ctx, "not yet")
