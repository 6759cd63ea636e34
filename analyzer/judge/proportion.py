"""``proportion`` metrics (error rate, false-positive rate): difference of rates with an
absolute non-inferiority margin (``tolerance`` 0.001 = +0.1 percentage points)."""

from __future__ import annotations

import math

from analyzer.domain.observation import ProportionObservation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.verdict import MetricKind
from analyzer.judge.evidence import Evidence, orientations, pct
from analyzer.judge.sequential import Component
from analyzer.stats.effects import rate_difference_of


def exact_applies(spec: MetricSpec) -> bool:
    """Whether the exact conditional test judges this metric when it has a horizon.

    It needs the null "canary rate no higher than baseline" (tolerance 0): conditioning on the
    events then leaves a binomial with a known probability. An absolute margin makes that
    probability depend on the unknown baseline rate, and its least-favourable value is
    degenerate (docs/statistics.md), so a tolerance keeps the normal approximation.
    """
    return spec.kind is MetricKind.PROPORTION and not spec.tolerance


def proportion_evidence(spec: MetricSpec, obs: ProportionObservation) -> Evidence:
    b, c = obs.baseline, obs.canary
    tol = spec.tolerance or 0.0
    exact = exact_applies(spec)
    components = []
    for suffix, sign, share in orientations(spec.direction):
        harm, other = (c, b) if sign > 0 else (b, c)
        theta, se, neff = rate_difference_of(
            other.events, other.total, harm.events, harm.total, tol
        )
        counts = (harm.events, other.events, float(harm.total), float(other.total))
        components.append(
            Component(
                name=f"rate{suffix}",
                weight=share,
                theta=theta,
                se=se,
                neff=neff,
                margin=tol,
                orientation=sign,
                counts=counts if exact else None,
            )
        )
    p_b = b.events / b.total if b.total else math.nan
    p_c = c.events / c.total if c.total else math.nan
    rr = p_c / p_b if p_b > 0 else None
    return Evidence(
        components=tuple(components),
        n_baseline=b.total,
        n_canary=c.total,
        summary=f"canary rate {pct(p_c)} ({c.events}/{c.total}) vs baseline {pct(p_b)} "
        f"({b.events}/{b.total})",
        harm=f"harm beyond {100 * tol:+.3g} pp",
        estimate={
            "baseline_rate": p_b,
            "canary_rate": p_c,
            "diff": p_c - p_b,
            "relative_risk": rr if rr is None or math.isfinite(rr) else None,
        },
        descriptive={"events": {"baseline": b.events, "canary": c.events}},
    )
