"""Analysis profiles as YAML: parsed at the edge with Pydantic, returned as domain values.

A profile names the metrics judged together and, per metric, its judging settings (kind,
direction, tolerance, criticality, ...) and its ``query`` (templates for the metric source).
A metric may start from a shipped preset with ``use: PRESET/METRIC`` and override any key::

    name: fraud-scorer
    alpha: 0.05
    metrics:
      - use: knative/latency
        tolerance: 0.05
      - use: business/false_positives
      - name: p99
        kind: threshold
        bound: {max: 0.008}
        query: {expr: 'histogram_quantile(0.99, ...{revision_name="{revision}"}...)'}

Unknown keys are refused (``extra="forbid"``) and every error names the offending key, e.g.
``metrics[1].query.selektor: Extra inputs are not permitted``. Templates are checked here, at
load time, so a typo'd placeholder never reaches Prometheus. See ``docs/metrics.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.profile import AnalysisProfile, EffectSize, MetricSpec, ThresholdBound
from analyzer.domain.verdict import Direction, MetricKind
from analyzer.judge.samples import effect_size_with_defaults
from analyzer.metrics.base import CounterMode, MetricQuery, QueryLanguage
from analyzer.metrics.dialects import TEMPLATE_KEYS, check_query_template


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueryModel(_Strict):
    selector: str | None = None
    events: str | None = None
    total: str | None = None
    expr: str | None = None
    le_label: str = "le"
    category_label: str | None = None
    incumbent_label: str | None = None  # paired: the incumbent's decision label
    mode: Literal["exact", "increase"] = "exact"
    step_seconds: float = Field(default=60.0, gt=0)
    unit_scale: float = Field(default=1.0, gt=0)
    # Unset: the profile's query_language. Presets for Datadog set it on every query.
    language: Literal["promql", "datadog"] | None = None


class BoundModel(_Strict):
    min: float | None = None
    max: float | None = None


class EffectSizeModel(_Strict):
    """Unset thresholds take the measure's Kayenta defaults (1.0 for mean_ratio, 0.5 for cles)."""

    measure: Literal["mean_ratio", "cles"] = "mean_ratio"
    allowed_increase: float | None = None
    allowed_decrease: float | None = None
    critical_increase: float | None = None
    critical_decrease: float | None = None


class OutliersModel(_Strict):
    """Kayenta's ``outliers``: ``remove`` drops points outside IQR fences (samples only)."""

    strategy: Literal["keep", "remove"] = "keep"
    factor: float = Field(default=3.0, gt=0)


class AdverseModel(_Strict):
    """``paired``: the move that counts as adverse (incumbent ``from`` → challenger ``to``)."""

    from_: str = Field(alias="from")
    to: str
    tolerance: float | None = Field(default=None, gt=0, lt=1)


class MetricModel(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,100}$")
    kind: Literal["histogram", "proportion", "categorical", "samples", "threshold", "paired"]
    direction: Literal["increase", "decrease", "either"] = "increase"
    tolerance: float | None = Field(default=None, ge=0)
    critical: bool = False
    must_have_data: bool = True
    weight: float = Field(default=1.0, ge=0)
    group: str | None = None
    horizon: int | None = Field(default=None, gt=0)
    categories: list[str] = Field(default_factory=list)
    ordered: bool = False
    bound: BoundModel | None = None
    confidence: float = Field(default=0.98, gt=0, lt=1)
    nan_strategy: Literal["remove", "replace"] = "remove"
    effect_size: EffectSizeModel | None = None
    canary_weight: float | None = Field(default=None, gt=0, lt=1)
    spending: str | None = None
    mixture_scale: float | None = Field(default=None, gt=0)
    muted: bool = False
    outliers: OutliersModel | None = None
    adverse: AdverseModel | None = None
    query: QueryModel


class ProfileModel(_Strict):
    name: str = Field(min_length=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    canary_weight: float | None = Field(default=None, gt=0, lt=1)
    # Which source reads the queries: promql (Prometheus) or datadog. One language per profile.
    # Unset: the language the queries name (a Datadog preset's), else promql.
    query_language: Literal["promql", "datadog"] | None = None
    # Kayenta's classifier.groupWeights: a group's share of the 0-100 score (not the verdict).
    group_weights: dict[str, float] = Field(default_factory=dict)
    metrics: list[MetricModel] = Field(min_length=1)

    def language(self) -> str:
        if self.query_language is not None:
            return self.query_language
        named = [m.query.language for m in self.metrics if m.query.language is not None]
        return named[0] if named else "promql"


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadedProfile:
    """A profile for the judge plus each metric's query for the source, by metric name."""

    profile: AnalysisProfile
    queries: Mapping[str, MetricQuery]


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _invalid(exc: ValidationError, source: str) -> InvalidInputError:
    errors = exc.errors()
    lines = [f"{_location(e['loc'])}: {e['msg']}" for e in errors]
    error = InvalidInputError(f"{source}: " + "; ".join(lines))
    error.field = _location(errors[0]["loc"]) if errors else None  # for the API's 422 body
    return error


# --- presets -------------------------------------------------------------------------------


def preset_names() -> list[str]:
    """The shipped presets (``knative``, ``istio``, ``kserve``, ``business``)."""
    folder = resources.files("analyzer.metrics") / "presets"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_MARKER = re.compile(r"<([a-z_]+)>")


def preset_label_defaults(name: str) -> dict[str, str]:
    """The label names a preset's queries use, by role (``revision: revision_name``, ...)."""
    labels = _preset_text(name).get("labels", {})
    assert isinstance(labels, dict)
    return {str(k): str(v) for k, v in labels.items()}


def _preset_text(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise InvalidInputError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    text = (resources.files("analyzer.metrics") / "presets" / f"{name}.yaml").read_text()
    document = yaml.safe_load(text)
    assert isinstance(document, dict)  # shipped files; the test suite loads every one
    return document


def _label_names(
    name: str, overrides: Mapping[str, Any] | None, field: str | None, *, strict: bool = True
) -> dict[str, str]:
    labels = preset_label_defaults(name)
    for role, value in (overrides or {}).items():
        if role not in labels:
            if not strict:
                continue
            known = ", ".join(sorted(labels)) or "none"
            raise InvalidInputError(
                f"preset {name!r} has no label role {role!r} (roles: {known})", field=field
            )
        if not isinstance(value, str) or not _LABEL_NAME.match(value):
            raise InvalidInputError(f"{value!r} is not a Prometheus label name", field=field)
        labels[str(role)] = value
    return labels


def _with_labels(value: Any, labels: Mapping[str, str]) -> Any:
    """``<role>`` markers in a preset's query strings replaced by the label names."""
    if isinstance(value, str):
        return _LABEL_MARKER.sub(lambda m: labels.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _with_labels(v, labels) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_labels(v, labels) for v in value]
    return value


def _preset_document(
    name: str,
    labels: Mapping[str, Any] | None = None,
    *,
    field: str | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """A preset with its label roles resolved (defaults from its ``labels``, then ``labels``)."""
    document = _preset_text(name)
    names = _label_names(name, labels, field, strict=strict)
    document.pop("labels", None)
    document["metrics"] = [
        {**m, "query": _with_labels(m.get("query", {}), names)} for m in document["metrics"]
    ]
    return document


def _resolve_use(metric: Any, index: int, profile_labels: Mapping[str, Any] | None = None) -> Any:
    """Expand ``use: PRESET/METRIC`` into the preset's metric with this entry's overrides.

    ``labels`` (on the entry, or on the profile for every ``use:``) renames the preset's label
    roles, e.g. ``labels: {revision: kn_revision_name}``.
    """
    if not isinstance(metric, dict) or "use" not in metric:
        return metric
    field = f"metrics[{index}].use"
    preset, _, metric_name = str(metric["use"]).partition("/")
    own = metric.get("labels")
    if own is not None and not isinstance(own, dict):
        raise InvalidInputError("labels is a mapping role: label", field=f"metrics[{index}].labels")
    shared = _preset_document(preset, profile_labels, field="labels", strict=False)
    document = (
        _preset_document(
            preset, {**(profile_labels or {}), **own}, field=f"metrics[{index}].labels"
        )
        if own
        else shared
    )
    candidates = [m for m in document["metrics"] if m["name"] == metric_name]
    if not candidates:
        raise InvalidInputError(f"preset {preset!r} has no metric {metric_name!r}", field=field)
    overrides = {k: v for k, v in metric.items() if k not in ("use", "labels")}
    merged = {**candidates[0], **overrides}
    if isinstance(overrides.get("query"), dict):  # query keys merge one by one
        merged["query"] = {**candidates[0].get("query", {}), **overrides["query"]}
    if isinstance(merged.get("query"), dict):
        # A preset metric keeps its preset's language, so a profile mixing sources is refused.
        merged["query"].setdefault("language", document.get("query_language") or "promql")
    return merged


# --- semantic checks beyond the schema -----------------------------------------------------

_REQUIRED_QUERY = {
    "histogram": ("selector",),
    "proportion": ("events", "total"),
    "categorical": ("selector", "category_label"),
    "samples": ("expr",),
    "threshold": ("expr",),
    "paired": ("selector", "category_label", "incumbent_label"),
}


def _check_metric(metric: MetricModel, index: int, default_language: str) -> None:
    where = f"metrics[{index}]"
    for key in _REQUIRED_QUERY[metric.kind]:
        if getattr(metric.query, key) is None:
            raise InvalidInputError(
                f"a {metric.kind} metric needs query.{key}", field=f"{where}.query.{key}"
            )
    language = QueryLanguage(metric.query.language or default_language)
    for key in TEMPLATE_KEYS:
        template = getattr(metric.query, key)
        if template is None:
            continue
        check_query_template(template, language, key=key, field=f"{where}.query.{key}")
    removes = metric.outliers is not None and metric.outliers.strategy == "remove"
    if removes and metric.kind != "samples":
        raise InvalidInputError(
            "outlier removal applies to samples metrics only", field=f"{where}.outliers"
        )
    if metric.kind in ("categorical", "paired") and len(metric.categories) < 2:
        raise InvalidInputError("needs at least two categories", field=f"{where}.categories")
    if metric.kind == "paired":
        _check_paired(metric, where)
    elif metric.adverse is not None:
        raise InvalidInputError(
            "only a paired metric has an adverse move", field=f"{where}.adverse"
        )
    if metric.kind == "threshold" and (metric.bound is None or metric.bound == BoundModel()):
        raise InvalidInputError(
            "a threshold metric needs bound.min or bound.max", field=f"{where}.bound"
        )


def _check_paired(metric: MetricModel, where: str) -> None:
    if metric.tolerance is None or not 0 < metric.tolerance < 1:
        raise InvalidInputError(
            "a paired metric needs the share of decisions that may differ, strictly between 0 "
            "and 1 (e.g. 0.01)",
            field=f"{where}.tolerance",
        )
    adverse = metric.adverse
    if adverse is None:
        return
    for key, value in (("from", adverse.from_), ("to", adverse.to)):
        if value not in metric.categories:
            raise InvalidInputError(
                f"{value!r} is not one of the categories {metric.categories}",
                field=f"{where}.adverse.{key}",
            )
    if adverse.from_ == adverse.to:
        raise InvalidInputError("from and to must differ", field=f"{where}.adverse")


def _check_group_weights(model: ProfileModel) -> None:
    for group, weight in model.group_weights.items():
        if not weight >= 0:
            raise InvalidInputError("must be >= 0", field=f"group_weights.{group}")
    total = sum(model.group_weights.values())
    if total > 100 + 1e-9:
        # Kayenta does not check this; its score would then leave 0-100.
        raise InvalidInputError(f"sum to {total:g}, more than 100", field="group_weights")


def _check_profile(model: ProfileModel) -> None:
    _check_group_weights(model)
    language = model.language()
    for index, metric in enumerate(model.metrics):
        if metric.query.language not in (None, language):
            raise InvalidInputError(
                f"a {metric.query.language} query in a {language} profile: one profile reads "
                "one source (set query_language, or use presets of that source)",
                field=f"metrics[{index}].query.language",
            )
    seen: set[str] = set()
    for index, metric in enumerate(model.metrics):
        if metric.name in seen:
            raise InvalidInputError(
                f"duplicate metric name {metric.name!r}", field=f"metrics[{index}].name"
            )
        seen.add(metric.name)
        _check_metric(metric, index, language)


# --- conversion to domain values -----------------------------------------------------------


def _spec(metric: MetricModel) -> MetricSpec:
    return MetricSpec(
        name=metric.name,
        kind=MetricKind(metric.kind),
        direction=Direction(metric.direction),
        tolerance=metric.tolerance,
        critical=metric.critical,
        must_have_data=metric.must_have_data,
        weight=metric.weight,
        group=metric.group,
        horizon=metric.horizon,
        categories=tuple(metric.categories),
        ordered=metric.ordered,
        bound=ThresholdBound(min=metric.bound.min, max=metric.bound.max) if metric.bound else None,
        confidence=metric.confidence,
        nan_strategy=metric.nan_strategy,
        effect_size=_effect_size(metric.effect_size) if metric.effect_size else None,
        canary_weight=metric.canary_weight,
        spending=metric.spending,
        mixture_scale=metric.mixture_scale,
        muted=metric.muted,
        outlier_factor=_outlier_factor(metric.outliers),
        extra=_paired_extra(metric),
    )


def _outlier_factor(model: OutliersModel | None) -> float | None:
    return model.factor if model is not None and model.strategy == "remove" else None


def _paired_extra(metric: MetricModel) -> dict[str, object]:
    """A paired metric's adverse move, in the spec's ``extra`` (judge/paired.py reads it)."""
    if metric.adverse is None:
        return {}
    extra: dict[str, object] = {"adverse": (metric.adverse.from_, metric.adverse.to)}
    if metric.adverse.tolerance is not None:
        extra["adverse_tolerance"] = metric.adverse.tolerance
    return extra


def _effect_size(model: EffectSizeModel) -> EffectSize:
    given = model.model_dump(exclude={"measure"}, exclude_none=True)
    return effect_size_with_defaults(model.measure, **given)


def _query(query: QueryModel, default_language: str) -> MetricQuery:
    fields = query.model_dump()
    fields["mode"] = CounterMode(query.mode)
    fields["language"] = QueryLanguage(query.language or default_language)
    return MetricQuery(**fields)


def parse_profile(text: str, *, source: str = "<profile>") -> LoadedProfile:
    """Parse profile YAML ``text``; raise ``InvalidInputError`` naming the bad key."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidInputError(f"{source}: a profile is a mapping with name and metrics")
    labels = document.pop("labels", None)
    if labels is not None and not isinstance(labels, dict):
        raise InvalidInputError(f"{source}: labels is a mapping role: label", field="labels")
    if isinstance(document.get("metrics"), list):
        metrics = document["metrics"]
        document["metrics"] = [_resolve_use(m, i, labels) for i, m in enumerate(metrics)]
    try:
        model = ProfileModel.model_validate(document)
    except ValidationError as exc:
        raise _invalid(exc, source) from exc
    _check_profile(model)
    profile = AnalysisProfile(
        name=model.name,
        alpha=model.alpha,
        canary_weight=model.canary_weight,
        metrics=tuple(_spec(m) for m in model.metrics),
        group_weights=tuple(model.group_weights.items()),
    )
    return LoadedProfile(
        profile=profile,
        queries={m.name: _query(m.query, model.language()) for m in model.metrics},
    )


def load_profile(path: str | Path) -> LoadedProfile:
    """Load a profile file; a bare preset name (``knative``) loads the shipped preset."""
    candidate = Path(path)
    if not candidate.exists() and str(path) in preset_names():
        return load_preset(str(path))
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read profile {path}: {exc.strerror}") from exc
    return parse_profile(text, source=str(path))


def load_preset(name: str) -> LoadedProfile:
    """A shipped preset with its default label names."""
    document = _preset_document(name)
    return parse_profile(yaml.safe_dump(document), source=f"preset {name}")
