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
* **the wave fails** when the pooled evidence of the whole wave (intention to treat: every model
  of the wave, rolled back or not) reaches ``1 / (a * pooled_share)``, or when more than
  ``max_rollback_share`` of the wave has been rolled back: every model of the wave goes back.
* **the wave passes** once its dwell is over, the pooled no-harm e-process of every metric has
  reached ``1 / pass_alpha`` and, after e-BH at ``a * model_share`` is applied once (this look is
  the wave's stopping time) and its new rejections are rolled back, the rolled-back share is
  still within ``max_rollback_share``.
* otherwise it is **inconclusive**; past the wave's deadline e-BH is applied once as at a pass,
  and the fleet holds (never promotes on missing evidence).

Under an A/A fleet the probability of any false rollback is at most ``policy.alpha`` (each
wave: e-BH under the global null rejects anything with probability <= its level; the pooled
test by Ville's inequality; the safety test by Ville and Bonferroni; a union over waves).
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
DEFAULT_MIXTURE_SCALE = 0.05


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
    mixture_scale: float = DEFAULT_MIXTURE_SCALE
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
        if not 0.0 <= self.max_rollback_share <= 1.0:
            raise InvalidInputError(
                "max_rollback_share must be in [0, 1]", field="max_rollback_share"
            )
        if not self.mixture_scale > 0:
            raise InvalidInputError("mixture_scale must be positive", field="mixture_scale")
        shares = (self.model_share, self.pooled_share, self.safety_share)
        if min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-9:
            raise InvalidInputError("the alpha shares must be positive and sum to 1", field="alpha")

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
    pooled_fail: float
    pooled_pass: float
    report: list[dict[str, float | None]]
    pooled: dict[str, float | None]


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
    pooled = did_rate_effect(
        after_events=wave.after_events.sum(),
        after_total=wave.after_total.sum(),
        before_events=wave.before_events.sum(),
        before_total=wave.before_total.sum(),
        control_change=control_change,
        control_var=control_var,
        margin=metric.tolerance,
    )
    pz, pn = float(pooled.z), float(pooled.neff)
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
        pooled_fail=float(log_e_one_sided(pz, pn, scale)),
        pooled_pass=float(log_e_one_sided(-pz, pn, scale)),
        report=report,
        pooled={
            "did": _finite(float(pooled.theta) + metric.tolerance),
            "control_change": _finite(control_change),
            "z": _finite(pz),
            "after_total": float(wave.after_total.sum()),
            "before_total": float(wave.before_total.sum()),
        },
    )


def _average(logs: Sequence[FloatArray], weights: Sequence[float]) -> FloatArray:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    stacked = np.stack([np.asarray(x, dtype=np.float64) for x in logs])
    out: FloatArray = np.logaddexp.reduce(stacked + np.log(w)[:, None], axis=0)
    return out


def judge_wave(
    metrics: Sequence[FleetMetric], policy: FleetPolicy, look: WaveLook
) -> WaveJudgement:
    """Judge one look at one wave (pure). See the module docstring for the rules."""
    if not metrics:
        raise InvalidInputError("a fleet needs at least one metric", field="metrics")
    if not look.wave:
        raise InvalidInputError("a wave needs at least one model", field="wave")
    m = len(look.wave)
    limits = policy.thresholds(m)
    evidence = [_metric_evidence(x, look, policy.mixture_scale) for x in metrics]
    log_e = _average([e.log_e for e in evidence], [x.weight for x in metrics])
    with_safety = [e.log_e_safety for e in evidence if e.log_e_safety is not None]
    log_e_safety = _average(with_safety, [1.0] * len(with_safety)) if with_safety else None

    already = np.array([name in look.frozen for name in look.wave])
    decision = np.array(
        [look.frozen.get(name, float(v)) for name, v in zip(look.wave, log_e, strict=True)]
    )
    harmful = decision >= limits["model_at_once"]
    unsafe = (
        log_e_safety >= limits["safety"]
        if log_e_safety is not None
        else np.zeros(m, dtype=np.bool_)
    )
    now = (harmful | unsafe) & ~already
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(now):
        reasons[int(i)] = (
            "harmful: e-value beyond the wave's e-Bonferroni bound"
            if harmful[i]
            else "unsafe: new-version rate above its safety bound"
        )
    rolled = already | now

    weights = [x.weight for x in metrics]
    pooled_fail = float(_average([np.array([e.pooled_fail]) for e in evidence], weights)[0])
    pooled_pass = min(e.pooled_pass for e in evidence)
    verdict, reason, final = Verdict.INCONCLUSIVE, "collecting evidence", False
    if pooled_fail >= limits["pooled_fail"]:
        verdict, reason, final = Verdict.FAIL, "the wave's pooled evidence shows harm", True
    elif rolled.sum() > policy.max_rollback_share * m:
        verdict, final = Verdict.FAIL, True
        reason = f"{int(rolled.sum())} of {m} models rolled back, above the wave's share"
    elif (look.dwell_over and pooled_pass >= limits["pooled_pass"]) or look.deadline:
        # The wave's stopping time: e-BH acts once, on the stopped e-processes.
        final = True
        found = e_bh_from_log(decision, policy.wave_alpha * policy.model_share) & ~rolled
        for i in np.flatnonzero(found):
            reasons[int(i)] = "harmful: in the wave's e-BH discoveries"
        now |= found
        rolled |= found
        if rolled.sum() > policy.max_rollback_share * m:
            verdict = Verdict.FAIL
            reason = f"{int(rolled.sum())} of {m} models rolled back, above the wave's share"
        elif look.dwell_over and pooled_pass >= limits["pooled_pass"]:
            verdict, reason = Verdict.PASS, "pooled evidence rules out harm beyond tolerance"
        else:
            reason = "deadline reached without pooled evidence of no harm: the fleet holds"
    if verdict is Verdict.FAIL:
        for i in np.flatnonzero(~rolled):
            reasons[int(i)] = "its wave failed"
        now = ~already
        rolled = np.ones(m, dtype=np.bool_)
    models = tuple(
        ModelJudgement(
            model=name,
            log_e=float(decision[i]),
            log_e_safety=None if log_e_safety is None else float(log_e_safety[i]),
            rolled_back=bool(rolled[i]),
            rollback_now=bool(now[i]),
            reason=reasons.get(i, "rolled back earlier" if already[i] else "no evidence of harm"),
            metrics={x.name: e.report[i] for x, e in zip(metrics, evidence, strict=True)},
        )
        for i, name in enumerate(look.wave)
    )
    pooled = {x.name: e.pooled for x, e in zip(metrics, evidence, strict=True)}
    pooled["e"] = {"fail_log_e": _finite(pooled_fail), "pass_log_e": _finite(pooled_pass)}
    return WaveJudgement(
        verdict=verdict,
        reason=reason,
        final=final,
        rollbacks=tuple(look.wave[i] for i in np.flatnonzero(now)),
        models=models,
        pooled=pooled,
        thresholds={k: round(v, 6) for k, v in limits.items()},
    )
