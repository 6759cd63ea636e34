"""The rollout engine and service on PostgreSQL with the in-memory target."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.domain.errors import ConflictError, PermissionDeniedError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.ledger.chain import EntryRecord
from tests.integration.rollouts.harness import ALICE, BOB, MODEL, Rig, ScriptedGates

pytestmark = pytest.mark.postgres


def entries(rig: Rig, kind: EventType) -> list[EntryRecord]:
    return list(rig.ledger.events(model=MODEL, event_types=[kind], limit=1000).entries)


def weights(rig: Rig) -> list[int]:
    return [e.data()["canary_weight"] for e in entries(rig, EventType.TRAFFIC_CHANGED)]


def test_good_canary_walks_every_step_once_and_is_promoted(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    rig.run(minutes=12)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.PROMOTED
    assert weights(rig) == [10, 25, 50, 100]
    state = rig.target.read_weight(MODEL)
    assert (state.stable_revision, state.canary_revision) == ("fraud-00002", None)
    assert len(entries(rig, EventType.ROLLOUT_PROMOTED)) == 1
    # a new step starts a new analysis: the judge state holds only the last step's looks
    assert final.judge_state["looks"] == 2
    assert rig.ledger.verify().intact


def test_bad_canary_is_aborted_to_zero_at_the_first_failing_look(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.FAIL if r.step_index == 1 else Verdict.PASS)
    rollout = rig.start()
    rig.run(minutes=8)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.ABORTED
    assert weights(rig) == [10, 25, 0]
    assert rig.weight() == 0
    # looks at 10 %: +1 min (dwell not over), +2 min (pass, advance); the first look at 25 % fails
    assert rig.analyzer.looks == 3
    aborted = entries(rig, EventType.ROLLOUT_ABORTED)
    assert "scripted fail" in aborted[0].data()["reason"]


def test_consecutive_errors_fail_the_rollout_never_promote(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.ERROR)
    rollout = rig.start()
    rig.run(minutes=6)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.FAILED
    assert "3 consecutive analysis errors" in (final.reason or "")
    assert weights(rig) == [10, 0]


def test_analysis_that_raises_counts_as_an_error(pg_engine: Engine) -> None:
    def explode(_: object) -> Verdict:
        raise RuntimeError("prometheus unreachable")

    rig = Rig(pg_engine, explode)
    rollout = rig.start()
    rig.run(minutes=6)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.FAILED
    assert "prometheus unreachable" in (final.reason or "")


def test_closed_gates_hold_then_open_gates_advance(pg_engine: Engine) -> None:
    gates = ScriptedGates(open_=False)
    rig = Rig(pg_engine, lambda r: Verdict.PASS, gates=gates)
    rollout = rig.start()
    rig.run(minutes=5)
    held = rig.service.get(rollout.id)
    assert held.state is RolloutState.PENDING
    assert rig.weight() == 0
    checks = entries(rig, EventType.GATE_CHECKED)
    assert len(checks) == 5
    assert checks[0].data()["open"] is False
    gates.open = True
    rig.run(minutes=12)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED


def test_abort_through_the_service_is_immediate_idempotent_and_wins(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    rig.run(minutes=4)
    assert rig.weight() == 25
    aborted = rig.service.abort(rollout.id, ALICE, "p99 page from on-call")
    assert aborted.state is RolloutState.ABORTED
    assert rig.weight() == 0  # at once, not at the next tick
    again = rig.service.abort(rollout.id, ALICE, "double click")
    assert again.version == aborted.version
    rig.run(minutes=5)
    assert rig.weight() == 0
    assert len(entries(rig, EventType.ROLLOUT_ABORTED)) == 1
    assert entries(rig, EventType.ROLLOUT_ABORTED)[0].actor == "alice"
    assert rig.service.applied_weight(rollout.id) == 0


def test_stale_tick_after_an_abort_is_discarded(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    rig.run(minutes=3)
    seen = rig.service.get(rollout.id)
    assert [r.id for r in rig.engine._claim()] == [rollout.id]
    assert rig.engine._claim() == []  # leased: a second claimer (replica) skips it
    evaluation = rig.engine._evaluate(seen)
    rig.service.abort(rollout.id, ALICE, "operator abort while the tick evaluates")
    rig.engine._apply(seen, evaluation)
    assert rig.weight() == 0
    assert rig.service.get(rollout.id).state is RolloutState.ABORTED


def test_pause_stops_progress_and_resume_continues(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    rig.run(minutes=1)
    rig.service.pause(rollout.id, ALICE, "investigating a dashboard")
    rig.run(minutes=10)
    assert rig.service.get(rollout.id).step_index == 0
    assert rig.weight() == 10
    rig.service.resume(rollout.id, ALICE)
    rig.run(minutes=10)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED
    kinds = [e.event_type for e in rig.ledger.events(rollout_id=rollout.id, limit=1000).entries]
    assert kinds.count("rollout_paused") == 1
    assert kinds.count("rollout_resumed") == 1


def test_target_failures_are_retried_and_never_claimed(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    rig.target.fail_next(2)
    rig.engine.tick()
    after_failure = rig.service.get(rollout.id)
    assert after_failure.state is RolloutState.PENDING
    assert rig.service.applied_weight(rollout.id) is None
    assert len(entries(rig, EventType.TARGET_ERROR)) == 1
    rig.clock.advance(timedelta(seconds=10))
    rig.engine.tick()
    rig.clock.advance(timedelta(seconds=10))
    rig.engine.tick()
    assert rig.service.get(rollout.id).state is RolloutState.PROGRESSING
    assert rig.service.applied_weight(rollout.id) == 10
    assert weights(rig) == [10]


def test_a_weight_set_outside_is_recorded_kept_and_pauses_until_a_person_resumes(
    pg_engine: Engine,
) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.INCONCLUSIVE)
    rollout = rig.start()
    rig.run(minutes=1)
    rig.target.set_weight(MODEL, 40)  # someone with kubectl; no intent of ours explains it
    rig.run(minutes=3)
    assert rig.weight() == 40  # recorded, never silently pushed back
    paused = rig.service.get(rollout.id)
    assert paused.paused
    assert paused.applied_weight == 40
    assert paused.step_index == 0
    assert "outside canary-analyzer" in (paused.reason or "")
    moves = entries(rig, EventType.TRAFFIC_CHANGED)
    assert [(e.data()["cause"], e.data()["source"]) for e in moves] == [
        ("step 0", "confirmed"), ("outside canary-analyzer", "observed"),
    ]  # fmt: skip
    assert rig.ledger.serving_at(MODEL, rig.clock.now).revisions[1].weight == 40
    rig.service.resume(rollout.id, ALICE)  # a person decides: the step's weight comes back
    rig.run(minutes=1)
    restored = rig.service.get(rollout.id)
    assert rig.weight() == 10
    assert restored.applied_weight == 10
    assert not restored.paused
    assert entries(rig, EventType.TRAFFIC_CHANGED)[-1].data()["cause"] == "step 0"


def test_four_eyes_approval(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    with pytest.raises(PermissionDeniedError, match="four eyes"):
        rig.service.approve(rollout.id, ALICE, "lgtm")
    rig.service.approve(rollout.id, BOB, "model-risk review MRM-118 done")
    approvals = entries(rig, EventType.APPROVAL_GIVEN)
    assert [(a.actor, a.data()["step"]) for a in approvals] == [("bob", 3)]


def test_one_active_rollout_per_model(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rig.start()
    with pytest.raises(ConflictError, match="already has an active rollout"):
        rig.start()


def test_serving_at_follows_the_driven_rollout(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rig.start()
    start = rig.clock.now
    rig.run(minutes=12)
    at_step_1 = rig.ledger.serving_at(MODEL, start + timedelta(minutes=3, seconds=30))
    assert {r.revision: r.weight for r in at_step_1.revisions} == {
        "fraud-00001": 75.0,
        "fraud-00002": 25.0,
    }
    after = rig.ledger.serving_at(MODEL, rig.clock.now)
    assert [(r.revision, r.weight) for r in after.revisions] == [("fraud-00002", 100.0)]


def test_abort_the_target_refused_is_retried_until_confirmed(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    rig.run(minutes=2)
    assert rig.weight() == 10
    rig.target.fail_next(1)
    aborted = rig.service.abort(rollout.id, ALICE, "bad dashboards")
    assert aborted.state is RolloutState.ABORTED
    assert rig.weight() == 10  # the target refused: nothing claims otherwise
    assert rig.service.applied_weight(rollout.id) == 10
    assert not aborted.confirmed
    assert aborted.applied_weight == 10
    rig.clock.advance(timedelta(seconds=10))
    rig.engine.tick()
    assert rig.weight() == 0
    assert rig.service.applied_weight(rollout.id) == 0
    causes = [e.data()["cause"] for e in entries(rig, EventType.TRAFFIC_CHANGED)]
    assert causes[-1] == "aborted"
    rig.run(minutes=3)
    assert len(entries(rig, EventType.TARGET_ERROR)) == 1  # no retries once confirmed


def test_abort_of_a_model_whose_object_is_gone_is_confirmed_not_retried(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start()
    rig.target = type(rig.target)()  # a target that no longer knows the model
    rig.service._target = rig.target
    rig.service.abort(rollout.id, ALICE, "InferenceService deleted by hand")
    assert rig.service.applied_weight(rollout.id) == 0
    causes = [e.data()["cause"] for e in entries(rig, EventType.TRAFFIC_CHANGED)]
    assert causes == ["object gone"]


class _Observers:
    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def recorded(self, events: Sequence[LedgerEvent]) -> None:
        self.seen.append([e.type.value for e in events])


class _BrokenObserver:
    def recorded(self, events: Sequence[LedgerEvent]) -> None:
        raise RuntimeError("metrics backend down")


def test_observers_see_each_committed_tick_and_a_broken_one_changes_nothing(
    pg_engine: Engine,
) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    watching = _Observers()
    rig.engine.add_observer(_BrokenObserver())  # first, so its failure precedes the other
    rig.engine.add_observer(watching)
    rollout = rig.start()
    rig.run(minutes=60)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED
    told = [kind for tick in watching.seen for kind in tick]
    recorded = [e.event_type for e in rig.ledger.events(rollout_id=rollout.id, limit=1000).entries]
    # every entry a tick wrote, in order (the start's two entries came from the service)
    assert told == recorded[2:]
    assert "rollout_promoted" in told
