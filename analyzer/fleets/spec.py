"""What a fleet rollout is asked to do, and its JSON form (stored with the rollout).

A fleet is a named set of models in one namespace (an explicit list, or a label selector over
InferenceServices resolved once at the start, so the set never changes under a running fleet),
a version to move them to, a wave plan, and the rate metrics each model is judged on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.fleet import FleetRateQuery, ModelVersion
from analyzer.domain.model import ModelRef
from analyzer.fleets.judge import FleetMetric, FleetPolicy
from analyzer.fleets.plan import WaveSpec, check_plan

_REVISION = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetMetricSpec:
    """A judged metric and where it is read."""

    metric: FleetMetric
    query: FleetRateQuery


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetSpec:
    name: str
    namespace: str
    version: ModelVersion
    plan: tuple[WaveSpec, ...]
    metrics: tuple[FleetMetricSpec, ...]
    models: tuple[str, ...] = ()
    selector: Mapping[str, str] = field(default_factory=dict)
    from_version: str = "previous"
    policy_alpha: float = 0.05
    pass_alpha: float = 0.05
    max_rollback_share: float = 0.10
    look_interval_seconds: float = 60.0
    change_request: str | None = None  # what the ServiceNow gate checks before gated waves
    # after the last wave passes, its models (and every earlier wave's) are watched this long
    # before the fleet completes (docs/fleets.md: the watch)
    watch_seconds: float = 0.0

    def __post_init__(self) -> None:
        try:
            ModelRef(namespace=self.namespace, name=self.name)  # both DNS-1123
        except InvalidInputError as exc:
            field = "namespace" if exc.field == "model.namespace" else "name"
            raise InvalidInputError(str(exc).split(": ", 1)[-1], field=field) from exc
        if not _REVISION.match(self.from_version):
            raise InvalidInputError("must be a DNS-1123 label-like name", field="from_version")
        if self.from_version == self.version.name:
            raise InvalidInputError("the new version needs another name", field="from_version")
        if bool(self.models) == bool(self.selector):
            raise InvalidInputError("give either models or selector, not both", field="models")
        for i, model in enumerate(self.models):
            try:
                ModelRef(namespace=self.namespace, name=model)
            except InvalidInputError as exc:
                raise InvalidInputError(str(exc), field=f"models[{i}]") from exc
        check_plan(self.plan)
        if not self.metrics:
            raise InvalidInputError("a fleet needs at least one metric", field="metrics")
        names = [m.metric.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise InvalidInputError("metric names must be unique", field="metrics")
        if self.look_interval_seconds <= 0:
            raise InvalidInputError("must be positive", field="look_interval_seconds")
        if not self.watch_seconds >= 0:
            raise InvalidInputError("must be zero or positive", field="watch_seconds")
        self.policy(1)  # validates the policy settings

    def policy(self, waves: int) -> FleetPolicy:
        return FleetPolicy(
            alpha=self.policy_alpha,
            waves=waves,
            pass_alpha=self.pass_alpha,
            max_rollback_share=self.max_rollback_share,
        )


def spec_to_json(spec: FleetSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "namespace": spec.namespace,
        "version": spec.version.as_json(),
        "from_version": spec.from_version,
        "models": list(spec.models),
        "selector": dict(spec.selector),
        "plan": [
            {
                "percent": w.percent,
                "dwell_seconds": w.dwell_seconds,
                "deadline_seconds": w.deadline_seconds,
                "gates": list(w.gates),
            }
            for w in spec.plan
        ],
        "metrics": [
            {
                "name": m.metric.name,
                "tolerance": m.metric.tolerance,
                "safety_max": m.metric.safety_max,
                "weight": m.metric.weight,
                "events": m.query.events,
                **({"good": m.query.good} if m.query.good is not None else {}),
                "total": m.query.total,
                "model_label": m.query.model_label,
            }
            for m in spec.metrics
        ],
        "alpha": spec.policy_alpha,
        "pass_alpha": spec.pass_alpha,
        "max_rollback_share": spec.max_rollback_share,
        "look_interval_seconds": spec.look_interval_seconds,
        "change_request": spec.change_request,
        "watch_seconds": spec.watch_seconds,
    }


def spec_from_json(data: Mapping[str, Any]) -> FleetSpec:
    return FleetSpec(
        name=data["name"],
        namespace=data["namespace"],
        version=ModelVersion(**data["version"]),
        from_version=data.get("from_version", "previous"),
        models=tuple(data.get("models") or ()),
        selector=dict(data.get("selector") or {}),
        plan=tuple(wave_from_json(w) for w in data["plan"]),
        metrics=tuple(
            FleetMetricSpec(
                metric=FleetMetric(
                    name=m["name"],
                    tolerance=m["tolerance"],
                    safety_max=m.get("safety_max"),
                    weight=m.get("weight", 1.0),
                ),
                query=FleetRateQuery(
                    name=m["name"],
                    events=m.get("events"),
                    good=m.get("good"),
                    total=m["total"],
                    model_label=m.get("model_label", "model"),
                ),
            )
            for m in data["metrics"]
        ),
        policy_alpha=data.get("alpha", 0.05),
        pass_alpha=data.get("pass_alpha", 0.05),
        max_rollback_share=data.get("max_rollback_share", 0.10),
        look_interval_seconds=data.get("look_interval_seconds", 60.0),
        change_request=data.get("change_request"),
        watch_seconds=float(data.get("watch_seconds", 0.0)),
    )


def wave_from_json(data: Mapping[str, Any]) -> WaveSpec:
    return WaveSpec(
        percent=float(data["percent"]),
        dwell_seconds=float(data["dwell_seconds"]),
        deadline_seconds=float(data["deadline_seconds"]),
        gates=tuple(data.get("gates") or ()),
    )
