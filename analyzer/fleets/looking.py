"""One look's evidence and judgement: the counts of the current wave and of every watched wave
(one query per metric and wave, for the wave's models and their controls), judged by the pure
rules of ``judge.py`` and ``watch.py``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from analyzer.domain.fleet import FleetCounts, ModelPhase
from analyzer.domain.verdict import Verdict
from analyzer.fleets import progress
from analyzer.fleets.judge import WaveJudgement, judge_wave
from analyzer.fleets.ports import FleetSource
from analyzer.fleets.repository import FleetRecord
from analyzer.fleets.watch import judge_watch, watch_look, watch_targets


@dataclass(frozen=True, kw_only=True, slots=True)
class LookOutcome:
    """The current wave's judgement (None in the post-completion watch) and each watched
    wave's, by wave index; ``watch_over``: this look ended the watch (e-BH acted)."""

    wave: WaveJudgement | None
    watched: tuple[tuple[int, WaveJudgement], ...]
    watch_over: bool

    @property
    def rollbacks(self) -> tuple[str, ...]:
        own = self.wave.rollbacks if self.wave is not None else ()
        return own + tuple(m for _, w in self.watched for m in w.rollbacks)

    def headline(self) -> WaveJudgement:
        """The judgement a look is recorded under: the current wave's, or in the
        post-completion watch one that stands for the watch."""
        if self.wave is not None:
            return self.wave
        reason = "the watch is over" if self.watch_over else "watching the upgraded models"
        return WaveJudgement(
            verdict=Verdict.PASS if self.watch_over else Verdict.INCONCLUSIVE,
            reason=reason, final=self.watch_over, rollbacks=self.rollbacks, models=(),
            pooled={}, thresholds={},
        )  # fmt: skip


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class FleetJudging:
    def __init__(self, source: FleetSource) -> None:
        self._source = source

    def judge(self, record: FleetRecord, now: datetime) -> LookOutcome:
        """Read and judge. Raises the source's errors (the engine makes an error look). A fleet
        whose current wave passed and waits for the next one's gates, or in its post-completion
        watch, has only watched waves to judge."""
        state, waves, spec = record.state, record.waves, record.spec
        metrics = [m.metric for m in spec.metrics]
        policy = spec.policy(len(waves))
        at = now.timestamp()
        wave = None
        if state.watch_until is None and not state.gated:
            # the wave, and every model that may be a control (the judge picks by the clock)
            models = [m for m, p in state.phases.items() if p is not ModelPhase.ROLLED_BACK]
            models += [m for m in waves[state.wave][1] if m not in models]
            counts = self._read(record, models, state.wave_started_at, state.wave_ready_at, now)
            wave = judge_wave(metrics, policy, progress.wave_look(state, waves, counts, now=at))
        over = progress.watch_ends(state, waves, wave, now=at, watch_seconds=spec.watch_seconds)
        watched: list[tuple[int, WaveJudgement]] = []
        for target in watch_targets(state, waves):
            look = watch_look(state, waves, target, {}, now=at, final=over)
            asked = [*look.models, *look.controls]
            counts = self._read(record, asked, target.before_end, target.after_start, now)
            watched.append(
                (target.wave, judge_watch(metrics, policy, replace(look, counts=counts)))
            )
        return LookOutcome(wave=wave, watched=tuple(watched), watch_over=over)

    def _read(
        self,
        record: FleetRecord,
        models: Sequence[str],
        before_end: float,
        after_start: float,
        now: datetime,
    ) -> FleetCounts:
        return self._source.read(
            [m.query for m in record.spec.metrics],
            namespace=record.spec.namespace,
            models=models,
            before_end=_at(before_end),
            after_start=_at(after_start),
            at=now,
        )
