"""The embedded default (synthetic source + memory target) can run a driven rollout.

Before, the synthetic source gave both arms half the requests whatever the split, so at a 10 %
step the judge's sample-ratio check answered ``error`` and most rollouts failed after a few
looks (issue 20). Now the source follows the memory target's split; ``srm_canary_share`` still
makes the mismatch on purpose, and the check must catch it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from analyzer.config import Settings
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import Step, StepPlan
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import AnyRevisionSynthetic, Service, build_service

MODEL = ModelRef(namespace="risk-prod", name="fraud-scorer")
PLAN = StepPlan(
    steps=(Step(weight=10, dwell=timedelta(minutes=10)), Step(weight=100, dwell=timedelta(0))),
    analysis_interval=timedelta(minutes=1),
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def analyses_at_ten_percent(settings: Settings) -> list[dict[str, Any]]:
    """Start a rollout on the embedded default, tick through six looks at its 10 % step, and
    return what each look recorded."""
    clock = Clock()
    service: Service = build_service(settings, clock=clock)
    try:
        assert isinstance(service.target, InMemoryTarget)
        assert isinstance(service.source, AnyRevisionSynthetic)
        rollout = service.rollouts.start(
            StartRollout(
                model=MODEL, tier=Tier.LONG_TAIL, baseline_revision="fraud-00001",
                canary_revision="fraud-00002", profile="knative", plan=PLAN,
            ),
            Actor(subject="alice", roles=frozenset({"operator"})),
        )  # fmt: skip
        service.rollout_engine.tick()  # enters the 10 % step
        assert service.target.read_weight(MODEL).canary_weight == 10
        for _ in range(6):
            clock.now += PLAN.analysis_interval
            service.rollout_engine.tick()
        page = service.ledger.events(
            rollout_id=rollout.id, event_types=[EventType.ANALYSIS_RECORDED], limit=100
        )
        return [e.data()["result"] for e in page.entries]
    finally:
        service.close()


@pytest.mark.postgres
def test_the_synthetic_source_follows_the_memory_targets_split(pg_url: str) -> None:
    results = analyses_at_ten_percent(Settings(database_url=SecretStr(pg_url)))
    assert len(results) == 6
    for result in results:
        assert "sample-ratio" not in result["reason"]
        assert result["verdict"] in {"pass", "inconclusive"}


@pytest.mark.postgres
def test_a_deliberate_sample_ratio_mismatch_is_caught(pg_url: str) -> None:
    settings = Settings(
        database_url=SecretStr(pg_url),
        synthetic={"srm_canary_share": 0.5},  # type: ignore[arg-type]
    )
    results = analyses_at_ten_percent(settings)
    assert results, "no look was recorded"
    assert any("sample-ratio mismatch" in r["reason"] for r in results)
    assert all(r["verdict"] in {"error", "fail"} for r in results[-3:])


def test_shares_the_memory_target_does_not_route_fall_back_to_half() -> None:
    target = InMemoryTarget()
    target.add_model(MODEL, stable_revision="a", canary_revision="b", weight=25)
    source = AnyRevisionSynthetic(origin=datetime.now(UTC), shares=target.share_of)
    assert source.canary_share(MODEL, "b") == 0.25
    assert source.canary_share(MODEL, "zz") == 0.5
    assert source.canary_share(ModelRef(namespace="x", name="y"), "b") == 0.5
    assert target.calls == []  # a peek, not a target call
    forced = AnyRevisionSynthetic(
        origin=datetime.now(UTC), shares=target.share_of, srm_canary_share=0.5
    )
    assert forced.canary_share(MODEL, "b") == 0.5
