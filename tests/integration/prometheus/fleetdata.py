"""A seeded fleet of per-merchant models as ModelMesh would expose them, for a real Prometheus.

Each model gets ``modelmesh_api_request_milliseconds_count{namespace, modelId, vModelId, code}``
counters (``code="OK"`` and ``code="INTERNAL"``): ModelMesh's per-model metrics
(``MM_METRICS=prometheus:...;per_model_metrics=true``), where ``code`` is the gRPC status,
``vModelId`` the InferenceService's name and ``modelId`` ModelMesh's internal id of the
predictor spec (``<name>__isvc-<hash of the spec>``): a new series starts at each upgrade, as
in ModelMesh Serving, so a fleet must be read ``by (vModelId)``. Traffic and base error rates
differ per merchant (log-normal traffic, rates between 0.3 % and 3 %); a model's rate changes at
its *switch* tick (its wave's upgrade) to its new version's rate. The exact per-tick counts are
kept, so tests compare Prometheus' answers with the truth.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

NAMESPACE = "merchants"
COUNTER = "modelmesh_api_request_milliseconds_count"


@dataclass(frozen=True, kw_only=True)
class FleetScenario:
    seed: int
    origin: datetime
    ticks: int
    tick_seconds: float
    models: Sequence[str]
    mean_requests_per_tick: float = 2.0
    switches: Mapping[str, int] = field(default_factory=dict)  # model -> tick of its upgrade
    new_rates: Mapping[str, float] = field(default_factory=dict)  # model -> rate after it
    drift: float = 0.0  # added to every model's rate in the second half (a time effect)

    def at(self, tick: int) -> datetime:
        return self.origin + timedelta(seconds=tick * self.tick_seconds)


@dataclass(frozen=True)
class FleetTruth:
    requests: np.ndarray  # (models, ticks) per-tick requests
    errors: np.ndarray  # (models, ticks) per-tick errors

    def window(self, index: int, start_tick: int, end_tick: int) -> tuple[int, int]:
        """(errors, requests) of model ``index`` over ticks ``(start_tick, end_tick]``."""
        sl = slice(start_tick, end_tick)
        return int(self.errors[index, sl].sum()), int(self.requests[index, sl].sum())


def _per_model(scenario: FleetScenario, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = len(scenario.models)
    traffic = scenario.mean_requests_per_tick * rng.lognormal(0.0, 0.8, size=m)
    base = rng.uniform(0.003, 0.03, size=m)
    return traffic, base


def traffic_of(scenario: FleetScenario) -> dict[str, float]:
    """Each model's mean requests per tick (to pick busy models for a test)."""
    traffic, _ = _per_model(scenario, np.random.default_rng(scenario.seed))
    return dict(zip(scenario.models, traffic.tolist(), strict=True))


def generate(scenario: FleetScenario) -> FleetTruth:
    rng = np.random.default_rng(scenario.seed)
    m = len(scenario.models)
    traffic, base = _per_model(scenario, rng)
    requests = rng.poisson(traffic[:, None], size=(m, scenario.ticks))
    rates = np.repeat(base[:, None], scenario.ticks, axis=1)
    for i, name in enumerate(scenario.models):
        if name in scenario.switches and name in scenario.new_rates:
            rates[i, scenario.switches[name] :] = scenario.new_rates[name]
    rates[:, scenario.ticks // 2 :] += scenario.drift
    errors = rng.binomial(requests, np.clip(rates, 0.0, 1.0))
    return FleetTruth(requests=requests, errors=errors)


def model_id(model: str, version: str) -> str:
    """ModelMesh's internal model id of an InferenceService's predictor spec (a stand-in hash)."""
    digest = hashlib.sha256(f"{model}/{version}".encode()).hexdigest()[:10]
    return f"{model}__isvc-{digest}"


def write_openmetrics(path: Path, scenario: FleetScenario, truth: FleetTruth) -> None:
    stamps = [f"{scenario.at(k).timestamp():.0f}" for k in range(scenario.ticks + 1)]
    with path.open("w", encoding="utf-8") as out:
        out.write(f"# TYPE {COUNTER} unknown\n")
        for i, model in enumerate(scenario.models):
            # the old spec's series up to the upgrade, the new spec's from it (starting at 0)
            switch = scenario.switches.get(model, scenario.ticks)
            spans = [("v1", 0, switch), ("v2", switch, scenario.ticks)]
            for version, start, end in spans:
                if end <= start:
                    continue
                for code, per_tick in (
                    ("OK", truth.requests[i] - truth.errors[i]),
                    ("INTERNAL", truth.errors[i]),
                ):
                    labels = (
                        f'{{namespace="{NAMESPACE}",modelId="{model_id(model, version)}",'
                        f'vModelId="{model}",code="{code}"}}'
                    )
                    values = np.cumsum(per_tick[start:end])
                    out.write(f"{COUNTER}{labels} 0 {stamps[start]}\n")
                    out.writelines(
                        f"{COUNTER}{labels} {int(v)} {stamps[start + k + 1]}\n"
                        for k, v in enumerate(values)
                    )
        out.write("# EOF\n")
