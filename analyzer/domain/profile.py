"""Analysis profiles: which metrics to judge and how.

A :class:`MetricSpec` is the judge-facing description of one metric (kind, direction, tolerance,
criticality, …). Where the evidence comes from (a PromQL template, a synthetic generator) is the
metric source's business and lives beside the spec in the source's own configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.domain.verdict import Direction, MetricKind


@dataclass(frozen=True, kw_only=True, slots=True)
class ThresholdBound:
    """Absolute SLO bounds on a value (either may be absent)."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EffectSize:
    """Kayenta's effect-size settings for ``samples`` metrics."""

    measure: str = "mean_ratio"  # "mean_ratio" | "cles"
    allowed_increase: float = 1.0
    allowed_decrease: float = 1.0
    critical_increase: float = 1.0
    critical_decrease: float = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricSpec:
    """How one metric is judged. Defaults are documented in ``docs/statistics.md``.

    ``tolerance`` is the smallest change that matters: relative for ``histogram`` and ``samples``
    (0.10 = +10 %), absolute for ``proportion`` (0.001 = +0.1 percentage points). ``horizon`` is
    the planned per-arm total at the end of the analysis; with it, horizon-aware methods may be
    used, and they stay valid for any number and timing of looks up to it.
    """

    name: str
    kind: MetricKind
    direction: Direction = Direction.INCREASE
    tolerance: float | None = None
    critical: bool = False
    must_have_data: bool = True
    weight: float = 1.0
    group: str | None = None
    horizon: int | None = None
    # categorical
    categories: tuple[str, ...] = ()
    ordered: bool = False
    # threshold
    bound: ThresholdBound | None = None
    # samples (Kayenta-compatible)
    confidence: float = 0.98
    nan_strategy: str = "remove"  # "remove" | "replace"
    effect_size: EffectSize | None = None
    # sequential design (proportion, histogram, categorical); defaults in docs/statistics.md
    canary_weight: float | None = None  # expected canary share of traffic, for the SRM check
    spending: str | None = None  # alpha spending with a horizon: "hsd:<gamma>", "pocock", ...
    mixture_scale: float | None = None  # e-process mixture sd on the standardized effect
    extra: dict[str, object] = field(default_factory=dict)
    # Kayenta's ``muted``: judged and reported, never counted in the verdict or the score. And
    # ``outliers.strategy: remove`` with its factor (samples only; None keeps every point).
    # Out of repr, which keys analysis sessions: neither changes any metric's sequential state
    # (muting only changes the aggregation; samples metrics keep no state), so existing
    # sessions keep their keys.
    muted: bool = field(default=False, repr=False)
    outlier_factor: float | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisProfile:
    """A named list of metrics judged together under one α."""

    name: str
    metrics: tuple[MetricSpec, ...]
    alpha: float = 0.05
    canary_weight: float | None = None  # expected canary traffic share (SRM), unless per metric
    # Share of the planned bake elapsed at this look (0 at its start, 1 at its end), set by the
    # caller that knows the bake (an Argo session, a rollout step). With it, alpha is spent on
    # this clock and a metric with no evidence of harm passes when it reaches 1; metrics without
    # a declared horizon get one projected from their traffic (docs/statistics.md).
    bake_elapsed: float | None = None
    # Kayenta's classifier.groupWeights: each group's share of the 0-100 score (groups without
    # one share the rest; analyzer.judge.score). Only the score reads them, never the verdict,
    # so they stay out of repr, which keys analysis sessions (analyses.service.profile_digest).
    group_weights: tuple[tuple[str, float], ...] = field(default=(), repr=False)
