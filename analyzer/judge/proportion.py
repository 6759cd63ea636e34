"""``proportion`` metrics (error rate, false-positive rate): difference of rates with an
absolute non-inferiority margin (``tolerance`` 0.001 = +0.1 percentage points)."""

from __future__ import annotations

import math

from analyzer.domain.observation import ProportionObservation
from analyzer.domain.profile import MetricSpec
from analyzer.judge.evidence import Evidence, orientations, pct
from analyzer.judge.sequential import Component
from analyzer.stats.effects import rate_difference


def proportion_evidence(spec: MetricSpec, obs: ProportionObservation) -> Evidence:
    b, c = obs.baseline, obs.canary
    tol = spec.tolerance or 0.0
    components = []
    for suffix, sign, share in orientations(spec.direction):
        if sign > 0:
            eff = rate_difference(b.events, b.total, c.events, c.total, tol)
        else:
            eff = rate_difference(c.events, c.total, b.events, b.total, tol)
        components.append(
            Component(
                name=f"rate{suffix}",
                weight=share,
                theta=float(eff.theta),
                se=float(eff.se),
                neff=float(eff.neff),
                margin=tol,
                orientation=sign,
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
