"""Why each model of a fleet went back (its own wave, the watch, an abort, a failed load) and what
the watch covers, read from the entries the engine writes (``entries.py``) and the state the
pure rules of ``progress.py`` produce."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.fleet import FleetRateQuery, ModelPhase, ModelVersion
from analyzer.domain.model import ModelRef
from analyzer.domain.verdict import Verdict
from analyzer.fleets import entries, progress
from analyzer.fleets.history import (
    FleetHistory,
    RecordedEntry,
    RollbackCause,
    WatchPhase,
    fleet_history,
    fleet_watch,
    look_watch,
)
from analyzer.fleets.judge import FleetMetric, ModelJudgement, WaveJudgement
from analyzer.fleets.looking import LookOutcome
from analyzer.fleets.plan import WaveSpec, cut_waves
from analyzer.fleets.progress import FleetStatus
from analyzer.fleets.repository import FleetRecord
from analyzer.fleets.spec import FleetMetricSpec, FleetSpec

MODELS = [f"m-{i:03d}" for i in range(100)]
PLAN = tuple(WaveSpec(percent=p, dwell_seconds=600, deadline_seconds=1800) for p in (10, 50, 100))
WAVES = cut_waves("fleet", MODELS, PLAN)
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
ERRORS = FleetMetricSpec(
    metric=FleetMetric(name="errors", tolerance=0.01),
    query=FleetRateQuery(name="errors", events='e{namespace="{namespace}"}', total="t"),
)
SPEC = FleetSpec(
    name="anomaly-v2", namespace="merchants", models=tuple(MODELS),
    version=ModelVersion(name="v2", storage_uri="s3://m/{model}/v2"), from_version="v1",
    plan=PLAN, metrics=(ERRORS,), watch_seconds=1800.0,
)  # fmt: skip


def _judgement(
    models: tuple[str, ...],
    verdict: Verdict,
    *,
    final: bool,
    back: tuple[str, ...] = (),
    reason: str = "collecting evidence",
) -> WaveJudgement:
    judged = tuple(
        ModelJudgement(
            model=m, log_e=5.0 if m in back else 0.1, log_e_safety=None, rolled_back=m in back,
            rollback_now=m in back,
            reason="harmful: e-value beyond the wave's e-Bonferroni bound" if m in back
            else "no evidence of harm",
            metrics={},
        )
        for m in models
    )  # fmt: skip
    return WaveJudgement(
        verdict=verdict, reason=reason, final=final, rollbacks=back, models=judged,
        pooled={}, thresholds={},
    )  # fmt: skip


@dataclass
class Recorder:
    """A fleet driven by the pure rules, recording what the engine would append."""

    record: FleetRecord
    written: list[RecordedEntry] = field(default_factory=list)

    @classmethod
    def start(cls) -> Recorder:
        state, _ = progress.initial_state(WAVES, now=T0.timestamp())
        record = FleetRecord(
            id="f-1", spec=SPEC, state=state, waves=WAVES, old={}, initiator="alice",
            created_at=T0, updated_at=T0, next_look_at=None, version=1,
        )  # fmt: skip
        return cls(record=record)

    def append(self, event: LedgerEvent, at: float) -> None:
        moment = datetime.fromtimestamp(at, tz=UTC)
        self.written.append(RecordedEntry.of(event, seq=100 + len(self.written), at=moment))

    def look(
        self,
        at: float,
        wave: WaveJudgement | None,
        watched: tuple[tuple[int, WaveJudgement], ...] = (),
    ) -> None:
        """As ``FleetEngine.look``: the state after the look, its ``fleet_wave_judged`` entry."""
        outcome = LookOutcome(wave=wave, watched=watched, watch_over=False)
        now = T0.timestamp() + at
        moment = datetime.fromtimestamp(now, tz=UTC)
        self.append(entries.judged_event(self.record, entries.look_summary(outcome), moment), now)
        judged = [w for _, w in watched]
        state = self.record.state
        if wave is None:
            step = progress.after_watch(state, judged, now=now)
        else:
            step = progress.after_look(
                state, WAVES, wave, now=now, watched=judged, watch_seconds=SPEC.watch_seconds
            )
        self.record = replace(self.record, state=step.state)

    def abort(self, at: float, actor: str, reason: str) -> None:
        step = progress.abort(self.record.state, reason=reason)
        self.append(entries.status_event(self.record, step.state, actor), T0.timestamp() + at)
        self.record = replace(self.record, state=step.state)

    def history(self) -> FleetHistory:
        return fleet_history(
            self.record.state, WAVES, self.written, new_version="v2", watch_seconds=1800.0
        )


FIRST, SECOND, THIRD = (models for _, models in WAVES)


def test_own_wave_watch_and_abort_rollbacks_are_told_apart() -> None:
    fleet = Recorder.start()
    assert fleet_watch(fleet.record.state, WAVES, watch_seconds=1800.0).phase is (
        WatchPhase.NOT_STARTED
    )
    fleet.look(300, _judgement(FIRST, Verdict.INCONCLUSIVE, final=False, back=(FIRST[0],)))
    fleet.look(900, _judgement(FIRST, Verdict.PASS, final=True))  # wave 2 moves
    watch = _judgement(FIRST, Verdict.INCONCLUSIVE, final=False, back=(FIRST[1],))
    fleet.look(1200, _judgement(SECOND, Verdict.INCONCLUSIVE, final=False), ((0, watch),))

    during = fleet.history()
    assert during.watch.phase is WatchPhase.DURING_WAVES
    assert during.watch.watched_waves == (0,)
    assert during.watch.watching_until is None
    own, watched = during.rollbacks[FIRST[0]], during.rollbacks[FIRST[1]]
    assert (own.cause, own.wave, own.look) == (RollbackCause.OWN_WAVE, 0, 100)
    assert own.at == datetime.fromtimestamp(T0.timestamp() + 300, tz=UTC)
    assert own.reason.startswith("harmful: e-value")
    # the watch of wave 1 caught it during wave 2
    assert (watched.cause, watched.wave, watched.look) == (RollbackCause.WATCH, 1, 102)
    first, second, _ = during.waves
    assert (first.moved, first.judged, first.rolled_back) == (len(FIRST), len(FIRST) - 2, 2)
    assert first.rolled_back_by[RollbackCause.OWN_WAVE] == 1
    assert first.rolled_back_by[RollbackCause.WATCH] == 1
    assert first.watched
    assert not second.watched
    assert (second.moved, second.judged, second.rolled_back) == (len(SECOND), 0, 0)

    fleet.abort(1500, "oncall", "merchant complaints")
    after = fleet.history()
    assert after.watch.phase is WatchPhase.OVER
    assert after.watch.watched_waves == ()
    aborted = after.rollbacks[SECOND[0]]
    assert (aborted.cause, aborted.actor, aborted.wave) == (RollbackCause.ABORT, "oncall", 1)
    assert aborted.reason == "merchant complaints"
    assert aborted.look is None
    assert aborted.entry == 103
    assert after.rollbacks[FIRST[0]].cause is RollbackCause.OWN_WAVE  # the first cause stays
    first, second, third = after.waves
    assert first.rolled_back_by[RollbackCause.ABORT] == len(FIRST) - 2
    assert second.rolled_back_by[RollbackCause.ABORT] == len(SECOND)
    assert (third.moved, third.rolled_back, sum(third.rolled_back_by.values())) == (0, 0, 0)
    assert len(after.rollbacks) == len(FIRST) + len(SECOND)


def test_a_failed_wave_sends_its_models_back_by_its_own_judgement() -> None:
    fleet = Recorder.start()
    fleet.look(300, _judgement(FIRST, Verdict.FAIL, final=True, back=FIRST, reason="pooled"))
    history = fleet.history()
    assert fleet.record.state.status is FleetStatus.FAILED
    assert {r.cause for r in history.rollbacks.values()} == {RollbackCause.OWN_WAVE}
    assert history.waves[0].rolled_back_by[RollbackCause.OWN_WAVE] == len(FIRST)
    assert history.watch.phase is WatchPhase.OVER


def test_the_post_completion_watch_says_until_when_and_which_waves() -> None:
    fleet = Recorder.start()
    fleet.look(900, _judgement(FIRST, Verdict.PASS, final=True))
    fleet.look(1800, _judgement(SECOND, Verdict.PASS, final=True))
    fleet.look(2700, _judgement(THIRD, Verdict.PASS, final=True))
    watch = fleet.history().watch
    assert watch.phase is WatchPhase.AFTER_LAST_WAVE
    assert watch.watched_waves == (0, 1, 2)
    assert watch.watching_until == T0.timestamp() + 2700 + 1800
    late = _judgement(THIRD, Verdict.INCONCLUSIVE, final=False, back=(THIRD[3],))
    fleet.look(3000, None, ((2, late),))
    rollback = fleet.history().rollbacks[THIRD[3]]
    assert (rollback.cause, rollback.wave) == (RollbackCause.WATCH, 2)


def test_a_held_fleet_pauses_the_watch() -> None:
    fleet = Recorder.start()
    fleet.look(900, _judgement(FIRST, Verdict.PASS, final=True))
    fleet.look(3000, _judgement(SECOND, Verdict.INCONCLUSIVE, final=True, reason="deadline"))
    assert fleet.record.state.status is FleetStatus.HELD
    watch = fleet.history().watch
    assert (watch.phase, watch.watched_waves) == (WatchPhase.PAUSED, (0,))


def test_a_model_that_did_not_load_and_one_without_an_entry() -> None:
    fleet = Recorder.start()
    broken, silent = FIRST[0], FIRST[1]
    error = LedgerEvent(
        type=EventType.TARGET_ERROR, actor=entries.ACTOR,
        model=ModelRef(namespace="merchants", name=broken), rollout_id="f-1", revision="v2",
        data={"error": "IntegrationError: not loaded", "wave": 0},
    )  # fmt: skip  # as moves.py writes it
    refused_back = replace(error, model=ModelRef(namespace="merchants", name=silent), revision="v1")
    fleet.append(error, T0.timestamp() + 5)
    fleet.append(refused_back, T0.timestamp() + 6)  # a rollback the target refused: no cause
    phases = {**fleet.record.state.phases, broken: ModelPhase.ROLLED_BACK}
    phases[silent] = ModelPhase.ROLLED_BACK
    fleet.record = replace(fleet.record, state=replace(fleet.record.state, phases=phases))
    history = fleet.history()
    assert history.rollbacks[broken].cause is RollbackCause.LOAD_FAILED
    assert history.rollbacks[broken].reason == "IntegrationError: not loaded"
    assert history.rollbacks[silent].cause is RollbackCause.UNRECORDED


def test_a_looks_rollbacks_split_into_its_own_and_the_watchs() -> None:
    own = _judgement(SECOND, Verdict.INCONCLUSIVE, final=False, back=(SECOND[0],))
    watch = _judgement(FIRST, Verdict.PASS, final=True, back=(FIRST[2],))
    outcome = LookOutcome(wave=own, watched=((0, watch),), watch_over=True)
    split = look_watch(entries.look_summary(outcome))
    assert split.own_rollbacks == (SECOND[0],)
    [watched] = split.watched
    assert (watched.wave, watched.final, watched.rollbacks) == (0, True, (FIRST[2],))
    assert watched.reasons[FIRST[2]].startswith("harmful")
    # a look recorded before the watch existed: every rollback was its wave's
    before = {"rollbacks": [SECOND[0]], "verdict": "inconclusive"}
    assert look_watch(before).own_rollbacks == (SECOND[0],)
    assert look_watch(before).watched == ()
