"""Every strategy through the engine's one state machine, on PostgreSQL with the memory target
(which is also a request mirror): what moves, what the ledger says, and what served when."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import Rollout, RolloutState, Step, StepPlan, Strategy
from analyzer.domain.verdict import Verdict
from analyzer.ledger.chain import EntryRecord
from analyzer.wiring import LedgerShadowVerdicts
from gates.base import GateContext
from gates.shadow import ShadowGate
from tests.integration.rollouts.harness import MODEL, Rig, ScriptedGates

pytestmark = pytest.mark.postgres

BLUE_GREEN = StepPlan(
    steps=(Step(weight=100, dwell=timedelta(minutes=3)),),
    analysis_interval=timedelta(minutes=1),
    max_bake=timedelta(minutes=10),
    strategy=Strategy.BLUE_GREEN,
)
SHADOW = StepPlan(
    steps=(Step(weight=50, dwell=timedelta(minutes=3)),),
    analysis_interval=timedelta(minutes=1),
    max_bake=timedelta(minutes=10),
    strategy=Strategy.SHADOW,
)
PINNED = StepPlan(steps=(Step(weight=100, dwell=timedelta(0)),), strategy=Strategy.PINNED)


def entries(rig: Rig, kind: EventType) -> list[EntryRecord]:
    return list(rig.ledger.events(model=MODEL, event_types=[kind], limit=1000).entries)


def served(rig: Rig, minute: float) -> dict[str, float]:
    """What the ledger says served at T0 + ``minute`` (revision -> percent)."""
    from tests.integration.rollouts.harness import T0

    answer = rig.ledger.serving_at(MODEL, T0 + timedelta(minutes=minute))
    return {r.revision: r.weight for r in answer.revisions}


def by_minute(rig: Rig, kind: EventType) -> list[tuple[float, dict[str, object]]]:
    from tests.integration.rollouts.harness import T0

    return [((e.recorded_at - T0).total_seconds() / 60, e.data()) for e in entries(rig, kind)]


def test_blue_green_cuts_verifies_and_promotes(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    rollout = rig.start(plan=BLUE_GREEN, tier=Tier.STANDARD)
    rig.run(minutes=1)  # minute 0: gates, then the cut
    assert rig.weight() == 100  # the new revision serves everything; the old one stays deployed
    assert rig.target.read_weight(MODEL).canary_revision == "fraud-00002"
    cut = rig.service.get(rollout.id)
    assert (cut.state, cut.canary_weight, cut.strategy) == (
        RolloutState.PROGRESSING, 100, Strategy.BLUE_GREEN,
    )  # fmt: skip
    rig.run(minutes=5)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.PROMOTED
    changes = by_minute(rig, EventType.TRAFFIC_CHANGED)
    assert [(m, d["canary_weight"], d["cause"]) for m, d in changes] == [
        (0, 100, "step 0"),
        (3, 100, "promoted"),
    ]
    assert all(d["strategy"] == "blue_green" for _, d in changes)
    # inside each phase the ledger names exactly what served
    assert served(rig, -0.5) == {}
    assert served(rig, 1.5) == {"fraud-00002": 100.0}  # verification window: the cut holds
    assert served(rig, 4) == {"fraud-00002": 100.0}
    state = rig.target.read_weight(MODEL)
    assert (state.stable_revision, state.canary_revision) == ("fraud-00002", None)
    assert rig.ledger.verify().intact


def test_blue_green_that_fails_verification_is_re_pointed_back(pg_engine: Engine) -> None:
    # the first look after the cut is fine, the second finds harm
    rig = Rig(pg_engine, lambda r: Verdict.FAIL if rig.analyzer.looks >= 2 else Verdict.PASS)
    rollout = rig.start(plan=BLUE_GREEN, tier=Tier.STANDARD)
    rig.run(minutes=5)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.ABORTED
    assert rig.weight() == 0  # re-pointed: the previous revision serves everything again
    assert rig.target.read_weight(MODEL).stable_revision == "fraud-00001"
    changes = by_minute(rig, EventType.TRAFFIC_CHANGED)
    assert [(m, d["canary_weight"]) for m, d in changes] == [(0, 100), (2, 0)]
    assert served(rig, 1.5) == {"fraud-00002": 100.0}
    assert served(rig, 2.5) == {"fraud-00001": 100.0}
    assert "scripted fail" in entries(rig, EventType.ROLLOUT_ABORTED)[0].data()["reason"]


def test_pinned_is_a_gated_cutover_without_analysis(pg_engine: Engine) -> None:
    gates = ScriptedGates(open_=False)
    rig = Rig(pg_engine, lambda r: Verdict.FAIL, gates)
    rollout = rig.start(plan=PINNED, tier=Tier.LONG_TAIL)
    rig.run(minutes=2)
    held = rig.service.get(rollout.id)
    assert held.state is RolloutState.PENDING
    assert rig.weight() == 0
    gate_checks = entries(rig, EventType.GATE_CHECKED)
    assert gate_checks
    assert gate_checks[0].data()["target_step"] == 0
    gates.open = True
    rig.run(minutes=1)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.PROMOTED
    assert rig.analyzer.looks == 0  # nothing judged: a pinned cutover is a person's call
    started = entries(rig, EventType.ROLLOUT_STARTED)[0].data()
    assert started["strategy"] == "pinned"
    assert [d["cause"] for _, d in by_minute(rig, EventType.TRAFFIC_CHANGED)] == ["promoted"]
    assert served(rig, 2.5) == {"fraud-00002": 100.0}


def _shadow(pg_engine: Engine, verdict: Verdict) -> tuple[Rig, Rollout]:
    rig = Rig(pg_engine, lambda r: verdict, mirror=True)
    rollout = rig.start(plan=SHADOW, tier=Tier.REGULATED, model_version="18")
    rig.run(minutes=1)
    assert rig.target.mirrored(MODEL) == ("fraud-00002", 50)
    assert rig.weight() == 0  # the challenger serves nothing
    return rig, rollout


def test_shadow_passes_without_ever_serving(pg_engine: Engine) -> None:
    rig, rollout = _shadow(pg_engine, Verdict.PASS)
    rig.run(minutes=5)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.SHADOW_PASSED
    assert final.canary_weight == 0
    assert final.confirmed
    assert rig.target.mirrored(MODEL) is None  # the mirror is torn down
    mirror = by_minute(rig, EventType.MIRROR_CHANGED)
    assert [(m, d["mirror_percent"], d["served"]) for m, d in mirror] == [
        (0, 50, False),
        (3, 0, False),
    ]
    assert mirror[0][1]["mirrored_revision"] == "fraud-00002"
    assert entries(rig, EventType.TRAFFIC_CHANGED) == []  # no serving traffic ever moved
    assert entries(rig, EventType.ROLLOUT_PROMOTED) == []
    verdicts = [e.data() for e in entries(rig, EventType.SHADOW_JUDGED)]
    assert [(v["verdict"], v["model_version"]) for v in verdicts] == [("passed", "18")]
    # the ledger never names the shadow revision as serving
    assert "fraud-00002" not in served(rig, 1.5)
    # a later canary of version 18 may require the pass (the shadow gate reads the ledger)
    gate = ShadowGate(LedgerShadowVerdicts(rig.ledger))
    context = GateContext(
        model=MODEL, tier=Tier.REGULATED, rollout_id="next", canary_revision="fraud-00002",
        target_step=0, target_weight=10, initiator="alice", now=rig.clock() + timedelta(days=2),
        canary_version="18",
    )  # fmt: skip
    opened = gate.check(context)
    assert opened.open, opened.reason
    assert opened.evidence["latest"]["rollout_id"] == rollout.id
    other = gate.check(dataclasses.replace(context, canary_version="19"))
    assert not other.open
    late = gate.check(dataclasses.replace(context, now=context.now + timedelta(days=30)))
    assert "days old" in late.reason


def test_shadow_fails_tears_down_the_mirror_and_records_it(pg_engine: Engine) -> None:
    rig, rollout = _shadow(pg_engine, Verdict.FAIL)
    rig.run(minutes=2)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.ABORTED
    assert final.confirmed
    assert rig.target.mirrored(MODEL) is None
    verdicts = [e.data()["verdict"] for e in entries(rig, EventType.SHADOW_JUDGED)]
    assert verdicts == ["failed"]
    context = GateContext(
        model=MODEL, tier=Tier.REGULATED, rollout_id="next", canary_revision="fraud-00002",
        target_step=0, target_weight=10, initiator="alice", now=rig.clock(), canary_version="18",
    )  # fmt: skip
    refused = ShadowGate(LedgerShadowVerdicts(rig.ledger)).check(context)
    assert not refused.open
    assert "failed" in refused.reason
    assert [d["mirror_percent"] for _, d in by_minute(rig, EventType.MIRROR_CHANGED)] == [50, 0]


def test_shadow_abort_by_a_person_removes_the_mirror(pg_engine: Engine) -> None:
    from tests.integration.rollouts.harness import ALICE

    rig, rollout = _shadow(pg_engine, Verdict.INCONCLUSIVE)
    aborted = rig.service.abort(rollout.id, ALICE, "challenger retrained")
    assert aborted.state is RolloutState.ABORTED
    assert aborted.confirmed
    assert rig.target.mirrored(MODEL) is None


def test_shadow_without_a_mirror_is_refused_at_start(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)  # no mirror configured
    with pytest.raises(InvalidInputError, match="request mirror") as caught:
        rig.start(plan=SHADOW)
    assert caught.value.field == "strategy"


def test_regulated_models_are_not_cut_over(pg_engine: Engine) -> None:
    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    for plan in (BLUE_GREEN, PINNED):
        with pytest.raises(InvalidInputError, match="regulated") as caught:
            rig.start(plan=plan, tier=Tier.REGULATED)
        assert caught.value.field == "strategy"


def test_a_mirror_removed_behind_our_back_ends_the_run_as_observed(pg_engine: Engine) -> None:
    rig, rollout = _shadow(pg_engine, Verdict.INCONCLUSIVE)
    rig.target.stop_mirror(MODEL)  # a controller rewrote the VirtualService
    rig.run(minutes=1)
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.ABORTED
    assert rig.target.mirrored(MODEL) is None  # never re-created behind anyone's back
    last = by_minute(rig, EventType.MIRROR_CHANGED)[-1][1]
    assert (last["mirror_percent"], last["source"]) == (0, "observed")
    assert entries(rig, EventType.SHADOW_JUDGED) == []  # a run that lost its copies is not judged


def test_a_shadow_pass_whose_confirmation_was_lost_is_settled_as_passed(
    pg_engine: Engine,
) -> None:
    """The mirror was removed for the pass, then the call's answer was lost (a timeout after
    the write): the next tick reads the mesh and records the pass, not an abort."""
    from analyzer.domain.errors import RetryableError
    from analyzer.rollouts.engine import RolloutEngine
    from analyzer.rollouts.ports import OpenGates

    rig, rollout = _shadow(pg_engine, Verdict.PASS)
    real = rig.target

    class LosesTheAnswer:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def stop_mirror(self, ref: object) -> object:
            real.stop_mirror(ref)  # type: ignore[arg-type]
            raise RetryableError("timed out after the write")

    engine = RolloutEngine(
        pg_engine, rig.ledger, real, rig.analyzer, OpenGates(), clock=rig.clock,
        replica_id="test-replica", mirror=LosesTheAnswer(),  # type: ignore[arg-type]
    )  # fmt: skip
    for _ in range(3):  # minutes 1..3: the window passes, the finish is asked and lost
        engine.tick()
        rig.clock.advance()
    pending = rig.service.get(rollout.id)
    assert pending.pending_move is not None
    assert real.mirrored(MODEL) is None
    rig.run(minutes=1)  # the healthy engine settles it from what the mesh shows
    final = rig.service.get(rollout.id)
    assert final.state is RolloutState.SHADOW_PASSED
    assert final.confirmed
    verdicts = [e.data() for e in entries(rig, EventType.SHADOW_JUDGED)]
    assert [v["verdict"] for v in verdicts] == ["passed"]
    assert entries(rig, EventType.ROLLOUT_ABORTED) == []
    last = by_minute(rig, EventType.MIRROR_CHANGED)[-1][1]
    assert (last["mirror_percent"], last["source"], last["observed_after_restart"]) == (
        0, "observed", True,
    )  # fmt: skip


def test_the_embedded_default_mirrors_a_model_it_did_not_know(pg_engine: Engine) -> None:
    from analyzer.config import Settings
    from analyzer.domain.model import ModelRef
    from analyzer.wiring import build_mirror

    rig = Rig(pg_engine, lambda r: Verdict.PASS)
    # serve's embedded default: mirror_target auto is the in-memory target itself
    mirror = build_mirror(Settings(), rig.target)
    assert mirror is rig.target
    assert build_mirror(Settings(mirror_target="none"), rig.target) is None
    rig.service = type(rig.service)(pg_engine, rig.ledger, rig.target, clock=rig.clock,
                                    mirror=mirror)  # fmt: skip
    new = ModelRef(namespace="credit-models", name="credit")
    started = rig.start(model=new, plan=SHADOW)
    assert started.strategy is Strategy.SHADOW
    assert rig.target.read_mirror(new).serving_revision == "fraud-00001"


def test_ledger_backtests_replay_each_strategy_as_it_was_judged(pg_engine: Engine) -> None:
    """As ProfileAnalyzer judged them: no split check for blue/green and shadow, and a
    blue/green's baseline read at the plan's verification offset (docs/backtests.md)."""
    from analyzer.backtests.ledger import canaries_from_ledger

    rig = Rig(pg_engine, lambda r: Verdict.PASS, mirror=True)
    green = rig.start(plan=BLUE_GREEN, tier=Tier.STANDARD)
    rig.run(minutes=5)
    with pytest.raises(InvalidInputError, match="already serves") as caught:
        rig.start(plan=SHADOW, tier=Tier.STANDARD)  # fraud-00002 serves everything now
    assert caught.value.field == "canary_revision"
    shadow = rig.start(plan=SHADOW, tier=Tier.STANDARD, baseline_revision="fraud-00002",
                       canary_revision="fraud-00003")  # fmt: skip
    rig.run(minutes=5)
    canary = rig.start(tier=Tier.STANDARD, baseline_revision="fraud-00002",
                       canary_revision="fraud-00003")  # fmt: skip
    rig.run(minutes=3)
    found = {c.id: c for c in canaries_from_ledger(rig.ledger)}
    assert set(found) == {green.id, shadow.id, canary.id}  # each recorded its looks
    assert found[canary.id].baseline_offset is None
    assert found[canary.id].looks[0].canary_weight is not None
    for other in (green.id, shadow.id):
        assert all(look.canary_weight is None for look in found[other].looks)
    assert found[green.id].baseline_offset == BLUE_GREEN.verification_offset
    assert found[shadow.id].baseline_offset is None
