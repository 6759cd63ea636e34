"""Ticks in batches: claiming with one statement, many batches per tick within a time budget,
the wait decisions of a batch written in one transaction, and stale work discarded per rollout.

Before, a tick claimed at most 20 rollouts and wrote each in its own transactions: one replica
reconciled at most 1,200 rollouts a minute (issue 20).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event

from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import Rollout, RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from tests.integration.rollouts.harness import ALICE, Rig

pytestmark = pytest.mark.postgres


def models(n: int) -> list[ModelRef]:
    return [ModelRef(namespace="risk-prod", name=f"scorer-{i:03d}") for i in range(n)]


def start_many(rig: Rig, n: int) -> list[Rollout]:
    started = []
    for model in models(n):
        rig.target.add_model(model, stable_revision="fraud-00001", canary_revision="fraud-00002")
        started.append(rig.start(model=model))
    return started


def engine(rig: Rig, pg_engine: Engine, replica: str, **kw: Any) -> RolloutEngine:
    return RolloutEngine(
        pg_engine, Ledger(pg_engine, clock=rig.clock), rig.target, rig.analyzer, OpenGates(),
        clock=rig.clock, replica_id=replica, **kw,
    )  # fmt: skip


@contextmanager
def commits(pg_engine: Engine) -> Iterator[list[int]]:
    counted: list[int] = []

    def on_commit(_: Any) -> None:
        counted.append(1)

    event.listen(pg_engine, "commit", on_commit)
    try:
        yield counted
    finally:
        event.remove(pg_engine, "commit", on_commit)


def test_a_tick_claims_batch_after_batch_until_nothing_is_due(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.INCONCLUSIVE)
    start_many(rig, 30)
    ticker = engine(rig, pg_engine, "r1", batch=8)
    assert ticker.tick() == 30  # 8 + 8 + 8 + 6: every due rollout, not one batch
    assert all(rig.weight_of(m) == 10 for m in models(30))
    rig.clock.advance()
    assert ticker.tick() == 30
    looks = rig.ledger.events(event_types=[EventType.ANALYSIS_RECORDED], limit=1000).entries
    assert len(looks) == 30
    assert ticker.tick() == 0  # each waits for its next look, a minute on


def test_the_tick_budget_ends_a_tick_after_the_batch_in_hand(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.INCONCLUSIVE)
    start_many(rig, 12)
    ticker = engine(rig, pg_engine, "r1", batch=5, tick_budget=0.0)
    assert ticker.tick() == 5
    assert ticker.tick() == 5
    assert ticker.tick() == 2


def test_a_batch_of_waits_is_written_in_one_transaction(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.INCONCLUSIVE)
    start_many(rig, 25)
    ticker = engine(rig, pg_engine, "r1", batch=100)
    ticker.tick()  # enters the first step: an intent and a confirmation per rollout
    rig.clock.advance()
    head_before = rig.ledger.head()[0]
    with commits(pg_engine) as counted:
        assert ticker.tick() == 25
    # the claim, one write of 25 wait decisions, and the claim that found nothing more due;
    # before: three transactions per rollout
    assert len(counted) <= 3
    assert rig.ledger.head()[0] == head_before + 25  # one look entry each
    for rollout in rig.service.list(state=RolloutState.PROGRESSING, limit=100):
        assert rollout.next_tick_at == rig.clock.now + timedelta(minutes=1)
    assert rig.ledger.verify().intact


def test_a_rollout_changed_while_its_batch_evaluates_is_discarded_alone(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.INCONCLUSIVE)
    started = start_many(rig, 6)
    ticker = engine(rig, pg_engine, "r1", batch=100)
    ticker.tick()
    rig.clock.advance()
    victim = started[2]

    def operator_aborts_meanwhile(rollout: Rollout) -> Verdict:
        if rollout.id == victim.id:
            rig.service.abort(rollout.id, ALICE, "p99 page while the tick evaluates")
        return Verdict.INCONCLUSIVE

    rig.analyzer.script = operator_aborts_meanwhile
    assert ticker.tick() == 6
    aborted = rig.service.get(victim.id)
    assert aborted.state is RolloutState.ABORTED
    assert rig.weight_of(victim.model) == 0
    looks = rig.ledger.events(
        rollout_id=victim.id, event_types=[EventType.ANALYSIS_RECORDED], limit=10
    )
    assert list(looks.entries) == []  # the stale look was not recorded
    for other in started[:2] + started[3:]:
        current = rig.service.get(other.id)
        assert current.state is RolloutState.PROGRESSING
        assert current.next_tick_at == rig.clock.now + timedelta(minutes=1)
    assert rig.ledger.verify().intact


def test_two_replicas_claiming_together_never_share_a_rollout(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.INCONCLUSIVE)
    start_many(rig, 15)
    first = engine(rig, pg_engine, "r1", batch=10)
    second = engine(rig, pg_engine, "r2", batch=10)
    mine = {r.id for r in first._claim()}
    theirs = {r.id for r in second._claim()}
    assert len(mine) == 10
    assert len(theirs) == 5
    assert mine.isdisjoint(theirs)


def test_a_rollout_failed_by_consecutive_errors_stores_the_limit(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.ERROR)
    (rollout,) = start_many(rig, 1)
    ticker = engine(rig, pg_engine, "r1")
    for _ in range(5):
        ticker.tick()
        rig.clock.advance()
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.FAILED
    assert final.consecutive_errors == final.plan.consecutive_error_limit == 3
