"""Backtests, the pure part: what a profile would have said about recorded canaries.

A recorded canary (:class:`RecordedCanary`) is a model, a baseline and a canary revision, and
the looks the service took (or would have taken) at it: each look a cumulative window from its
segment's start. A *segment* is one sequential analysis: the whole canary for an Argo-style
analysis, one step for a driven rollout (each step is judged on its own evidence, with the
profile's alpha split across the judged steps, exactly as ``wiring.ProfileAnalyzer`` does).

:class:`CanaryReplay` folds the judge's answers look by look into what the profile would have
decided and when: the first ``fail`` aborts the canary; a ``pass`` ends its segment (the rollout
would have moved on, so later looks of that segment are not judged); a canary passes when every
segment passed. :func:`summarize` compares the decisions with the known truth (``bad`` canaries
should fail, ``good`` ones should not) and with what actually happened (the ledger's outcome).

No I/O, no clock: the runner (``backtests.runner``) fetches the observations.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from analyzer.domain.model import ModelRef
from analyzer.domain.profile import AnalysisProfile
from analyzer.domain.result import AnalysisResult
from analyzer.domain.verdict import Verdict
from analyzer.judge.state import JudgeState


class Truth(StrEnum):
    """What a recorded canary really was, as its owners know it (incident reviews, A/A runs)."""

    BAD = "bad"  # harmful: a good profile fails it
    GOOD = "good"  # harmless: a good profile does not fail it


class Outcome(StrEnum):
    """How a replayed canary compares with its truth (``unknown`` without one)."""

    CAUGHT = "caught"  # bad, and the profile failed it
    MISSED = "missed"  # bad, and the profile did not fail it
    FALSE_ABORT = "false_abort"  # good, and the profile failed it
    PASSED = "passed"  # good, and the profile passed it
    UNDECIDED = "undecided"  # good, and the profile neither passed nor failed it in its looks
    UNKNOWN = "unknown"  # no truth given


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedLook:
    """One look: a cumulative window of its segment, and how the profile is set for it."""

    start: datetime
    end: datetime
    segment: int = 0  # looks of one segment share a sequential analysis
    alpha_divisor: int = 1  # a driven rollout splits alpha across its judged steps
    canary_weight: float | None = None  # the expected canary share (SRM check), if known
    bake_elapsed: float | None = None  # share of the segment's planned bake gone by
    recorded: Verdict | None = None  # what the service answered at this look (ledger)


@dataclass(frozen=True, kw_only=True, slots=True)
class Happened:
    """What actually happened to a recorded canary (from the ledger)."""

    # a rollout: promoted, aborted, failed or in progress; an analysis session: failed (it
    # answered fail), passed (its last answer) or undecided
    outcome: str
    decided_at: int | None = None  # index of the recorded look that answered fail, if any
    reason: str = ""

    @property
    def stopped(self) -> bool:
        """Whether the canary was stopped (aborted or failed) rather than promoted or running."""
        return self.outcome in ("aborted", "failed")


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedCanary:
    id: str
    model: ModelRef
    baseline: str
    canary: str
    looks: tuple[PlannedLook, ...]
    truth: Truth | None = None
    happened: Happened | None = None
    profile: str | None = None  # the profile the canary ran with (ledger), for the report
    # blue/green: the baseline's evidence is the previous revision's, this much earlier
    # (``metrics.time_matched.TimeMatchedBaseline``, as the service reads it)
    baseline_offset: timedelta | None = None


def profile_at(profile: AnalysisProfile, look: PlannedLook) -> AnalysisProfile:
    """The profile as the service would have judged ``look`` with it."""
    return replace(
        profile,
        alpha=profile.alpha / max(1, look.alpha_divisor),
        canary_weight=look.canary_weight
        if look.canary_weight is not None
        else profile.canary_weight,
        bake_elapsed=look.bake_elapsed,
    )


@dataclass(kw_only=True, slots=True)
class CanaryReplay:
    """One canary replayed through one profile, look by look (fed by the runner)."""

    canary: RecordedCanary
    profile: str
    verdicts: list[Verdict | None] = field(default_factory=list)  # None: not judged
    scores: list[float | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    failed_at: int | None = None
    passed_segments: set[int] = field(default_factory=set)
    last_pass_at: int | None = None
    errors: int = 0
    _state: JudgeState | None = None
    _segment: int | None = None

    def wants(self, index: int) -> bool:
        """Whether look ``index`` still needs judging (not after a fail, nor in a passed
        segment: the canary would have been stopped, or moved on)."""
        look = self.canary.looks[index]
        return self.failed_at is None and look.segment not in self.passed_segments

    def state_for(self, index: int) -> JudgeState | None:
        """The sequential state look ``index`` continues (``None``: a fresh segment)."""
        segment = self.canary.looks[index].segment
        return self._state if segment == self._segment else None

    def record(self, index: int, result: AnalysisResult | None, state: JudgeState | None) -> None:
        """The judge's answer at look ``index`` (``None``: the look was not judged)."""
        while len(self.verdicts) < index:
            self._skip()
        if result is None:
            self._skip()
            return
        look = self.canary.looks[index]
        self.verdicts.append(result.verdict)
        self.scores.append(result.score)
        self.reasons.append(result.reason)
        self._state, self._segment = state, look.segment
        if result.verdict is Verdict.ERROR:
            self.errors += 1
        if result.verdict is Verdict.FAIL and self.failed_at is None:
            self.failed_at = index
        elif (
            result.verdict is Verdict.PASS
            and self.failed_at is None
            and look.segment not in self.passed_segments
        ):
            self.passed_segments.add(look.segment)
            self.last_pass_at = index

    def _skip(self) -> None:
        self.verdicts.append(None)
        self.scores.append(None)
        self.reasons.append("")

    @property
    def segments(self) -> set[int]:
        return {look.segment for look in self.canary.looks}

    @property
    def verdict(self) -> Verdict:
        """``fail`` at the first fail; ``pass`` when every segment passed; otherwise the last
        judged look's verdict (``inconclusive`` or ``error``): never a pass without evidence."""
        if self.failed_at is not None:
            return Verdict.FAIL
        if self.canary.looks and self.passed_segments >= self.segments:
            return Verdict.PASS
        judged = [v for v in self.verdicts if v is not None]
        if judged and judged[-1] is Verdict.ERROR:
            return Verdict.ERROR
        return Verdict.INCONCLUSIVE

    @property
    def decided_at(self) -> int | None:
        """The look at which the profile decided (its first fail, or its last segment's pass)."""
        if self.failed_at is not None:
            return self.failed_at
        return self.last_pass_at if self.verdict is Verdict.PASS else None

    def decided_after_seconds(self) -> float | None:
        """From the canary's first look's start to the end of the deciding look."""
        at = self.decided_at
        if at is None:
            return None
        return (self.canary.looks[at].end - self.canary.looks[0].start).total_seconds()

    @property
    def outcome(self) -> Outcome:
        truth, verdict = self.canary.truth, self.verdict
        if truth is None:
            return Outcome.UNKNOWN
        if truth is Truth.BAD:
            return Outcome.CAUGHT if verdict is Verdict.FAIL else Outcome.MISSED
        if verdict is Verdict.FAIL:
            return Outcome.FALSE_ABORT
        return Outcome.PASSED if verdict is Verdict.PASS else Outcome.UNDECIDED

    @property
    def agrees(self) -> bool | None:
        """Whether the profile would have stopped the canary exactly when it was stopped (the
        ledger's outcome); ``None`` without a recorded outcome."""
        happened = self.canary.happened
        if happened is None:
            return None
        return (self.verdict is Verdict.FAIL) == happened.stopped

    def to_json(self) -> dict[str, Any]:
        happened = self.canary.happened
        return {
            "canary": self.canary.id,
            "model": str(self.canary.model),
            "baseline": self.canary.baseline,
            "canary_revision": self.canary.canary,
            "profile": self.profile,
            "verdict": self.verdict.value,
            "decided_at": self.decided_at,
            "decided_after_seconds": self.decided_after_seconds(),
            "looks": len(self.canary.looks),
            "judged_looks": sum(v is not None for v in self.verdicts),
            "error_looks": self.errors,
            "truth": None if self.canary.truth is None else self.canary.truth.value,
            "outcome": self.outcome.value,
            "happened": None
            if happened is None
            else {
                "outcome": happened.outcome,
                "decided_at": happened.decided_at,
                "reason": happened.reason,
            },
            "agrees_with_what_happened": self.agrees,
            "reason": self._reason(),
            "verdicts": [None if v is None else v.value for v in self.verdicts],
        }

    def _reason(self) -> str:
        at = self.decided_at if self.decided_at is not None else len(self.reasons) - 1
        while at >= 0 and not self.reasons[at]:
            at -= 1
        return self.reasons[at] if at >= 0 else "no look was judged"


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


@dataclass(frozen=True, kw_only=True, slots=True)
class ProfileSummary:
    """One profile's record over every replayed canary."""

    profile: str
    canaries: int
    verdicts: dict[str, int]
    outcomes: dict[str, int]
    false_abort_rate: float | None  # false aborts / good canaries
    miss_rate: float | None  # misses / bad canaries
    median_looks_to_decide: float | None  # 1-based, over decided canaries
    median_seconds_to_decide: float | None
    median_seconds_to_fail_bad: float | None  # how fast a bad canary is stopped
    disagreements: int | None  # canaries where it would have done otherwise than happened
    error_looks: int

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "canaries": self.canaries,
            "verdicts": self.verdicts,
            "outcomes": self.outcomes,
            "false_abort_rate": self.false_abort_rate,
            "miss_rate": self.miss_rate,
            "median_looks_to_decide": self.median_looks_to_decide,
            "median_seconds_to_decide": self.median_seconds_to_decide,
            "median_seconds_to_fail_bad": self.median_seconds_to_fail_bad,
            "disagreements_with_what_happened": self.disagreements,
            "error_looks": self.error_looks,
        }


def summarize(profile: str, replays: Sequence[CanaryReplay]) -> ProfileSummary:
    """False aborts, misses and time to decide of ``profile`` over its replays."""
    mine = [r for r in replays if r.profile == profile]
    verdicts = {v.value: sum(r.verdict is v for r in mine) for v in Verdict}
    outcomes = {o.value: sum(r.outcome is o for r in mine) for o in Outcome}
    good = sum(r.canary.truth is Truth.GOOD for r in mine)
    bad = sum(r.canary.truth is Truth.BAD for r in mine)
    decided = [r for r in mine if r.decided_at is not None]
    caught = [r for r in mine if r.outcome is Outcome.CAUGHT]
    compared = [r.agrees for r in mine if r.agrees is not None]
    return ProfileSummary(
        profile=profile,
        canaries=len(mine),
        verdicts=verdicts,
        outcomes=outcomes,
        false_abort_rate=outcomes[Outcome.FALSE_ABORT.value] / good if good else None,
        miss_rate=outcomes[Outcome.MISSED.value] / bad if bad else None,
        median_looks_to_decide=_median([float(r.decided_at or 0) + 1 for r in decided]),
        median_seconds_to_decide=_median([r.decided_after_seconds() or 0.0 for r in decided]),
        median_seconds_to_fail_bad=_median([r.decided_after_seconds() or 0.0 for r in caught]),
        disagreements=sum(not a for a in compared) if compared else None,
        error_looks=sum(r.errors for r in mine),
    )
