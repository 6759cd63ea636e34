"""The shadow gate: a recent shadow pass of exactly this model version, fail closed otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from analyzer.domain.model import ModelRef, Tier
from gates.base import GateContext
from gates.shadow import ShadowGate, ShadowGateConfig, ShadowVerdict

NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
CREDIT = ModelRef(namespace="credit-models", name="credit")
DIGEST = "sha256:" + "a" * 64
CONTEXT = GateContext(
    model=CREDIT, tier=Tier.REGULATED, rollout_id="r2", canary_revision="credit-00018",
    target_step=0, target_weight=10, initiator="alice", now=NOW, canary_version="18",
    artifact_digest=DIGEST,
)  # fmt: skip


def verdict(
    days_ago: float, *, passed: bool = True, seq: int = 1, **changes: object
) -> ShadowVerdict:
    base = ShadowVerdict(
        seq=seq, model=CREDIT, model_version="18", passed=passed,
        recorded_at=NOW - timedelta(days=days_ago), rollout_id="r1", artifact_digest=DIGEST,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


class Verdicts:
    def __init__(self, *found: ShadowVerdict, broken: bool = False) -> None:
        self.found, self.broken = found, broken

    def verdicts_for(self, model: ModelRef, model_version: str) -> Sequence[ShadowVerdict]:
        if self.broken:
            raise ConnectionError("database gone")
        return self.found


def test_a_recent_pass_of_this_version_opens() -> None:
    decision = ShadowGate(Verdicts(verdict(3))).check(CONTEXT)
    assert decision.open
    assert "shadow passed for credit-models/credit version 18" in decision.reason
    assert decision.evidence["latest"]["rollout_id"] == "r1"


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        ((), "no shadow run recorded"),
        ((verdict(3, model_version="17"),), "no shadow run recorded"),  # another version
        ((verdict(3), verdict(1, passed=False, seq=2)), "latest shadow run of"),  # withdrawn
        ((verdict(20),), "20 days old (at most 14 allowed)"),
        ((verdict(-1),), "dated in the future"),
        ((verdict(2, artifact_digest="sha256:" + "b" * 64),), "the rollout deploys"),
    ],
)
def test_closed_with_a_reason(found: tuple[ShadowVerdict, ...], reason: str) -> None:
    decision = ShadowGate(Verdicts(*found)).check(CONTEXT)
    assert not decision.open
    assert reason in decision.reason


def test_no_version_or_an_unreadable_store_is_closed() -> None:
    unnamed = replace(CONTEXT, canary_version=None)
    assert "names no model version" in ShadowGate(Verdicts(verdict(1))).check(unnamed).reason
    broken = ShadowGate(Verdicts(broken=True)).check(CONTEXT)
    assert not broken.open
    assert "could not be read (ConnectionError)" in broken.reason


def test_max_age_is_configurable() -> None:
    gate = ShadowGate(Verdicts(verdict(20)), ShadowGateConfig(max_age_days=30))
    assert gate.check(CONTEXT).open
