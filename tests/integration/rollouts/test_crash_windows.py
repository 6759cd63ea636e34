"""Every crash window, deterministically: the process killed right after each target call, and
the database connection dropped right before each commit — for a good canary (promoted) and a
bad one (aborted by the judge), on PostgreSQL with the in-memory target.

After each fault the rollout must reach the state the target really has, every step must be sent
to the target exactly once (never twice, never undone), nothing may move toward the canary after
an abort, each step must be in the ledger once, the serving answer must match the target, and
``ledger verify`` must pass. The KServe and Argo variants are in ``test_crash_windows_kube.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import URL

from analyzer.db import make_engine
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import Rollout, RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.rollouts.control import StartRollout
from analyzer.targets.memory.target import InMemoryTarget
from tests import pg
from tests.integration.rollouts.crash_windows import (
    MOVES,
    CommitKiller,
    CrashingTarget,
    SimulatedCrash,
    World,
)
from tests.integration.rollouts.harness import ALICE, MODEL, PLAN

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

STABLE, CANARY = "fraud-00001", "fraud-00002"
GOOD_STEPS = [("set_weight", 10), ("set_weight", 25), ("set_weight", 50), ("promote", 100)]
BAD_STEPS = [("set_weight", 10), ("set_weight", 25), ("abort", 0)]


def good(_: Rollout) -> Verdict:
    return Verdict.PASS


def bad(rollout: Rollout) -> Verdict:
    return Verdict.FAIL if rollout.step_index == 1 else Verdict.PASS


@contextmanager
def world(server: URL, template: str, script: Callable[[Rollout], Verdict]) -> Iterator[World]:
    with pg.scratch_database(server, template=template) as url:
        db = make_engine(url.render_as_string(hide_password=False))
        target = InMemoryTarget()
        target.add_model(MODEL, stable_revision=STABLE, canary_revision=CANARY)
        try:
            yield World(db=db, target=CrashingTarget(inner=target), script=script)
        finally:
            db.dispose()


def start(w: World) -> str:
    request = StartRollout(
        model=MODEL, tier=Tier.HOT_PATH, baseline_revision=STABLE, canary_revision=CANARY,
        profile="fraud", plan=PLAN,
    )  # fmt: skip
    return w.service().start(request, ALICE).id


def check(w: World, rollout: Rollout, expected_moves: list[tuple[str, int]]) -> None:
    """The rollout ended where the target is; every move reached the target once, in order."""
    state = w.target.read_weight(MODEL)
    moves = [(op, weight) for op, weight in w.target.moves]
    if expected_moves[-1][0] == "promote":
        assert rollout.state is RolloutState.PROMOTED, rollout
        assert (state.stable_revision, state.canary_revision) == (CANARY, None)
        assert moves == expected_moves
    else:
        assert rollout.state is RolloutState.ABORTED, rollout
        assert (state.stable_revision, state.canary_weight) == (STABLE, 0)
        first_abort = moves.index(("abort", 0))
        assert moves[:first_abort] == expected_moves[:-1]
        assert set(moves[first_abort:]) == {("abort", 0)}, "moved toward the canary after abort"
    assert rollout.confirmed, rollout
    ledger = w.ledger
    entries = ledger.events(rollout_id=rollout.id, event_types=[EventType.TRAFFIC_CHANGED],
                            limit=1000).entries  # fmt: skip
    causes = Counter(e.data()["cause"] for e in entries)
    want = {f"step {i}" for i, (op, _) in enumerate(expected_moves) if op == "set_weight"}
    want.add("promoted" if expected_moves[-1][0] == "promote" else "aborted")
    assert set(causes) == want, causes
    assert all(n == 1 for n in causes.values()), causes
    serving = {r.revision: r.weight for r in ledger.serving_at(MODEL, w.clock.now).revisions}
    assert serving == {r.revision: float(r.percent) for r in state.shares if r.percent}
    report = ledger.verify()
    assert report.intact, report.summary()


def admin_url(server: URL) -> str:
    return server.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.mark.parametrize(("script", "expected"), [(good, GOOD_STEPS), (bad, BAD_STEPS)])
def test_killed_right_after_each_target_call(
    pg_server: URL, pg_template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]],
) -> None:  # fmt: skip
    for nth in range(1, len(expected) + 1):
        with world(pg_server, pg_template, script) as w:
            rollout_id = start(w)
            w.target.crash_after = nth
            final = w.run(rollout_id)
            assert w.target.crashed, f"move {nth} never happened"
            check(w, final, expected)
            after = [e for e in w.ledger.events(rollout_id=rollout_id, limit=1000).entries
                     if e.data().get("observed_after_restart")]  # fmt: skip
            if expected[nth - 1][0] != "abort":  # an abort is retried, not observed
                assert after, f"crash after move {nth}: no entry says what was found on restart"


@pytest.mark.parametrize(("script", "expected"), [(good, GOOD_STEPS), (bad, BAD_STEPS)])
def test_connection_dropped_right_before_each_commit(
    pg_server: URL, pg_template: str, script: Callable[[Rollout], Verdict],
    expected: list[tuple[str, int]],
) -> None:  # fmt: skip
    with world(pg_server, pg_template, script) as w:  # count the commits of a clean run
        rollout_id = start(w)
        counter = CommitKiller(w.db, admin_url(pg_server), at=None)
        check(w, w.run(rollout_id), expected)
        commits = counter.seen
    assert commits >= 10, "too few commits to say anything"
    for nth in range(1, commits + 1):
        with world(pg_server, pg_template, script) as w:
            rollout_id = start(w)
            killer = CommitKiller(w.db, admin_url(pg_server), at=nth)
            final = w.run(rollout_id)
            assert killer.fired, f"commit {nth} of {commits} never came"
            check(w, final, expected)


def test_an_api_abort_killed_after_the_target_call_is_confirmed_not_undone(
    pg_server: URL, pg_template: str
) -> None:
    with world(pg_server, pg_template, good) as w:
        rollout_id = start(w)
        w.run(rollout_id, minutes=4)  # at 25 %
        assert w.target.read_weight(MODEL).canary_weight == 25
        w.target.crash_after = len(w.target.moves) + 1
        with pytest.raises(SimulatedCrash):
            w.service().abort(rollout_id, ALICE, "pager: fraud FPR up")
        recorded = w.service().get(rollout_id)
        assert recorded.state is RolloutState.ABORTED  # the decision committed before the call
        assert recorded.applied_weight == 25  # and says it is not confirmed
        final = w.run(rollout_id)
        check(w, final, [("set_weight", 10), ("set_weight", 25), ("abort", 0)])
        aborts = w.ledger.events(rollout_id=rollout_id, event_types=[EventType.ROLLOUT_ABORTED],
                                 limit=10).entries  # fmt: skip
        assert [(a.actor, a.data()["reason"]) for a in aborts] == [("alice", "pager: fraud FPR up")]


def test_every_move_is_one_of_the_three(pg_server: URL, pg_template: str) -> None:
    """The injector sees every traffic move the engine makes (so the sweeps above cover all)."""
    with world(pg_server, pg_template, good) as w:
        w.run(start(w))
        assert {op for op, _ in w.target.moves} <= set(MOVES)
        assert len(w.target.moves) == len(GOOD_STEPS)
