"""Aggregate stage: share alpha across metrics, then turn metric verdicts into one verdict.

Alpha: metric ``i`` of a statistical kind (proportion, histogram, categorical) gets
``alpha * w_i / sum(w)`` (weighted e-Bonferroni), which bounds the whole analysis' false-fail
probability by ``alpha`` under any dependence between metrics and at every look. ``threshold``
metrics use no alpha; ``samples`` metrics follow Kayenta's own per-metric confidence.

Overall verdict, in this order:
1. ``fail`` if a critical metric failed (it decides at once, whatever else is missing);
2. ``error`` if the traffic split departs from the expected weight (sample-ratio mismatch: the
   comparison itself is broken, so nothing can pass; fail closed);
3. ``error`` if a must-have metric errored (no data, source failure, counter reset);
4. ``fail`` if any other metric failed;
5. ``pass`` if every metric passed, ignoring metrics without data that are not must-have (at
   least one metric must have passed: missing data never passes);
6. ``inconclusive`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from analyzer.domain.profile import AnalysisProfile
from analyzer.domain.result import MetricResult
from analyzer.domain.verdict import Classification, MetricKind, Verdict

SEQUENTIAL_KINDS = frozenset(
    {MetricKind.PROPORTION, MetricKind.HISTOGRAM, MetricKind.CATEGORICAL, MetricKind.PAIRED}
)


def allocate_alpha(profile: AnalysisProfile) -> dict[str, float]:
    specs = [m for m in profile.metrics if m.kind in SEQUENTIAL_KINDS]
    total = sum(max(m.weight, 0.0) for m in specs)
    if total <= 0:
        return {m.name: profile.alpha / max(len(specs), 1) for m in specs}
    return {m.name: profile.alpha * max(m.weight, 0.0) / total for m in specs}


def _names(results: Sequence[MetricResult]) -> str:
    return ", ".join(r.name for r in results)


def overall_verdict(
    results: Sequence[MetricResult], must_have: Mapping[str, bool], srm: Sequence[str]
) -> tuple[Verdict, str]:
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    critical = [r for r in failed if r.critical]
    if critical:
        return Verdict.FAIL, f"critical metric failed: {_names(critical)}"
    if srm:
        return (
            Verdict.ERROR,
            f"sample-ratio mismatch on {', '.join(srm)}: the traffic split is broken",
        )
    errored = [r for r in results if r.verdict is Verdict.ERROR and must_have.get(r.name, True)]
    if errored:
        return Verdict.ERROR, f"must-have metric without usable data: {_names(errored)}"
    if failed:
        return Verdict.FAIL, f"metric failed: {_names(failed)}"
    judged = [
        r
        for r in results
        if must_have.get(r.name, True) or r.classification is not Classification.NODATA
    ]
    judged = [r for r in judged if r.verdict is not Verdict.ERROR]
    if judged and all(r.verdict is Verdict.PASS for r in judged):
        return Verdict.PASS, "every metric passed"
    waiting = [r for r in judged if r.verdict is not Verdict.PASS]
    if not judged:
        return Verdict.INCONCLUSIVE, "no metric has data yet"
    return Verdict.INCONCLUSIVE, f"not enough evidence yet on: {_names(waiting)}"


def fallback_score(results: Sequence[MetricResult]) -> float:
    """Weighted share of passing metrics (used only if the Kayenta scorer is unavailable)."""
    judged = [r for r in results if r.classification is not Classification.NODATA]
    total = sum(r.weight for r in judged)
    if total <= 0:
        return 0.0
    return round(100.0 * sum(r.weight for r in judged if r.verdict is Verdict.PASS) / total, 2)
