"""The ``samples`` kind: Kayenta's NetflixACAJudge classification of two raw series.

Kayenta-compatible by design, so users migrating from Kayenta get the same ``classification``
on the same data (see ``docs/statistics-samples.md`` and the parity cases in
``tests/data/kayenta_classifier_cases.json``). The order of the rules is Kayenta's:

1. NaN handling (``remove`` drops NaNs, ``replace`` makes them 0.0);
2. either side empty, or every value on both sides NaN → ``nodata`` (never a pass:
   ``inconclusive``, or ``error`` when the metric must have data or is critical);
3. identical samples, or a single distinct value overall → ``pass``;
4. both sides constant but different → the shift is exactly the difference (Kayenta adds
   unseeded Gaussian jitter here; we use its deterministic limit, see ``_constant_shift``);
5. Mann–Whitney/Hodges–Lehmann interval of ``canary - baseline``; ``high`` when its lower end
   exceeds ``tolerance x |estimate|`` and the effect size reaches ``allowed_increase``; ``low``
   when the upper end is below ``-tolerance x |estimate|`` and the effect size is at most
   ``allowed_decrease`` (a NaN effect size skips that gate). Only the watched directions are
   classified, as in Kayenta;
6. a critical metric's ``high``/``low`` is a *critical* failure when the effect size also
   reaches the critical threshold.

Verdicts: ``high``/``low`` (always in a watched, harmful direction) → ``fail``; ``pass`` →
``pass``. A significant shift in a direction the metric allows is reported in the reason and
passes. One deliberate difference: a baseline of zeros against canary values above zero (or a
canary of zeros under ``direction=decrease``) is never passed — ``inconclusive`` instead — because
the rank interval is pinned to the data's range there and shows nothing.

This is a fixed-horizon test: its confidence holds for one look, not for repeated looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import SamplesObservation
from analyzer.domain.profile import EffectSize, MetricSpec
from analyzer.domain.result import JsonValue, MetricResult
from analyzer.domain.verdict import Classification, Direction, MetricKind, Verdict
from analyzer.judge.outliers import remove_outliers
from analyzer.stats.mann_whitney import FloatArray, cles, mean_ratio, rank_sum_test, shift_interval

KAYENTA_TOLERANCE = 0.25
"""Kayenta's hard-coded tolerance, used when a ``samples`` metric sets none."""

METHOD = "mann_whitney_hodges_lehmann"
DESIGN = "fixed-horizon (Kayenta-compatible; not corrected for repeated looks)"


EFFECT_MEASURES = ("mean_ratio", "cles")


def effect_size_with_defaults(
    measure: str,
    *,
    allowed_increase: float | None = None,
    allowed_decrease: float | None = None,
    critical_increase: float | None = None,
    critical_decrease: float | None = None,
) -> EffectSize:
    """An effect-size setting from what a user gave: unnamed thresholds take the measure's
    Kayenta defaults (so ``{"measure": "cles"}`` alone means 0.5, not the mean-ratio 1.0)."""
    if measure not in EFFECT_MEASURES:
        raise InvalidInputError(
            f"measure must be one of {', '.join(EFFECT_MEASURES)}, not {measure!r}",
            field="effect_size.measure",
        )
    neutral = default_effect_size(measure).allowed_increase

    def pick(value: float | None) -> float:
        return neutral if value is None else value

    return EffectSize(
        measure=measure,
        allowed_increase=pick(allowed_increase),
        allowed_decrease=pick(allowed_decrease),
        critical_increase=pick(critical_increase),
        critical_decrease=pick(critical_decrease),
    )


def default_effect_size(measure: str = "mean_ratio") -> EffectSize:
    """Kayenta's effect-size defaults for ``measure``: 1.0 for mean ratios, 0.5 for CLES.

    Parsers should use this when a metric names a measure but not its thresholds: the
    dataclass defaults are the mean-ratio ones, and a CLES threshold of 1.0 would never fire.
    """
    neutral = 0.5 if measure == "cles" else 1.0
    return EffectSize(
        measure=measure,
        allowed_increase=neutral,
        allowed_decrease=neutral,
        critical_increase=neutral,
        critical_decrease=neutral,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class _Outcome:
    classification: Classification
    verdict: Verdict
    critical: bool
    kayenta: str
    reason: str


def judge_samples(spec: MetricSpec, obs: SamplesObservation) -> MetricResult:
    """Judge one ``samples`` metric. Raises :class:`InvalidInputError` for bad settings or data."""
    _validate(spec)
    effect = spec.effect_size or default_effect_size()
    sample = prepare(obs, nan_strategy=spec.nan_strategy, outlier_factor=spec.outlier_factor)
    if sample.canary.size == 0 or sample.baseline.size == 0 or _nothing_observed(sample):
        return _result(spec, sample, _nodata(spec, sample), {}, {})
    tolerance = KAYENTA_TOLERANCE if spec.tolerance is None else spec.tolerance
    evidence = measure_shift(sample, confidence=spec.confidence, measure=effect.measure)
    label, is_critical = classify_shift(
        evidence,
        direction=spec.direction,
        tolerance=tolerance,
        effect=effect,
        critical=spec.critical,
    )
    outcome = _decide(
        spec=spec,
        sample=sample,
        evidence=evidence,
        label=label,
        is_critical=is_critical,
        tolerance=tolerance,
        effect=effect,
    )
    return _result(
        spec, sample, outcome, _estimate(evidence), _statistic(spec, evidence, tolerance, effect)
    )


def _validate(spec: MetricSpec) -> None:
    if spec.kind is not MetricKind.SAMPLES:
        raise InvalidInputError(f"expected a samples metric, got {spec.kind}", field="kind")
    if not 0 < spec.confidence < 1:
        raise InvalidInputError("must lie strictly between 0 and 1", field="confidence")
    if spec.tolerance is not None and not (spec.tolerance >= 0 and math.isfinite(spec.tolerance)):
        raise InvalidInputError("must be a finite number >= 0", field="tolerance")
    if spec.nan_strategy not in ("remove", "replace"):
        raise InvalidInputError('must be "remove" or "replace"', field="nan_strategy")
    effect = spec.effect_size
    if effect is not None and effect.measure not in ("mean_ratio", "cles"):
        raise InvalidInputError('must be "mean_ratio" or "cles"', field="effect_size.measure")


def _nothing_observed(sample: Sample) -> bool:
    """Every value on both sides was NaN (so ``replace`` made two identical series of zeros).

    That is what a broken query or a label mismatch looks like (kayenta#738); Kayenta passes
    it as identical data. One all-NaN side against real values stays a zero series: that is the
    case ``replace`` exists for (no errors at all in the baseline).
    """
    return sample.all_nan


def _nodata(spec: MetricSpec, sample: Sample) -> _Outcome:
    """Kayenta's no-data rule, except that no data never passes (Kayenta passes under replace)."""
    empty = "canary" if sample.canary.size == 0 else "baseline"
    if sample.canary.size == sample.baseline.size == 0:
        empty = "canary and baseline"
    what = f"No {empty} values after NaN handling ({spec.nan_strategy})"
    if sample.canary.size and sample.baseline.size:  # all NaN, replaced by zeros
        what = "Every baseline and canary value is NaN, as a broken query would also give"
    failing = spec.must_have_data or spec.critical
    kayenta = "NodataFailMetric" if spec.must_have_data and not spec.critical else "Nodata"
    if spec.nan_strategy == "replace":
        kayenta = "Pass"
    consequence = "an error, since the metric must have data" if failing else "not a pass"
    return _Outcome(
        classification=Classification.NODATA,
        verdict=Verdict.ERROR if failing else Verdict.INCONCLUSIVE,
        critical=spec.critical,
        kayenta=kayenta,
        reason=f"{what}; that is {consequence}.",
    )


def _decide(
    *,
    spec: MetricSpec,
    sample: Sample,
    evidence: ShiftEvidence,
    label: Classification,
    is_critical: bool,
    tolerance: float,
    effect: EffectSize,
) -> _Outcome:
    kayenta = label.value.capitalize()
    verdict, reason = Verdict.PASS, _pass_reason(spec, evidence, tolerance, effect)
    if label is not Classification.PASS:
        severity = ", a critical failure" if is_critical else ""
        verdict = Verdict.FAIL
        reason = (
            f"Canary is {label.value}er than baseline{severity}: the {_interval_text(evidence)} "
            f"clears ±{tolerance:g}×|shift| and {_effect_text(evidence, label, effect)} "
            "(fixed-horizon test)."
        )
    elif _zero_against_events(sample, spec.direction):
        verdict = Verdict.INCONCLUSIVE
        reason = (
            "Baseline and canary differ between all-zero and non-zero values, which the rank "
            "interval cannot resolve; not passed (Kayenta would pass it)."
        )
    return _Outcome(
        classification=label, verdict=verdict, critical=is_critical, kayenta=kayenta, reason=reason
    )


def _pass_reason(
    spec: MetricSpec, evidence: ShiftEvidence, tolerance: float, effect: EffectSize
) -> str:
    if evidence.rule != "rank_interval":
        return f"Pass: {evidence.rule.replace('_', ' ')}."
    either, _ = classify_shift(
        evidence, direction=Direction.EITHER, tolerance=tolerance, effect=effect, critical=False
    )
    if either is not Classification.PASS:
        return (
            f"Pass: canary is significantly {either.value}er ({_interval_text(evidence)}), "
            f"which direction={spec.direction.value} allows (fixed-horizon test)."
        )
    return (
        f"Pass: no shift beyond ±{tolerance:g}×|shift| with the {_interval_text(evidence)} "
        "(fixed-horizon test; absence of evidence, as in Kayenta)."
    )


def _zero_against_events(sample: Sample, direction: Direction) -> bool:
    """A side of only zeros against a side with values above zero, in a harmful direction."""

    up = bool(np.all(sample.baseline == 0) and np.any(sample.canary > 0))
    down = bool(np.all(sample.canary == 0) and np.any(sample.baseline > 0))
    watches_up = direction in (Direction.INCREASE, Direction.EITHER)
    watches_down = direction in (Direction.DECREASE, Direction.EITHER)
    return (up and watches_up) or (down and watches_down)


def _effect_text(evidence: ShiftEvidence, label: Classification, effect: EffectSize) -> str:
    if math.isnan(evidence.effect):
        return (
            f"the {effect.measure} is undefined (a zero mean), so its gate is skipped as in Kayenta"
        )
    up = label is Classification.HIGH
    limit = effect.allowed_increase if up else effect.allowed_decrease
    relation = ">=" if up else "<="
    return f"the {effect.measure} {_fmt(evidence.effect)} is {relation} {limit:g}"


def _interval_text(evidence: ShiftEvidence) -> str:
    pct = f"{evidence.confidence * 100:g}%"
    shift = f"shift {_fmt(evidence.estimate)}"
    clamped = " (clamped to the data's range)" if evidence.clamped else ""
    return f"{pct} interval [{_fmt(evidence.lower)}, {_fmt(evidence.upper)}]{clamped} of {shift}"


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _estimate(evidence: ShiftEvidence) -> dict[str, JsonValue]:
    return {
        "shift": _finite(evidence.estimate),
        "ci": [_finite(evidence.lower), _finite(evidence.upper)],
        "confidence": evidence.confidence,
        "mean_ratio": _finite(evidence.mean_ratio),
        "cles": _finite(evidence.cles),
        "mean_baseline": _finite(evidence.mean_baseline),
        "mean_canary": _finite(evidence.mean_canary),
    }


def _statistic(
    spec: MetricSpec, evidence: ShiftEvidence, tolerance: float, effect: EffectSize
) -> dict[str, JsonValue]:
    return {
        "method": METHOD,
        "design": DESIGN,
        "rule": evidence.rule,
        "p_value": _finite(evidence.p_value),
        "z": _finite(evidence.z),
        "tolerance": tolerance,
        "band": _finite(tolerance * abs(evidence.estimate)),
        "interval_clamped": evidence.clamped,
        "effect_measure": effect.measure,
        "effect": _finite(evidence.effect),
        "nan_strategy": spec.nan_strategy,
    }


def _result(
    spec: MetricSpec,
    sample: Sample,
    outcome: _Outcome,
    estimate: dict[str, JsonValue],
    statistic: dict[str, JsonValue],
) -> MetricResult:
    statistic = {
        "method": METHOD,
        "design": DESIGN,
        **statistic,
        "kayenta_classification": outcome.kayenta,
        "nan_count": {"baseline": sample.nan_baseline, "canary": sample.nan_canary},
    }
    if sample.outliers_removed is not None:
        baseline, canary = sample.outliers_removed
        statistic["outliers_removed"] = {"baseline": baseline, "canary": canary}
    return MetricResult(
        name=spec.name,
        kind=MetricKind.SAMPLES,
        verdict=outcome.verdict,
        classification=outcome.classification,
        reason=outcome.reason,
        n_baseline=int(sample.baseline.size),
        n_canary=int(sample.canary.size),
        estimate=estimate,
        statistic=statistic,
        critical=outcome.critical,
        weight=spec.weight,
        group=spec.group,
    )


# --- the evidence and Kayenta's classification rules -------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    """Both series after NaN handling, with how many NaNs each had."""

    baseline: FloatArray
    canary: FloatArray
    nan_baseline: int
    nan_canary: int
    all_nan: bool = False
    outliers_removed: tuple[int, int] | None = None  # (baseline, canary), when removal is on


@dataclass(frozen=True, kw_only=True, slots=True)
class ShiftEvidence:
    """What the classification rules look at. ``rule`` names the branch that produced it."""

    rule: str
    estimate: float
    lower: float
    upper: float
    confidence: float
    clamped: bool
    effect: float
    mean_ratio: float
    cles: float
    mean_baseline: float
    mean_canary: float
    p_value: float
    z: float


def prepare(
    obs: SamplesObservation, *, nan_strategy: str, outlier_factor: float | None = None
) -> Sample:
    """Apply the NaN strategy, then (with ``outlier_factor``) Kayenta's outlier removal per side;
    infinite values are invalid input (no rank or mean survives them)."""
    arrays = []
    nans = []
    all_nan = True
    for arm, values in (("baseline", obs.baseline), ("canary", obs.canary)):
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        missing = np.isnan(array)
        if np.any(np.isinf(array)):
            raise InvalidInputError("values must be finite numbers or NaN", field=arm)
        nans.append(int(np.count_nonzero(missing)))
        all_nan = all_nan and bool(np.all(missing))
        arrays.append(
            np.where(missing, 0.0, array) if nan_strategy == "replace" else array[~missing]
        )
    removed = None
    if outlier_factor is not None:
        kept = [remove_outliers(array, outlier_factor) for array in arrays]
        removed = (arrays[0].size - kept[0].size, arrays[1].size - kept[1].size)
        arrays = kept
    return Sample(
        baseline=arrays[0],
        canary=arrays[1],
        nan_baseline=nans[0],
        nan_canary=nans[1],
        all_nan=all_nan,
        outliers_removed=removed,
    )


def measure_shift(sample: Sample, *, confidence: float, measure: str) -> ShiftEvidence:
    """Kayenta's degenerate-data rules, then the rank interval of ``canary - baseline``."""
    c, b = sample.canary, sample.baseline
    common = {
        "confidence": confidence,
        "mean_ratio": mean_ratio(c, b),
        "cles": cles(c, b),
        "mean_baseline": float(np.mean(b)),
        "mean_canary": float(np.mean(c)),
    }
    identical = np.array_equal(np.sort(c), np.sort(b))
    if identical or np.unique(np.concatenate((c, b))).size == 1:
        return _no_shift("identical_data" if identical else "one_distinct_value", common)
    effect = common["cles"] if measure == "cles" else common["mean_ratio"]
    if _both_constant(sample):
        return _constant_shift(sample, effect=effect, common=common)
    test = rank_sum_test(c, b)
    interval = shift_interval(c, b, confidence=confidence)
    return ShiftEvidence(
        rule="rank_interval",
        estimate=interval.estimate,
        lower=interval.lower,
        upper=interval.upper,
        clamped=interval.lower_clamped or interval.upper_clamped,
        effect=effect,
        p_value=test.p_value,
        z=test.z,
        **common,
    )


def _no_shift(rule: str, common: dict[str, float]) -> ShiftEvidence:
    """Kayenta stops before any test here and reports a deviation of 1.0."""
    flat = {**common, "mean_ratio": 1.0, "cles": 0.5}
    return ShiftEvidence(
        rule=rule,
        estimate=0.0,
        lower=0.0,
        upper=0.0,
        clamped=False,
        effect=math.nan,
        p_value=1.0,
        z=0.0,
        **flat,
    )


def _both_constant(sample: Sample) -> bool:
    return bool(np.ptp(sample.canary) == 0 and np.ptp(sample.baseline) == 0)


def _constant_shift(sample: Sample, *, effect: float, common: dict[str, float]) -> ShiftEvidence:
    """Both sides constant but different: the rank statistic has no variance.

    Kayenta adds unseeded Gaussian noise (sd 1e-5 x value; zeros stay zeros) so the test can
    run. The noise cannot reorder two separated constants, so the noisy interval collapses onto
    the difference as the noise vanishes; we use that limit: shift = interval = the difference.
    Deterministic, and Kayenta's label for every such input whose values differ by more than
    the noise.
    """
    diff = float(sample.canary[0] - sample.baseline[0])
    return ShiftEvidence(
        rule="constant_samples",
        estimate=diff,
        lower=diff,
        upper=diff,
        clamped=False,
        effect=effect,
        p_value=math.nan,
        z=math.nan,
        **common,
    )


def classify_shift(
    evidence: ShiftEvidence,
    *,
    direction: Direction,
    tolerance: float,
    effect: EffectSize,
    critical: bool,
) -> tuple[Classification, bool]:
    """Kayenta's MannWhitneyClassifier decision and critical escalation: (label, critical)."""
    if evidence.rule in ("identical_data", "one_distinct_value"):
        return Classification.PASS, False
    band = tolerance * abs(evidence.estimate)
    size = evidence.effect
    unknown = math.isnan(size)  # a zero mean: Kayenta skips the magnitude gates
    if (
        direction in (Direction.INCREASE, Direction.EITHER)
        and evidence.lower > band
        and (unknown or size >= effect.allowed_increase)
    ):
        return Classification.HIGH, critical and (unknown or size >= effect.critical_increase)
    if (
        direction in (Direction.DECREASE, Direction.EITHER)
        and evidence.upper < -band
        and (unknown or size <= effect.allowed_decrease)
    ):
        return Classification.LOW, critical and (unknown or size <= effect.critical_decrease)
    return Classification.PASS, False
