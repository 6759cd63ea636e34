"""The public judge JSON (``docs``: design "Offline judge" and "Backtest") to and from domain types.

Parsing is strict and every error names its field (``metrics[2].baseline``), so the CLI can exit
2 with a message the user can act on. A metric may carry ``"missing": {"reason": "...",
"source_error": false}`` instead of data (how a source reports that it has nothing); in a
backtest, a look may be ``null`` for the same purpose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import (
    CategoricalObservation,
    EventCount,
    HistogramObservation,
    MissingObservation,
    Observation,
    PairedObservation,
    ProportionObservation,
    SamplesObservation,
    ThresholdObservation,
)
from analyzer.domain.profile import AnalysisProfile, EffectSize, MetricSpec, ThresholdBound
from analyzer.domain.result import JsonValue
from analyzer.domain.verdict import Direction, MetricKind, Verdict
from analyzer.judge.outliers import DEFAULT_FACTOR
from analyzer.judge.pipeline import judge
from analyzer.judge.samples import effect_size_with_defaults
from analyzer.judge.state import JudgeState
from analyzer.stats.spending import SpendingFunction

_NUMBER = int | float


def _obj(x: object, where: str) -> Mapping[str, Any]:
    if not isinstance(x, Mapping):
        raise InvalidInputError("must be an object", field=where)
    return x


def _list(x: object, where: str) -> Sequence[Any]:
    if not isinstance(x, list):
        raise InvalidInputError("must be a list", field=where)
    return x


def _req(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise InvalidInputError("is required", field=f"{where}.{key}")
    return d[key]


def _num(x: object, where: str, *, allow_nan: bool = False) -> float:
    if x is None and allow_nan:
        return math.nan
    if isinstance(x, bool) or not isinstance(x, _NUMBER):
        raise InvalidInputError(f"must be a number, not {x!r}", field=where)
    value = float(x)
    if math.isnan(value) and not allow_nan:
        raise InvalidInputError("must not be NaN", field=where)
    return value


def _count(x: object, where: str) -> int:
    value = _num(x, where)
    if value < 0:
        raise InvalidInputError(f"must be a non-negative count, not {x!r}", field=where)
    if not math.isfinite(value) or value != int(value):
        raise InvalidInputError(f"must be a whole count, not {x!r}", field=where)
    return int(value)


def _counts(x: object, where: str) -> tuple[int, ...]:
    return tuple(_count(v, f"{where}[{i}]") for i, v in enumerate(_list(x, where)))


def _opt_num(d: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if d.get(key) is None else _num(d[key], f"{where}.{key}")


def _bool(d: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError("must be true or false", field=f"{where}.{key}")
    return value


def _bounds(x: object, where: str) -> tuple[float, ...]:
    out = []
    for i, v in enumerate(_list(x, where)):
        out.append(math.inf if v == "+Inf" else _num(v, f"{where}[{i}]"))
    return tuple(out)


def _enum(kind: type[MetricKind] | type[Direction], value: object, where: str) -> Any:
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise InvalidInputError(
            f"unknown value {value!r} (one of {allowed})", field=where
        ) from None


def _effect_size(x: object, where: str) -> EffectSize | None:
    if x is None:
        return None
    d = _obj(x, where)
    fields = ("allowed_increase", "allowed_decrease", "critical_increase", "critical_decrease")
    values = {k: _num(d[k], f"{where}.{k}") for k in fields if d.get(k) is not None}
    try:
        return effect_size_with_defaults(str(d.get("measure", "mean_ratio")), **values)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc).split(": ", 1)[-1], field=f"{where}.measure") from exc


def _threshold_bound(x: object, where: str) -> ThresholdBound:
    d = _obj(x, where)
    bound = ThresholdBound(min=_opt_num(d, "min", where), max=_opt_num(d, "max", where))
    if bound.min is None and bound.max is None:
        raise InvalidInputError("needs min or max", field=where)
    if bound.min is not None and bound.max is not None and bound.min > bound.max:
        raise InvalidInputError("min exceeds max", field=where)
    return bound


def _horizon(d: Mapping[str, Any], where: str) -> int | None:
    if d.get("horizon") is None:
        return None
    value = _count(d["horizon"], f"{where}.horizon")
    if value <= 0:
        raise InvalidInputError("must be positive", field=f"{where}.horizon")
    return value


def _probability(d: Mapping[str, Any], key: str, where: str) -> float | None:
    value = _opt_num(d, key, where)
    if value is not None and not 0.0 < value < 1.0:
        raise InvalidInputError("must be strictly between 0 and 1", field=f"{where}.{key}")
    return value


def parse_spec(d: Mapping[str, Any], where: str) -> MetricSpec:
    name = _req(d, "name", where)
    if not isinstance(name, str) or not name:
        raise InvalidInputError("must be a non-empty string", field=f"{where}.name")
    kind: MetricKind = _enum(MetricKind, _req(d, "kind", where), f"{where}.kind")
    tolerance = _opt_num(d, "tolerance", where)
    if tolerance is not None and tolerance < 0:
        raise InvalidInputError("must be non-negative", field=f"{where}.tolerance")
    weight = _opt_num(d, "weight", where)
    if weight is not None and weight <= 0:
        raise InvalidInputError("must be positive", field=f"{where}.weight")
    categories = d.get("categories", [])
    if kind in (MetricKind.CATEGORICAL, MetricKind.PAIRED):
        categories = _req(d, "categories", where)
    cats = tuple(str(c) for c in _list(categories, f"{where}.categories"))
    extra: dict[str, object] = {}
    if kind is MetricKind.PAIRED:
        extra = _paired_settings(d, where, cats, tolerance)
    if kind is MetricKind.THRESHOLD:
        _req(d, "bound", where)
    spending, scale = d.get("spending"), _opt_num(d, "mixture_scale", where)
    if spending is not None:
        try:
            SpendingFunction.parse(str(spending))
        except ValueError:
            allowed = '"hsd:<gamma>", "pocock" or "obrien-fleming"'
            raise InvalidInputError(f"must be {allowed}", field=f"{where}.spending") from None
    if scale is not None and scale <= 0:
        raise InvalidInputError("must be positive", field=f"{where}.mixture_scale")
    return MetricSpec(
        name=name,
        kind=kind,
        direction=_enum(Direction, d.get("direction", "increase"), f"{where}.direction"),
        tolerance=tolerance,
        critical=_bool(d, "critical", where, False),
        must_have_data=_bool(d, "must_have_data", where, True),
        weight=1.0 if weight is None else weight,
        group=None if d.get("group") is None else str(d["group"]),
        horizon=_horizon(d, where),
        categories=cats,
        ordered=_bool(d, "ordered", where, False),
        bound=_threshold_bound(d["bound"], f"{where}.bound") if d.get("bound") else None,
        confidence=_probability(d, "confidence", where) or 0.98,
        nan_strategy=str(d.get("nan_strategy", "remove")),
        effect_size=_effect_size(d.get("effect_size"), f"{where}.effect_size"),
        canary_weight=_probability(d, "canary_weight", where),
        spending=None if spending is None else str(spending),
        mixture_scale=scale,
        muted=_bool(d, "muted", where, False),
        outlier_factor=_outliers(d.get("outliers"), kind, f"{where}.outliers"),
        extra=extra,
    )


def _outliers(x: object, kind: MetricKind, where: str) -> float | None:
    """Kayenta's ``outliers`` (``{"strategy": "keep"|"remove", "factor": 3.0}``): the IQR factor
    when removal is on, else None."""
    if x is None:
        return None
    d = _obj(x, where)
    strategy = d.get("strategy", "keep")
    if strategy not in ("keep", "remove"):
        raise InvalidInputError('must be "keep" or "remove"', field=f"{where}.strategy")
    if strategy == "keep":
        return None
    if kind is not MetricKind.SAMPLES:
        raise InvalidInputError("outlier removal applies to samples metrics only", field=where)
    factor = _num(d.get("factor", DEFAULT_FACTOR), f"{where}.factor")
    if not (factor > 0 and math.isfinite(factor)):
        raise InvalidInputError("must be a positive number", field=f"{where}.factor")
    return factor


def _paired_settings(
    d: Mapping[str, Any], where: str, categories: tuple[str, ...], tolerance: float | None
) -> dict[str, object]:
    """A paired metric's margin (required: how much disagreement is accepted) and its optional
    adverse move ``{"from": ..., "to": ..., "tolerance": ...}`` (docs/strategies.md)."""
    if tolerance is None or not 0.0 < tolerance < 1.0:
        raise InvalidInputError(
            "a paired metric needs the share of decisions that may differ, strictly between 0 "
            "and 1 (e.g. 0.01)",
            field=f"{where}.tolerance",
        )
    if d.get("adverse") is None:
        return {}
    adverse = _obj(d["adverse"], f"{where}.adverse")
    moved = []
    for key in ("from", "to"):
        value = _req(adverse, key, f"{where}.adverse")
        if value not in categories:
            raise InvalidInputError(
                f"{value!r} is not one of the categories {list(categories)}",
                field=f"{where}.adverse.{key}",
            )
        moved.append(str(value))
    if moved[0] == moved[1]:
        raise InvalidInputError("from and to must differ", field=f"{where}.adverse")
    settings: dict[str, object] = {"adverse": tuple(moved)}
    adverse_tol = _opt_num(adverse, "tolerance", f"{where}.adverse")
    if adverse_tol is not None:
        if not 0.0 < adverse_tol < 1.0:
            raise InvalidInputError(
                "must be strictly between 0 and 1", field=f"{where}.adverse.tolerance"
            )
        settings["adverse_tolerance"] = adverse_tol
    return settings


def _event_count(x: object, where: str) -> EventCount:
    d = _obj(x, where)
    events = _count(_req(d, "events", where), f"{where}.events")
    total = _count(_req(d, "total", where), f"{where}.total")
    if events > total:
        raise InvalidInputError(f"events ({events}) exceed total ({total})", field=where)
    return EventCount(events=events, total=total)


def _samples(x: object, where: str) -> tuple[float, ...]:
    values = _list(x, where)
    return tuple(_num(v, f"{where}[{i}]", allow_nan=True) for i, v in enumerate(values))


def _rewrap(exc: InvalidInputError, where: str) -> InvalidInputError:
    field = f"{where}.{exc.field}" if exc.field else where
    message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
    return InvalidInputError(message, field=field)


def parse_observation(spec: MetricSpec, d: Mapping[str, Any], where: str) -> Observation:
    """Parse one (cumulative) observation of ``spec`` from ``d`` (a metric or a look)."""
    if d.get("missing") is not None:
        m = _obj(d["missing"], f"{where}.missing")
        return MissingObservation(
            reason=str(m.get("reason", "no data")),
            source_error=_bool(m, "source_error", f"{where}.missing", False),
        )
    if spec.kind is MetricKind.THRESHOLD:
        canary = _num(_req(d, "canary", where), f"{where}.canary", allow_nan=True)
        return ThresholdObservation(canary=canary, baseline=_opt_num(d, "baseline", where))
    if spec.kind is MetricKind.PAIRED:
        rows = _list(_req(d, "pairs", where), f"{where}.pairs")
        pairs = tuple(_counts(row, f"{where}.pairs[{i}]") for i, row in enumerate(rows))
        try:
            return PairedObservation(categories=spec.categories, pairs=pairs)
        except InvalidInputError as exc:
            raise _rewrap(exc, where) from None
    baseline, canary = _req(d, "baseline", where), _req(d, "canary", where)
    if spec.kind is MetricKind.PROPORTION:
        return ProportionObservation(
            baseline=_event_count(baseline, f"{where}.baseline"),
            canary=_event_count(canary, f"{where}.canary"),
        )
    if spec.kind is MetricKind.SAMPLES:
        return SamplesObservation(
            baseline=_samples(baseline, f"{where}.baseline"),
            canary=_samples(canary, f"{where}.canary"),
        )
    b, c = _counts(baseline, f"{where}.baseline"), _counts(canary, f"{where}.canary")
    try:
        if spec.kind is MetricKind.HISTOGRAM:
            bounds = _bounds(_req(d, "bounds", where), f"{where}.bounds")
            return HistogramObservation(bounds=bounds, baseline=b, canary=c)
        return CategoricalObservation(categories=spec.categories, baseline=b, canary=c)
    except InvalidInputError as exc:
        raise _rewrap(exc, where) from None


def parse_profile(doc: object) -> tuple[AnalysisProfile, list[Mapping[str, Any]]]:
    """The profile of a judge input, and each metric's raw object (for its data)."""
    d = _obj(doc, "$")
    alpha = _num(d.get("alpha", 0.05), "alpha")
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError("must be strictly between 0 and 1", field="alpha")
    raw = _list(_req(d, "metrics", "$"), "metrics")
    if not raw:
        raise InvalidInputError("at least one metric is required", field="metrics")
    metrics = [_obj(m, f"metrics[{i}]") for i, m in enumerate(raw)]
    specs = tuple(parse_spec(m, f"metrics[{i}]") for i, m in enumerate(metrics))
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise InvalidInputError(
                f"duplicate metric name {spec.name!r}", field=f"metrics[{i}].name"
            )
        seen.add(spec.name)
    profile = AnalysisProfile(
        name=str(d.get("name", "offline")),
        metrics=specs,
        alpha=alpha,
        canary_weight=_probability(d, "canary_weight", "$"),
    )
    return profile, metrics


def parse_document(doc: object) -> tuple[AnalysisProfile, dict[str, Observation]]:
    """Parse a judge input into the profile and one observation per metric."""
    profile, metrics = parse_profile(doc)
    observations = {
        spec.name: parse_observation(spec, raw, f"metrics[{i}]")
        for i, (spec, raw) in enumerate(zip(profile.metrics, metrics, strict=True))
    }
    return profile, observations


def judge_document(doc: object) -> dict[str, JsonValue]:
    """``canary-analyzer judge``: one judge input in, the public verdict JSON out."""
    profile, observations = parse_document(doc)
    result, _ = judge(profile, observations)
    return result.to_json()


def _looks(
    profile: AnalysisProfile, metrics: list[Mapping[str, Any]]
) -> list[dict[str, Observation]]:
    per_metric: list[list[Observation]] = []
    for i, (spec, raw) in enumerate(zip(profile.metrics, metrics, strict=True)):
        where = f"metrics[{i}].looks"
        looks = _list(_req(raw, "looks", f"metrics[{i}]"), where)
        parsed: list[Observation] = []
        for k, look in enumerate(looks):
            if look is None:
                parsed.append(MissingObservation(reason=f"no data at look {k}"))
                continue
            merged = {"bounds": raw.get("bounds"), **_obj(look, f"{where}[{k}]")}
            parsed.append(parse_observation(spec, merged, f"{where}[{k}]"))
        per_metric.append(parsed)
    lengths = {len(p) for p in per_metric}
    if len(lengths) != 1 or 0 in lengths:
        raise InvalidInputError(
            "every metric needs the same, non-zero number of looks", field="metrics"
        )
    names = [spec.name for spec in profile.metrics]
    return [dict(zip(names, obs, strict=True)) for obs in zip(*per_metric, strict=True)]


def backtest_replay(doc: object) -> dict[str, JsonValue]:
    """``canary-analyzer backtest``: replay cumulative looks, carrying the sequential state."""
    profile, metrics = parse_profile(doc)
    state: JudgeState | None = None
    looks: list[dict[str, JsonValue]] = []
    decided_at: int | None = None
    verdict = Verdict.INCONCLUSIVE
    for k, observations in enumerate(_looks(profile, metrics)):
        result, state = judge(profile, observations, state)
        verdict = result.verdict
        looks.append({"verdict": verdict.value, "score": result.score})
        if decided_at is None and verdict in (Verdict.PASS, Verdict.FAIL):
            decided_at = k
    return {"verdict": verdict.value, "decided_at": decided_at, "looks": looks}
