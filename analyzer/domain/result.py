"""Judgement results: per metric and per analysis, with the numbers behind them.

These are the contract between the judge and everything that reports a verdict (CLI, API,
ledger). ``to_json`` produces exactly the public JSON shape of ``shared/design.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analyzer.domain.verdict import Classification, MetricKind, Verdict

JsonValue = Any  # a value json.dumps accepts (numbers are finite or None)


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricResult:
    """The verdict on one metric, explained.

    ``estimate`` holds effect estimates and intervals (e.g. ``{"diff": 0.0008, "ci": [lo, hi]}``);
    ``statistic`` holds the test's numbers (e-value, always-valid p-value, threshold, method).
    ``reason`` is one sentence a human can read in an incident review.
    """

    name: str
    kind: MetricKind
    verdict: Verdict
    classification: Classification
    reason: str
    n_baseline: int = 0
    n_canary: int = 0
    estimate: dict[str, JsonValue] = field(default_factory=dict)
    statistic: dict[str, JsonValue] = field(default_factory=dict)
    critical: bool = False
    weight: float = 1.0
    group: str | None = None
    muted: bool = False  # reported only: not counted in the overall verdict or the score

    def to_json(self) -> dict[str, JsonValue]:
        # "muted" appears only on muted metrics, so every other result keeps its exact shape
        # (ledger payloads, Argo answers).
        muted: dict[str, JsonValue] = {"muted": True} if self.muted else {}
        return {
            "name": self.name,
            "kind": self.kind.value,
            "verdict": self.verdict.value,
            "classification": self.classification.value,
            "reason": self.reason,
            "estimate": self.estimate,
            "statistic": self.statistic,
            "n": {"baseline": self.n_baseline, "canary": self.n_canary},
            "critical": self.critical,
            "weight": self.weight,
            "group": self.group,
        } | muted


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisResult:
    """The overall verdict of one analysis (one look at all metrics of a profile)."""

    verdict: Verdict
    score: float
    reason: str
    metrics: tuple[MetricResult, ...]
    alpha: float
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "verdict": self.verdict.value,
            "score": self.score,
            "reason": self.reason,
            "alpha": self.alpha,
            "warnings": list(self.warnings),
            "metrics": [m.to_json() for m in self.metrics],
        }
