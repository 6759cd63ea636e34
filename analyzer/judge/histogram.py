"""``histogram`` latency metrics: a shift test and tail-exceedance tests on bucket counts.

A uniform slowdown moves the whole distribution (Mann-Whitney-type ordinal effect on buckets);
a tail regression (a few requests much slower) barely moves it but raises the share above a high
threshold (exceedance rate difference). Both are needed (research: each misses what the other
catches), so the metric has three components: the shift (half the metric's alpha) and
exceedances above the bucket bounds nearest the pooled p90 and p99 (a quarter each). Tail
thresholds are frozen the first time both arms have enough requests for that quantile, from the
pooled counts (symmetric under the null), and never move afterwards.

The relative ``tolerance`` is applied by dividing the canary's latencies by ``1 + tolerance``
(log-linear interpolation within buckets) before comparing: the null is "canary no slower than
(1 + tolerance) x baseline".
"""

from __future__ import annotations

import math

import numpy as np

from analyzer.domain.observation import HistogramObservation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.result import JsonValue
from analyzer.judge.evidence import Evidence, orientations
from analyzer.judge.sequential import Component
from analyzer.stats import portable
from analyzer.stats.effects import (
    added,
    ordinal_effect_of,
    quantile,
    quantiles_with_intervals,
    rate_difference_of,
    rescale_counts,
    whole_counts,
)

SHIFT_WEIGHT = 0.5
Dirs = tuple[tuple[str, int, float], ...]
TAIL_LEVELS = (0.90, 0.99)  # upper tails for "increase"; mirrored (0.10, 0.01) for "decrease"
TAIL_MIN_EXCEEDANCES = 10.0  # expected exceedances per arm before a tail threshold is frozen


def _tail_level(level: float, sign: int) -> float:
    return level if sign > 0 else round(1.0 - level, 6)


def _freeze(
    obs: HistogramObservation, frozen: tuple[tuple[float, float], ...], sign: int
) -> tuple[tuple[float, float], ...]:
    n_min = min(sum(obs.baseline), sum(obs.canary))
    out = list(frozen)
    for level in TAIL_LEVELS:
        q = _tail_level(level, sign)
        if (
            any(abs(f[0] - q) < 1e-9 for f in frozen)
            or n_min * (1.0 - level) < TAIL_MIN_EXCEEDANCES
        ):
            continue  # (every look once both are frozen: nothing below is computed then)
        pooled = tuple(float(b + c) for b, c in zip(obs.baseline, obs.canary, strict=True))
        finite = np.array(obs.bounds[:-1])
        target = quantile(obs.bounds, pooled, q)
        if not target > 0:
            continue
        bound = float(finite[np.argmin(np.abs(portable.log(finite) - math.log(target)))])
        out.append((q, bound))
    return tuple(out)


def _tail_component(
    name: str,
    obs: HistogramObservation,
    canary: np.ndarray,
    n_c: float,
    whole: tuple[list[float], list[float]] | None,
    *,
    bound: float,
    sign: int,
    w: float,
) -> Component:
    """``n_c`` is ``float(canary.sum())``, ``whole`` is ``whole_counts(obs.baseline)``: both
    computed once per look and direction."""
    j = obs.bounds.index(bound)
    if whole is not None:  # whole counts: exact sums, the same as numpy's
        base = whole[0]
        n_b = whole[1][-1]
        x_b = added(base[j + 1 :]) if sign > 0 else added(base[: j + 1])
    else:
        arr = np.asarray(obs.baseline, dtype=np.float64)
        n_b = float(arr.sum())
        x_b = float(arr[j + 1 :].sum()) if sign > 0 else float(arr[: j + 1].sum())
    # the rescaled canary is fractional: numpy's pairwise sums, as before
    x_c = float(canary[j + 1 :].sum()) if sign > 0 else float(canary[: j + 1].sum())
    theta, se, neff = rate_difference_of(x_b, n_b, x_c, n_c, 0.0)
    return Component(name=name, weight=w, theta=theta, se=se, neff=neff, orientation=1)


def _quantiles(obs: HistogramObservation) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    levels = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"))
    qs = [q for q, _ in levels]
    baseline = quantiles_with_intervals(obs.bounds, obs.baseline, qs)
    canary = quantiles_with_intervals(obs.bounds, obs.canary, qs)
    for (_, label), (qb, ci_b), (qc, ci_c) in zip(levels, baseline, canary, strict=True):
        out[label] = {
            "baseline": qb,
            "canary": qc,
            "baseline_ci": list(ci_b),
            "canary_ci": list(ci_c),
            "ratio": qc / qb if qb > 0 and math.isfinite(qc) else None,
        }
    return out


def _direction_components(
    obs: HistogramObservation, tails: tuple[tuple[float, float], ...], tol: float, dirs: Dirs
) -> list[Component]:
    """Shift and tail components for each harmful direction, on the rescaled canary."""
    components: list[Component] = []
    whole = whole_counts(obs.baseline) if tails else None
    for suffix, sign, share in dirs:
        factor = 1.0 + tol if sign > 0 else max(1.0 - tol, 1e-3)
        canary = rescale_counts(obs.bounds, obs.canary, factor)
        theta, se, neff = ordinal_effect_of(obs.baseline, canary.tolist())
        components.append(
            Component(
                name=f"shift{suffix}",
                weight=share * SHIFT_WEIGHT,
                theta=theta if sign > 0 else -theta,
                se=se,
                neff=neff,
                orientation=sign,
            )
        )
        tail_w = share * (1.0 - SHIFT_WEIGHT) / len(TAIL_LEVELS)
        n_c = float(canary.sum())
        for q, bound in tails:
            if (q > 0.5) == (sign > 0):
                name = f"tail_q{q:g}{suffix}"
                components.append(
                    _tail_component(name, obs, canary, n_c, whole, bound=bound, sign=sign, w=tail_w)
                )
    return components


def histogram_evidence(
    spec: MetricSpec, obs: HistogramObservation, frozen: tuple[tuple[float, float], ...]
) -> Evidence:
    tol = spec.tolerance or 0.0
    dirs = orientations(spec.direction)
    tails = frozen
    for _, sign, _ in dirs:
        tails = _freeze(obs, tails, sign)
    quant = _quantiles(obs)
    p50, p99 = quant["p50"], quant["p99"]
    assert isinstance(p50, dict)
    assert isinstance(p99, dict)
    return Evidence(
        components=tuple(_direction_components(obs, tails, tol, dirs)),
        n_baseline=int(sum(obs.baseline)),
        n_canary=int(sum(obs.canary)),
        summary=f"canary p50 {p50['canary']:.4g} / p99 {p99['canary']:.4g} vs baseline "
        f"p50 {p50['baseline']:.4g} / p99 {p99['baseline']:.4g}",
        harm=f"harm beyond {100 * tol:+.3g}% (relative)",
        estimate=quant,
        descriptive={"tail_thresholds": {f"q{q:g}": b for q, b in tails}},
        complete=len(tails) == len(TAIL_LEVELS) * len(dirs),
        tail_bounds=tails,
    )
