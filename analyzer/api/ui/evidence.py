"""The statistical evidence of one analysis as tables and charts, not JSON. Pure.

One :class:`EvidenceRow` per quantity a metric was judged on (a latency metric has a row per
quantile, a rate metric one row), with the columns a model-risk officer asks for: n per arm,
each arm's estimate with its interval, the difference or ratio with its interval, the
tolerance, the boundary, whether the metric is critical, its verdict and the look it was
decided at. The recorded JSON stays one click away (the entry's page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from analyzer.api.ui.charts import (
    DASH,
    ArmRow,
    Chart,
    MetricPicture,
    fmt,
    mapping,
    metric_chart,
    metric_picture,
    number,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class EvidenceRow:
    metric: str
    quantity: str
    kind: str
    n_baseline: str
    n_canary: str
    baseline: str  # estimate [interval]
    canary: str
    comparison: str  # difference or ratio [interval]
    tolerance: str
    boundary: str
    critical: bool
    verdict: str
    decided_at: str
    reason: str
    first: bool  # the first row of its metric (the template groups rows by metric)


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisEvidence:
    """What one ``analysis_recorded`` entry holds, ready for a page."""

    verdict: str
    score: str  # "n/a" for an inconclusive analysis, never 0
    reason: str
    alpha: str
    warnings: tuple[str, ...]
    rows: tuple[EvidenceRow, ...]
    charts: tuple[Chart, ...]


def _n(value: int | None) -> str:
    return DASH if value is None else f"{value:,}".replace(",", " ")


def _arm(row: ArmRow, arm: str, scale_by: float) -> str:
    point = row.baseline if arm == "baseline" else row.canary
    if point.estimate is None:
        return DASH
    text = fmt(point.estimate * scale_by)
    if point.ci is not None:
        text += f" [{fmt(point.ci[0] * scale_by)}, {fmt(point.ci[1] * scale_by)}]"
    return text


def _rows_of(picture: MetricPicture, metric: Mapping[str, Any]) -> list[EvidenceRow]:
    boundary = picture.boundary
    if picture.margin and picture.kind not in ("samples", "threshold"):
        boundary = f"{boundary} (now {picture.margin.split(' of ')[0]})"
    base = EvidenceRow(
        metric=picture.name,
        quantity=DASH,
        kind=picture.kind,
        n_baseline=_n(picture.n_baseline),
        n_canary=_n(picture.n_canary),
        baseline=DASH,
        canary=DASH,
        comparison=DASH,
        tolerance=picture.tolerance,
        boundary=boundary,
        critical=picture.critical,
        verdict=picture.verdict,
        decided_at=DASH if picture.decided_look is None else f"look {picture.decided_look}",
        reason=str(metric.get("reason", "")),
        first=True,
    )
    if picture.kind == "categorical":
        psi = number(mapping(metric.get("estimate")).get("psi"))
        return [
            replace(
                base,
                quantity="mix",
                baseline="shares in the chart",
                canary="shares in the chart",
                comparison=f"PSI {fmt(psi)}" if psi is not None else DASH,
            )
        ]
    if not picture.rows:
        return [base]
    return [
        replace(
            base,
            quantity=row.label,
            baseline=_arm(row, "baseline", picture.scale_by),
            canary=_arm(row, "canary", picture.scale_by),
            comparison=row.comparison,
            first=index == 0,
        )
        for index, row in enumerate(picture.rows)
    ]


def analysis_evidence(data: Mapping[str, Any], *, key: str = "m") -> AnalysisEvidence | None:
    """The evidence of an analysis entry's data (the engine's and a fresh Argo look's
    ``result``, or the data itself), or None when it holds no verdict."""
    result = data.get("result")
    source = mapping(result) if isinstance(result, Mapping) else data
    verdict = source.get("verdict")
    if not isinstance(verdict, str):
        return None
    metrics = [m for m in source.get("metrics") or () if isinstance(m, Mapping)]
    rows: list[EvidenceRow] = []
    charts: list[Chart] = []
    for index, metric in enumerate(metrics):
        rows += _rows_of(metric_picture(metric), metric)
        chart = metric_chart(metric, f"{key}-{index}")
        if chart is not None:
            charts.append(chart)
    score = number(source.get("score"))
    warnings = source.get("warnings")
    alpha = number(source.get("alpha"))
    return AnalysisEvidence(
        verdict=verdict,
        score=fmt(score) if verdict in ("pass", "fail") and score is not None else "n/a",
        reason=str(source.get("reason", "")),
        alpha=fmt(alpha) if alpha is not None else DASH,
        warnings=tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
        rows=tuple(rows),
        charts=tuple(charts),
    )
