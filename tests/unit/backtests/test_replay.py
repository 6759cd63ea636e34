"""The pure backtest core: decisions look by look, segments, truth and the summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzer.backtests.manifest import parse_duration, parse_manifest, select
from analyzer.backtests.replay import (
    CanaryReplay,
    Happened,
    Outcome,
    PlannedLook,
    RecordedCanary,
    Truth,
    profile_at,
    summarize,
)
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.result import AnalysisResult
from analyzer.domain.verdict import MetricKind, Verdict
from analyzer.judge.state import JudgeState

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
MODEL = ModelRef(namespace="risk", name="fraud")
P, F, U, E = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.ERROR  # U: undecided


def canary(segments: list[int], truth: Truth | None = None, **kw: object) -> RecordedCanary:
    looks = tuple(
        PlannedLook(start=T0, end=T0 + timedelta(minutes=k + 1), segment=s)
        for k, s in enumerate(segments)
    )
    return RecordedCanary(id="c", model=MODEL, baseline="b", canary="c", looks=looks,
                          truth=truth, **kw)  # type: ignore[arg-type]  # fmt: skip


def result(verdict: Verdict) -> AnalysisResult:
    return AnalysisResult(verdict=verdict, score=50.0, reason=f"said {verdict}", metrics=(),
                          alpha=0.05)  # fmt: skip


def replay_of(c: RecordedCanary, verdicts: list[Verdict]) -> CanaryReplay:
    """Feed verdicts the way the runner does: only to looks the replay still wants."""
    replay = CanaryReplay(canary=c, profile="p")
    answers = iter(verdicts)
    for index in range(len(c.looks)):
        if replay.wants(index):
            replay.record(index, result(next(answers)), JudgeState())
    if len(replay.verdicts) < len(c.looks):
        replay.record(len(c.looks) - 1, None, None)
    return replay


def test_the_first_fail_decides_and_later_looks_are_not_judged() -> None:
    r = replay_of(canary([0] * 5, Truth.BAD), [U, U, F])
    assert r.verdict is F
    assert r.decided_at == 2
    assert r.verdicts == [U, U, F, None, None]
    assert r.outcome is Outcome.CAUGHT
    assert r.decided_after_seconds() == 180.0


def test_a_pass_ends_its_segment_and_every_segment_must_pass() -> None:
    c = canary([0, 0, 0, 1, 1, 1], Truth.GOOD)
    r = replay_of(c, [U, P, U, P])
    assert r.verdicts == [U, P, None, U, P, None]
    assert r.verdict is P
    assert r.decided_at == 4
    assert r.outcome is Outcome.PASSED
    undecided = replay_of(c, [P, U, U, U])
    assert undecided.verdict is U
    assert undecided.decided_at is None
    assert undecided.outcome is Outcome.UNDECIDED


def test_a_fail_in_a_later_segment_fails_the_canary_and_missing_data_never_passes() -> None:
    r = replay_of(canary([0, 0, 1, 1], Truth.GOOD), [P, F])
    assert r.verdict is F
    assert r.decided_at == 2
    assert r.outcome is Outcome.FALSE_ABORT
    errors = replay_of(canary([0, 0], Truth.BAD), [E, E])
    assert errors.verdict is E
    assert errors.errors == 2
    assert errors.outcome is Outcome.MISSED


def test_state_carries_within_a_segment_only() -> None:
    c = canary([0, 0, 1])
    r = CanaryReplay(canary=c, profile="p")
    assert r.state_for(0) is None
    state = JudgeState(failed=None)
    r.record(0, result(U), state)
    assert r.state_for(1) is state
    r.record(1, result(U), state)
    assert r.state_for(2) is None  # a new step starts a new sequential analysis


def test_agreement_with_what_happened() -> None:
    stopped = canary([0, 0], happened=Happened(outcome="aborted", decided_at=1))
    assert replay_of(stopped, [F]).agrees is True
    assert replay_of(stopped, [P]).agrees is False
    promoted = canary([0], happened=Happened(outcome="promoted"))
    assert replay_of(promoted, [P]).agrees is True
    assert replay_of(canary([0]), [P]).agrees is None


def test_summary_counts_rates_and_medians() -> None:
    replays = [
        replay_of(canary([0] * 4, Truth.BAD), [F]),  # caught at look 1
        replay_of(canary([0] * 4, Truth.BAD), [U, U, F]),  # caught at look 3
        replay_of(canary([0] * 4, Truth.BAD), [U, U, U, U]),  # missed
        replay_of(canary([0] * 4, Truth.GOOD), [U, F]),  # false abort
        replay_of(canary([0] * 4, Truth.GOOD), [U, U, U, P]),  # passed at look 4
        replay_of(canary([0] * 4, Truth.GOOD), [U, U, U, U]),  # undecided
    ]
    s = summarize("p", replays)
    assert s.canaries == 6
    assert s.outcomes["caught"] == 2
    assert s.outcomes["missed"] == 1
    assert s.outcomes["false_abort"] == 1
    assert s.outcomes["passed"] == 1
    assert s.outcomes["undecided"] == 1
    assert s.miss_rate == pytest.approx(1 / 3)
    assert s.false_abort_rate == pytest.approx(1 / 3)
    # decided at looks 1, 3, 2, 4 -> median 2.5 looks; bad ones stopped after 60 s and 180 s
    assert s.median_looks_to_decide == 2.5
    assert s.median_seconds_to_fail_bad == 120.0
    assert s.disagreements is None
    assert summarize("other", replays).canaries == 0


def test_profile_at_splits_alpha_and_sets_the_look_s_split_and_bake() -> None:
    profile = AnalysisProfile(name="p", metrics=(MetricSpec(name="m", kind=MetricKind.PROPORTION),),
                              alpha=0.06, canary_weight=0.5)  # fmt: skip
    look = PlannedLook(start=T0, end=T0 + timedelta(minutes=1), alpha_divisor=3,
                       canary_weight=0.1, bake_elapsed=0.25)  # fmt: skip
    adjusted = profile_at(profile, look)
    assert adjusted.alpha == pytest.approx(0.02)
    assert adjusted.canary_weight == 0.1
    assert adjusted.bake_elapsed == 0.25
    plain = profile_at(profile, PlannedLook(start=T0, end=T0 + timedelta(minutes=1)))
    assert plain.alpha == 0.06
    assert plain.canary_weight == 0.5
    assert plain.bake_elapsed is None


MANIFEST = """
canaries:
  - model: risk/fraud
    baseline: fraud-00001
    canary: fraud-00002
    start: 2026-03-04T02:00:00Z
    interval: 5m
    looks: 3
    bake: 15m
    truth: bad
  - id: second
    model: risk/other
    baseline: other-1
    canary: other-2
    start: 2026-03-05T02:00:00+01:00
    looks: 2
"""


def test_manifest_windows_bake_and_truth() -> None:
    first, second = parse_manifest(MANIFEST)
    assert first.id == "risk/fraud:fraud-00002"
    assert first.truth is Truth.BAD
    assert [look.end - look.start for look in first.looks] == [
        timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=15)]  # fmt: skip
    assert {look.start for look in first.looks} == {T0}
    assert [look.bake_elapsed for look in first.looks] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert second.looks[0].end - second.looks[0].start == timedelta(minutes=1)  # default
    assert second.looks[0].bake_elapsed is None
    assert second.truth is None
    assert select([first, second], since=T0 + timedelta(hours=1)) == [second]
    assert select([first, second], model=ModelRef(namespace="risk", name="fraud")) == [first]
    assert select([first, second], until=T0 + timedelta(hours=1)) == [first]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("looks: 3", "looks: 0"), "canaries[0].looks"),
        (("interval: 5m", "interval: 5 minutes"), "canaries[0].interval"),
        (("truth: bad", "truth: maybe"), "canaries[0].truth"),
        (("canary: fraud-00002", "canary: 'x\"}'"), "canaries[0].canary"),
        (("model: risk/fraud", "model: fraud"), "canaries[0].model"),
        (("start: 2026-03-04T02:00:00Z", "start: 2026-03-04T02:00:00"), "canaries[0].start"),
        (("id: second", "id: risk/fraud:fraud-00002"), "canaries[1].id"),
        (("    looks: 2\n", "    looks: 2\n    colour: red\n"), "canaries[1].colour"),
    ],
)
def test_manifest_errors_name_the_key(change: tuple[str, str], field: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        parse_manifest(MANIFEST.replace(*change))
    assert raised.value.field == field


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration(30) == timedelta(seconds=30)
    for bad in ("0s", "-5m", "5 m", "soon", True):
        with pytest.raises(ValueError, match=r"duration|positive"):
            parse_duration(bad)
