"""Fleet judging: one look at one wave of models, decided by pure functions.

Per model and rate metric the evidence is a difference in differences: the model's rate in the
window since its upgrade against its own mirror window just before it (same merchant, same
traffic mix: the comparison that carries the decision), net of the change the models not yet
upgraded saw over the same two windows (the concurrent controls: they remove what time did to
everyone, such as a diurnal swing or an upstream incident). Merchants differ too much in base
rates for another model to stand in for this one's past; time differs too much for the past
alone to stand in for now. See ``docs/fleets.md``.

The rules of a look, with ``a = policy.alpha / policy.waves`` (the wave's share of the fleet's
false-rollback budget):

* **harmful at once**: a model whose e-value reaches ``m / (a * model_share)`` (e-Bonferroni over
  the wave's ``m`` models; such a model is in the final e-BH set too), or whose new-version rate
  is shown above its absolute safety bound by the exact small-count e-process at level
  ``a * safety_share / m``, is rolled back now, whatever the wave does. Its e-process is frozen
  (stopped) at that look.
* **the wave fails** when the pooled evidence of the wave's models still on the new version
  reaches ``1 / (a * pooled_share)``, or when more than ``max_rollback_share`` of the wave (and
  more than ``tolerated_rollbacks`` models) has been rolled back: every model of the wave goes
  back.
* **the wave passes** once its dwell is over, the pooled no-harm e-process of every metric (same
  models) has reached ``1 / pass_alpha`` and, after e-BH at ``a * model_share`` is applied once
  (this look is the wave's stopping time) and its new rejections are rolled back, the
  rolled-back share is still within ``max_rollback_share``.
* otherwise it is **inconclusive**; past the wave's deadline e-BH is applied once as at a pass,
  and the fleet holds (never promotes on missing evidence).

Under an A/A fleet the probability of any false rollback is at most ``policy.alpha`` (each
wave: e-BH under the global null rejects anything with probability <= its level; the pooled
test by Ville's inequality while no model has been rolled back — the pooled set then shrinks by
the data, which ``docs/fleets.md`` discusses and ``bench/fleet_bench.py`` measures; the safety
test by Ville and Bonferroni; a union over waves).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.fleet import FleetCounts, RateWindows
from analyzer.domain.verdict import Verdict
from analyzer.stats.fleet import (
    did_rate_effect,
    e_bh_from_log,
    log_e_rate_above,
    pooled_change,
)
from analyzer.stats.mixture import log_e_one_sided

FloatArray = npt.NDArray[np.float64]
# On the standardized effect (rate change over its per-request sd). Larger than the single-model
# judge's 0.05: a per-merchant model sees hundreds of requests, not millions, so the harm worth
# catching in one model is large in these units (+5 points on a 2 % rate is about 0.35).
DEFAULT_FLEET_MIXTURE_SCALE = 0.2


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetMetric:
    """A rate metric judged per model: harm is an *increase* beyond ``tolerance`` (absolute,
    0.005 = +0.5 percentage points); ``safety_max`` an optional absolute bound on the new
    version's rate, checked exactly however little traffic the model has."""

    name: str
    tolerance: float
    safety_max: float | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.tolerance < 1.0:
            raise InvalidInputError("tolerance must be in [0, 1)", field="tolerance")
        if self.safety_max is not None and not 0.0 < self.safety_max < 1.0:
            raise InvalidInputError("safety_max must be in (0, 1)", field="safety_max")
        if not self.weight > 0:
            raise InvalidInputError("weight must be positive", field="weight")


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetPolicy:
    """The error budget and the wave rule. ``alpha`` bounds the probability of any false
    rollback in an A/A fleet of ``waves`` waves; ``pass_alpha`` the chance that a wave harmful
    beyond tolerance passes on its pooled evidence."""

    alpha: float = 0.05
    waves: int = 4
    pass_alpha: float = 0.05
    max_rollback_share: float = 0.10
    tolerated_rollbacks: int = 1  # a small wave is not failed by one model rolled back alone
    mixture_scale: float = DEFAULT_FLEET_MIXTURE_SCALE
    model_share: float = 0.5
    pooled_share: float = 0.3
    safety_share: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise InvalidInputError("alpha must be in (0, 1)", field="alpha")
        if not 0.0 < self.pass_alpha < 1.0:
            raise InvalidInputError("pass_alpha must be in (0, 1)", field="pass_alpha")
        if self.waves < 1:
            raise InvalidInputError("at least one wave", field="waves")
        if self.tolerated_rollbacks < 0:
            raise InvalidInputError("tolerated_rollbacks must be >= 0", field="tolerated_rollbacks")
        if not 0.0 <= self.max_rollback_share <= 1.0:
            raise InvalidInputError(
                "max_rollback_share must be in [0, 1]", field="max_rollback_share"
            )
        if not self.mixture_scale > 0:
            raise InvalidInputError("mixture_scale must be positive", field="mixture_scale")
        shares = (self.model_share, self.pooled_share, self.safety_share)
        if min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-9:
            raise InvalidInputError("the alpha shares must be positive and sum to 1", field="alpha")

    def too_many(self, rolled_back: int, m: int) -> bool:
        """More models rolled back than the wave tolerates."""
        return rolled_back > max(self.tolerated_rollbacks, self.max_rollback_share * m)

    @property
    def wave_alpha(self) -> float:
        return self.alpha / self.waves

    def thresholds(self, m: int) -> dict[str, float]:
        """Log e-value thresholds of a wave of ``m`` models."""
        a = self.wave_alpha
        return {
            "model_at_once": math.log(max(m, 1) / (a * self.model_share)),
            "safety": math.log(max(m, 1) / (a * self.safety_share)),
            "pooled_fail": math.log(1.0 / (a * self.pooled_share)),
            "pooled_pass": math.log(1.0 / self.pass_alpha),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveLook:
    """Everything one look at a wave needs.

    ``frozen`` holds the decision log e-value of each model already rolled back (its stopped
    e-process). ``dwell_over``: the wave may pass at this look; ``deadline``: it must end now.
    """

    wave: tuple[str, ...]
    controls: tuple[str, ...]
    counts: FleetCounts
    frozen: Mapping[str, float] = field(default_factory=dict)
    dwell_over: bool = False
    deadline: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelJudgement:
    model: str
    log_e: float  # the decision e-process (frozen when rolled back)
    log_e_safety: float | None
    rolled_back: bool  # before this look or by it
    rollback_now: bool
    reason: str
    metrics: dict[str, dict[str, float | None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveJudgement:
    verdict: Verdict
    reason: str
    final: bool  # this look ended the wave (pass, fail or deadline)
    rollbacks: tuple[str, ...]  # models to roll back now, in wave order
    models: tuple[ModelJudgement, ...]
    pooled: dict[str, dict[str, float | None]]
    thresholds: dict[str, float]


def _finite(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class _Arrays:
    after_events: FloatArray
    after_total: FloatArray
    before_events: FloatArray
    before_total: FloatArray


def _arrays(per_model: Mapping[str, RateWindows], models: Sequence[str]) -> _Arrays:
    zero = RateWindows(after_events=0, after_total=0, before_events=0, before_total=0)
    rows = [per_model.get(m, zero) for m in models]
    out = np.array(
        [(r.after_events, r.after_total, r.before_events, r.before_total) for r in rows],
        dtype=np.float64,
    ).reshape(len(rows), 4)
    return _Arrays(out[:, 0], out[:, 1], out[:, 2], out[:, 3])


def _rate(events: FloatArray, total: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(total > 0, events / np.where(total > 0, total, 1.0), np.nan)
    return out


@dataclass(frozen=True, slots=True)
class _MetricEvidence:
    log_e: FloatArray  # per model, harm
    log_e_safety: FloatArray | None
    report: list[dict[str, float | None]]
    name: str
    wave: _Arrays
    control_change: float
    control_var: float
    tolerance: float

    def pooled(
        self, keep: npt.NDArray[np.bool_], scale: float
    ) -> tuple[float, float, dict[str, float | None]]:
        """(harm log e, no-harm log e, report) of the models in ``keep``, summed."""
        w = self.wave
        eff = did_rate_effect(
            after_events=w.after_events[keep].sum(),
            after_total=w.after_total[keep].sum(),
            before_events=w.before_events[keep].sum(),
            before_total=w.before_total[keep].sum(),
            control_change=self.control_change,
            control_var=self.control_var,
            margin=self.tolerance,
        )
        z, n = float(eff.z), float(eff.neff)
        report: dict[str, float | None] = {
            "did": _finite(float(eff.theta) + self.tolerance),
            "control_change": _finite(self.control_change),
            "z": _finite(z),
            "after_total": float(w.after_total[keep].sum()),
            "before_total": float(w.before_total[keep].sum()),
            "models": float(keep.sum()),
        }
        return float(log_e_one_sided(z, n, scale)), float(log_e_one_sided(-z, n, scale)), report


def _metric_evidence(metric: FleetMetric, look: WaveLook, scale: float) -> _MetricEvidence:
    per_model = look.counts.get(metric.name, {})
    wave = _arrays(per_model, look.wave)
    control_change, control_var = 0.0, 0.0
    if look.controls:
        ctrl = _arrays(per_model, look.controls)
        control_change, control_var = pooled_change(
            after_events=ctrl.after_events,
            after_total=ctrl.after_total,
            before_events=ctrl.before_events,
            before_total=ctrl.before_total,
        )
    eff = did_rate_effect(
        after_events=wave.after_events,
        after_total=wave.after_total,
        before_events=wave.before_events,
        before_total=wave.before_total,
        control_change=control_change,
        control_var=control_var,
        margin=metric.tolerance,
    )
    log_e = log_e_one_sided(eff.z, eff.neff, scale)
    safety = (
        None
        if metric.safety_max is None
        else log_e_rate_above(wave.after_events, wave.after_total, metric.safety_max)
    )
    after_rate = _rate(wave.after_events, wave.after_total)
    before_rate = _rate(wave.before_events, wave.before_total)
    report = [
        {
            "after_rate": _finite(float(a)),
            "before_rate": _finite(float(b)),
            "after_total": float(n),
            "did": _finite(float(t) + metric.tolerance),
            "z": _finite(float(z)),
        }
        for a, b, n, t, z in zip(
            after_rate, before_rate, wave.after_total, eff.theta, eff.z, strict=True
        )
    ]
    return _MetricEvidence(
        log_e=log_e,
        log_e_safety=safety,
        report=report,
        name=metric.name,
        wave=wave,
        control_change=control_change,
        control_var=control_var,
        tolerance=metric.tolerance,
    )


def _average(logs: Sequence[FloatArray], weights: Sequence[float]) -> FloatArray:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    stacked = np.stack([np.asarray(x, dtype=np.float64) for x in logs])
    out: FloatArray = np.logaddexp.reduce(stacked + np.log(w)[:, None], axis=0)
    return out


@dataclass(slots=True)
class _Marks:
    """Which models go back, and why (mutable while one look is decided)."""

    already: npt.NDArray[np.bool_]
    now: npt.NDArray[np.bool_]
    reasons: dict[int, str]

    @property
    def rolled(self) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.already | self.now
        return out

    def add(self, found: npt.NDArray[np.bool_], reason: str) -> None:
        for i in np.flatnonzero(found & ~self.rolled):
            self.reasons[int(i)] = reason
        self.now = self.now | (found & ~self.already)


def _at_once(
    decision: FloatArray, log_e_safety: FloatArray | None, look: WaveLook, limits: dict[str, float]
) -> _Marks:
    already = np.array([name in look.frozen for name in look.wave], dtype=np.bool_)
    marks = _Marks(already=already, now=np.zeros_like(already), reasons={})
    marks.add(
        decision >= limits["model_at_once"], "harmful: e-value beyond the wave's e-Bonferroni bound"
    )
    if log_e_safety is not None:
        marks.add(
            log_e_safety >= limits["safety"], "unsafe: new-version rate above its safety bound"
        )
    return marks


def _too_many(m: int, marks: _Marks) -> str:
    return f"{int(marks.rolled.sum())} of {m} models rolled back, above the wave's share"


def _wave_rule(
    evidence: Sequence[_MetricEvidence],
    weights: Sequence[float],
    policy: FleetPolicy,
    look: WaveLook,
    *,
    decision: FloatArray,
    marks: _Marks,
) -> tuple[Verdict, str, bool, dict[str, dict[str, float | None]]]:
    m, limits, scale = len(look.wave), policy.thresholds(len(look.wave)), policy.mixture_scale
    # Pooled over the models still on the new version: a model already found harmful has been
    # dealt with; the wave's question is whether the version harms the rest (docs/fleets.md
    # discusses this selection; the A/A benchmark measures its calibration).
    fail_parts = [e.pooled(~marks.rolled, scale) for e in evidence]
    pooled_fail = float(_average([np.array([f]) for f, _, _ in fail_parts], weights)[0])

    def pass_log_e() -> float:
        keep = ~marks.rolled
        return min(e.pooled(keep, scale)[1] for e in evidence) if keep.any() else -math.inf

    pooled_pass = pass_log_e()
    verdict, reason, final = Verdict.INCONCLUSIVE, "collecting evidence", False
    if pooled_fail >= limits["pooled_fail"]:
        verdict, reason, final = Verdict.FAIL, "the wave's pooled evidence shows harm", True
    elif policy.too_many(int(marks.rolled.sum()), m):
        verdict, reason, final = Verdict.FAIL, _too_many(m, marks), True
    elif (look.dwell_over and pooled_pass >= limits["pooled_pass"]) or look.deadline:
        # The wave's stopping time: e-BH acts once, on the stopped e-processes.
        final = True
        level = policy.wave_alpha * policy.model_share
        marks.add(e_bh_from_log(decision, level), "harmful: in the wave's e-BH discoveries")
        pooled_pass = pass_log_e()
        if policy.too_many(int(marks.rolled.sum()), m):
            verdict, reason = Verdict.FAIL, _too_many(m, marks)
        elif look.dwell_over and pooled_pass >= limits["pooled_pass"]:
            verdict, reason = Verdict.PASS, "pooled evidence rules out harm beyond tolerance"
        else:
            reason = "deadline reached without pooled evidence of no harm: the fleet holds"
    if verdict is Verdict.FAIL:
        marks.add(np.ones(m, dtype=np.bool_), "its wave failed")
    pooled = {e.name: part[2] for e, part in zip(evidence, fail_parts, strict=True)}
    pooled["e"] = {"fail_log_e": _finite(pooled_fail), "pass_log_e": _finite(pooled_pass)}
    return verdict, reason, final, pooled


@dataclass(frozen=True, slots=True)
class ModelEvidence:
    """Every metric's per-model evidence of one look, combined: the weighted average of the
    metrics' e-values (an average of e-values is one) and of their safety e-values."""

    metrics: list[_MetricEvidence]
    weights: list[float]
    log_e: FloatArray
    log_e_safety: FloatArray | None

    def at_once(self, decision: FloatArray, look: WaveLook, limits: dict[str, float]) -> _Marks:
        return _at_once(decision, self.log_e_safety, look, limits)

    def report(self, i: int) -> dict[str, dict[str, float | None]]:
        return {e.name: e.report[i] for e in self.metrics}


def model_evidence(
    metrics: Sequence[FleetMetric], policy: FleetPolicy, look: WaveLook
) -> ModelEvidence:
    """The per-model evidence of ``look.wave`` against ``look.controls`` (pure)."""
    if not metrics:
        raise InvalidInputError("a fleet needs at least one metric", field="metrics")
    if not look.wave:
        raise InvalidInputError("a wave needs at least one model", field="wave")
    evidence = [_metric_evidence(x, look, policy.mixture_scale) for x in metrics]
    weights = [x.weight for x in metrics]
    log_e = _average([e.log_e for e in evidence], weights)
    with_safety = [e.log_e_safety for e in evidence if e.log_e_safety is not None]
    log_e_safety = _average(with_safety, [1.0] * len(with_safety)) if with_safety else None
    return ModelEvidence(metrics=evidence, weights=weights, log_e=log_e, log_e_safety=log_e_safety)


def judge_wave(
    metrics: Sequence[FleetMetric], policy: FleetPolicy, look: WaveLook
) -> WaveJudgement:
    """Judge one look at one wave (pure). See the module docstring for the rules."""
    ev = model_evidence(metrics, policy, look)
    limits = policy.thresholds(len(look.wave))
    decision = np.array(
        [look.frozen.get(name, float(v)) for name, v in zip(look.wave, ev.log_e, strict=True)]
    )
    marks = ev.at_once(decision, look, limits)
    verdict, reason, final, pooled = _wave_rule(
        ev.metrics, ev.weights, policy, look, decision=decision, marks=marks
    )
    return WaveJudgement(
        verdict=verdict,
        reason=reason,
        final=final,
        rollbacks=tuple(look.wave[i] for i in np.flatnonzero(marks.now)),
        models=model_judgements(look.wave, decision, ev, marks),
        pooled=pooled,
        thresholds={k: round(v, 6) for k, v in limits.items()},
    )


def model_judgements(
    names: Sequence[str], decision: FloatArray, ev: ModelEvidence, marks: _Marks
) -> tuple[ModelJudgement, ...]:
    return tuple(
        ModelJudgement(
            model=name,
            log_e=float(decision[i]),
            log_e_safety=None if ev.log_e_safety is None else float(ev.log_e_safety[i]),
            rolled_back=bool(marks.rolled[i]),
            rollback_now=bool(marks.now[i]),
            reason=marks.reasons.get(
                i, "rolled back earlier" if marks.already[i] else "no evidence of harm"
            ),
            metrics=ev.report(i),
        )
        for i, name in enumerate(names)
    )
