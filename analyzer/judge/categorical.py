"""``categorical`` decision-mix metrics.

Ordered categories (``ordered: true``, least severe first, e.g. approve < review < decline) are
judged by the ordinal effect ``P(C > B) - P(C < B)`` (canary more severe), with ``tolerance`` an
absolute margin on that scale. Unordered categories are judged by an omnibus test on Pearson's
X**2 (any change of the mix): an e-process, or with a horizon alpha spending on sqrt(X**2)
(``stats/radial.py``). PSI and Jensen-Shannon are reported for humans and never
decide anything: at canary sample sizes their usual thresholds are both too loose and too noisy.
"""

from __future__ import annotations

import numpy as np

from analyzer.domain.observation import CategoricalObservation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.result import JsonValue
from analyzer.judge.evidence import Evidence, Omnibus, orientations
from analyzer.judge.sequential import Component
from analyzer.stats.effects import (
    effective_n_of,
    jensen_shannon_of,
    ordinal_effect_of,
    pearson_chi2_of,
    psi_of,
)


def categorical_evidence(spec: MetricSpec, obs: CategoricalObservation) -> Evidence:
    b = np.asarray(obs.baseline, dtype=np.float64)
    c = np.asarray(obs.canary, dtype=np.float64)
    n_b, n_c = float(b.sum()), float(c.sum())
    share_b = b / n_b if n_b else b
    share_c = c / n_c if n_c else c
    chi2 = pearson_chi2_of(obs.baseline, obs.canary)
    estimate: dict[str, JsonValue] = {
        "baseline_shares": dict(zip(obs.categories, share_b.round(6).tolist(), strict=True)),
        "canary_shares": dict(zip(obs.categories, share_c.round(6).tolist(), strict=True)),
        "psi": round(psi_of(obs.baseline, obs.canary), 6),
        "jensen_shannon": round(jensen_shannon_of(obs.baseline, obs.canary), 6),
    }
    worst = obs.categories[int(np.argmax(np.abs(share_c - share_b)))]
    summary = f"largest share change in '{worst}'"
    if not spec.ordered:
        dof = max(int(np.count_nonzero(b + c)) - 1, 0)
        return Evidence(
            components=(),
            n_baseline=int(n_b),
            n_canary=int(n_c),
            summary=summary,
            harm="a change of the mix",
            estimate=estimate,
            descriptive={"chi2": round(chi2, 6)},
            omnibus=Omnibus(
                chi2=chi2,
                dof=dof,
                neff=effective_n_of(n_b, n_c),
                categories=len(obs.categories),
            ),
        )
    return _ordinal_evidence(spec, b, c, estimate=estimate, summary=summary, chi2=chi2)


def _ordinal_evidence(
    spec: MetricSpec,
    b: np.ndarray,
    c: np.ndarray,
    *,
    estimate: dict[str, JsonValue],
    summary: str,
    chi2: float,
) -> Evidence:
    tol = spec.tolerance or 0.0
    theta, se, neff = ordinal_effect_of(b.tolist(), c.tolist())
    components = tuple(
        Component(
            name=f"ordinal{suffix}",
            weight=share,
            theta=sign * theta - tol,
            se=se,
            neff=neff,
            margin=tol,
            orientation=sign,
        )
        for suffix, sign, share in orientations(spec.direction)
    )
    estimate["ordinal_effect"] = round(theta, 6)
    return Evidence(
        components=components,
        n_baseline=int(b.sum()),
        n_canary=int(c.sum()),
        summary=f"ordinal effect {theta:+.4f} (canary more severe if > 0); {summary}",
        harm=f"harm beyond {tol:+.3g} (ordinal effect)",
        estimate=estimate,
        descriptive={"chi2": round(chi2, 6)},
    )
