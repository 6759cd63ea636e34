"""Crash safety and replica coordination of the rollout engine on PostgreSQL.

Worker processes run the real engine against a target whose state survives them. The crash
tests SIGKILL one worker, or two replicas at once (either first, or both together), at random
moments; the replica test runs two workers at once. Every way, every rollout must end correctly
and confirmed (none stuck, every abort's 0 % confirmed by the target), every step must be
executed exactly once (one driver ``traffic_changed`` entry per step), and the ledger must
verify.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import RolloutState, Step, StepPlan
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.rollouts.service import RolloutService
from tests.integration.rollouts.durable import TableTarget

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FAST_PLAN = StepPlan(
    steps=tuple(Step(weight=w, dwell=timedelta(0)) for w in (10, 25, 50, 100)),
    analysis_interval=timedelta(milliseconds=20),
)
STEP_CAUSES = {"step 0", "step 1", "step 2", "promoted", "aborted"}


def start_rollouts(engine: Engine, count: int) -> tuple[RolloutService, list[str]]:
    ledger, target = Ledger(engine), TableTarget(engine)
    service = RolloutService(engine, ledger, target)
    ids = []
    for i in range(count):
        ref = ModelRef(namespace="fleet", name=f"{'bad' if i % 3 == 0 else 'good'}-{i:03d}")
        target.add(ref, stable=f"{ref.name}-1", canary=f"{ref.name}-2")
        request = StartRollout(
            model=ref, tier=Tier.LONG_TAIL, baseline_revision=f"{ref.name}-1",
            canary_revision=f"{ref.name}-2", profile="any", plan=FAST_PLAN,
        )  # fmt: skip
        ids.append(service.start(request, Actor(subject="ci", roles=frozenset())).id)
    return service, ids


def worker(url: str, replica: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.rollouts.worker", url, replica],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def check_outcome(engine: Engine, service: RolloutService, ids: list[str]) -> None:
    target, ledger = TableTarget(engine), Ledger(engine)
    for rollout_id in ids:
        rollout = service.get(rollout_id)
        assert rollout.state.terminal, f"stuck: {rollout}"
        assert rollout.confirmed, f"unconfirmed: {rollout}"
        state = target.read_weight(rollout.model)
        if rollout.model.name.startswith("bad-"):
            assert rollout.state is RolloutState.ABORTED, rollout
            assert (state.canary_weight, state.stable_revision) == (0, rollout.baseline_revision)
        else:
            assert rollout.state is RolloutState.PROMOTED, rollout
            assert state.stable_revision == rollout.canary_revision
        steps = Counter(
            e.data()["cause"]
            for e in ledger.events(
                rollout_id=rollout_id, event_types=[EventType.TRAFFIC_CHANGED], limit=1000
            ).entries
            if e.actor.startswith("canary-analyzer/") and e.data()["cause"] in STEP_CAUSES
        )
        assert all(n == 1 for n in steps.values()), (rollout.model, steps)
        expected = (
            {"step 0", "step 1", "aborted"}
            if rollout.model.name.startswith("bad-")
            else ({"step 0", "step 1", "step 2", "promoted"})
        )
        assert set(steps) == expected, (rollout.model, steps)
    report = ledger.verify()
    assert report.intact, report.summary()


def test_kill_minus_nine_at_random_points(pg_engine: Engine, pg_url: str) -> None:
    service, ids = start_rollouts(pg_engine, 50)
    rng = random.Random(20261127)
    kills = 0
    for _ in range(25):
        proc = worker(pg_url, f"crashy-{kills}")
        time.sleep(rng.uniform(0.3, 1.2))
        if proc.poll() is not None:
            break
        proc.kill()
        proc.wait()
        kills += 1
    final = worker(pg_url, "survivor")
    _, stderr = final.communicate(timeout=180)
    assert final.returncode == 0, stderr.decode()[-2000:]
    assert kills >= 3, "the workers finished before they could be killed: the test proved nothing"
    check_outcome(pg_engine, service, ids)


def test_kill_minus_nine_at_random_points_with_two_replicas(pg_engine: Engine, pg_url: str) -> None:
    """Two replicas at once, either or both killed at random moments, over and over: 0 steps
    twice, 0 rollouts stuck, every abort confirmed, the chain intact."""
    service, ids = start_rollouts(pg_engine, 50)
    rng = random.Random(20261205)
    kills, finished = 0, False
    for round_ in range(12):
        pair = [worker(pg_url, f"a-{round_}"), worker(pg_url, f"b-{round_}")]
        first = rng.choice([[0], [1], [0, 1]])  # one dies first, or both at once
        killed: set[int] = set()
        for victims in (first, [0, 1]):
            time.sleep(rng.uniform(0.2, 0.8))
            for i in set(victims) - killed:
                if pair[i].poll() is not None:  # it ran out of work before its death
                    finished = True
                    continue
                pair[i].kill()
                pair[i].wait()
                killed.add(i)
                kills += 1
        if finished:
            break
    survivors = [worker(pg_url, "survivor-a"), worker(pg_url, "survivor-b")]
    for proc in survivors:
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr.decode()[-2000:]
    assert kills >= 5, "the workers finished before they could be killed: the test proved nothing"
    check_outcome(pg_engine, service, ids)


def test_two_replicas_execute_every_step_exactly_once(pg_engine: Engine, pg_url: str) -> None:
    service, ids = start_rollouts(pg_engine, 100)
    procs = [worker(pg_url, "replica-a"), worker(pg_url, "replica-b")]
    for proc in procs:
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr.decode()[-2000:]
    check_outcome(pg_engine, service, ids)
    moves = Ledger(pg_engine).events(event_types=[EventType.TRAFFIC_CHANGED], limit=1000)
    by_replica = Counter(e.actor for e in moves.entries)
    # both replicas did real work, and between them every step of every rollout exactly once
    assert set(by_replica) == {"canary-analyzer/replica-a", "canary-analyzer/replica-b"}, by_replica
    assert min(by_replica.values()) >= 50, by_replica
