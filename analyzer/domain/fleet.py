"""Values of fleet rollouts shared by the core and the integrations (stdlib only).

A *fleet* is many small models (per-merchant anomaly models on ModelMesh) upgraded one wave of
models at a time. Each model moves whole: there is no traffic split inside a model, so the
comparison is a model's new version against its own past and against the models not upgraded
yet (see ``docs/fleets.md``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from analyzer.domain.errors import InvalidInputError

_VERSION_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
_RUNTIME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s\"'\\]{1,1000}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelVersion:
    """The version a fleet moves to: a name for the ledger (each model's *revision*), its
    artifact and its runtime. Per-merchant models each have their own artifact, so
    ``storage_uri`` may hold ``{model}``, replaced by each model's name."""

    name: str
    storage_uri: str
    runtime: str | None = None

    def __post_init__(self) -> None:
        if not _VERSION_NAME.match(self.name):
            raise InvalidInputError(
                f"version name {self.name!r} must be a DNS-1123 label-like name", field="name"
            )
        if not _URI.match(self.storage_uri):
            raise InvalidInputError(
                f"storage_uri {self.storage_uri!r} is not a URI (scheme://...)",
                field="storage_uri",
            )
        if self.runtime is not None and not _RUNTIME.match(self.runtime):
            raise InvalidInputError(
                f"runtime {self.runtime!r} is not a DNS-1123 label", field="runtime"
            )

    def as_json(self) -> dict[str, str | None]:
        return {"name": self.name, "storage_uri": self.storage_uri, "runtime": self.runtime}

    def uri_for(self, model: str) -> str:
        return self.storage_uri.replace("{model}", model)


@dataclass(frozen=True, kw_only=True, slots=True)
class ServedModel:
    """What a model's InferenceService serves, as the serving system reports it: its artifact,
    its runtime, and whether that artifact is loaded and ready to answer."""

    storage_uri: str
    runtime: str | None
    ready: bool


class ModelPhase(StrEnum):
    """Where one model of a fleet rollout stands."""

    WAITING = "waiting"  # not in a started wave yet: serves the old version (a control)
    UPGRADED = "upgraded"  # moved to the new version, being judged
    JUDGED = "judged"  # its wave passed: it stays on the new version
    ROLLED_BACK = "rolled_back"  # found harmful (or its wave failed): back on the old version


@dataclass(frozen=True, kw_only=True, slots=True)
class RateWindows:
    """One model's counts of one rate metric in the window after its upgrade and the mirror
    window of the same length just before it."""

    after_events: float
    after_total: float
    before_events: float
    before_total: float

    def __post_init__(self) -> None:
        for name in ("after_events", "after_total", "before_events", "before_total"):
            value = getattr(self, name)
            if not value >= 0:
                raise InvalidInputError(f"{name} must be a count >= 0, got {value}", field=name)
        if self.after_events > self.after_total or self.before_events > self.before_total:
            raise InvalidInputError("events exceed total", field="events")


FleetCounts = Mapping[str, Mapping[str, RateWindows]]
"""Metric name -> model name -> its two windows. A model missing from a metric had no series."""


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class FleetRateQuery:
    """Where one rate metric of a fleet is read: ``events`` and ``total`` are counter selectors
    (templates that may use ``{namespace}``), ``model_label`` the label naming the model on
    those series. The source adds the model matcher and sums ``by (model_label)``: one query
    per metric for the whole wave and its controls.

    A latency is judged as a rate — the share of requests slower than a bound — by naming the
    *good* requests instead of the bad ones: ``good`` is the latency histogram's bucket at the
    bound (``..._bucket{le="500.0"}``) and ``total`` its ``_count``; the events are then
    ``total - good``, per model, from the same histogram."""

    name: str
    total: str
    events: str | None = None
    good: str | None = None
    model_label: str = "model"

    def __post_init__(self) -> None:
        if not _LABEL_NAME.match(self.model_label):
            raise InvalidInputError(
                f"model_label {self.model_label!r} is not a Prometheus label name",
                field="model_label",
            )
        if (self.events is None) == (self.good is None):
            raise InvalidInputError(
                "give either events (the bad requests) or good (the requests within a latency "
                "bound), not both",
                field="events",
            )
