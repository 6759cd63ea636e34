"""A fleet of in-memory models with synthetic counts and a controllable clock, on a ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from analyzer.domain.fleet import FleetRateQuery, ModelVersion
from analyzer.domain.model import ModelRef
from analyzer.fleets.engine import FleetEngine
from analyzer.fleets.judge import FleetMetric
from analyzer.fleets.plan import WaveSpec, cut_waves
from analyzer.fleets.ports import FleetGateChecker
from analyzer.fleets.progress import FleetStatus
from analyzer.fleets.spec import FleetMetricSpec, FleetSpec
from analyzer.ledger.store import Ledger
from analyzer.metrics.synthetic.fleet import SyntheticFleetSource
from analyzer.targets.memory import InMemoryFleetTarget

NAMESPACE = "merchants"
NEW = "s3://models/{model}/v2"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def unix(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def fleet_spec(
    models: list[str],
    *,
    dwell: float = 3600,
    look: float = 900,
    name: str = "anomaly-v2",
    percents: tuple[float, ...] = (2, 10, 50, 100),
) -> FleetSpec:
    plan = tuple(
        WaveSpec(percent=p, dwell_seconds=dwell, deadline_seconds=3 * dwell) for p in percents
    )
    metric = FleetMetricSpec(
        metric=FleetMetric(name="errors", tolerance=0.01, safety_max=0.25),
        query=FleetRateQuery(
            name="errors",
            events='modelmesh_api_request_milliseconds_count{namespace="{namespace}",code!="OK"}',
            total='modelmesh_api_request_milliseconds_count{namespace="{namespace}"}',
            model_label="vModelId",
        ),
    )
    return FleetSpec(
        name=name,
        namespace=NAMESPACE,
        version=ModelVersion(name="v2", storage_uri=NEW, runtime="triton-2"),
        from_version="v1",
        plan=plan,
        metrics=(metric,),
        models=tuple(models),
        look_interval_seconds=look,
    )


class MemoryFleet:
    """``models`` in memory, ``harmful`` of them with +``harm`` errors on the new version."""

    def __init__(
        self,
        db: Engine,
        models: list[str],
        *,
        harmful: set[str],
        harm: float = 0.15,
        seed: int = 7,
        gates: FleetGateChecker | None = None,
    ) -> None:
        self.clock = Clock()
        self.models = models
        self.harmful = harmful
        self.target = InMemoryFleetTarget(clock=self.clock.unix)
        for m in models:
            self.target.add_model(
                ModelRef(namespace=NAMESPACE, name=m),
                storage_uri=f"s3://models/{m}/v1",
                runtime="triton-1",
                labels={"team": "anomaly"},
            )

        def rate_of(model: str, uri: str, base: float) -> float:
            new = uri == NEW.replace("{model}", model)
            return base + harm if new and model in harmful else base

        self.source = SyntheticFleetSource(
            seed=seed,
            models=models,
            serving=lambda model: self.target.history(ModelRef(namespace=NAMESPACE, name=model)),
            rate_of=rate_of,
        )
        self.ledger = Ledger(db, clock=self.clock)
        self.engine = FleetEngine(
            db=db, ledger=self.ledger, source=self.source, target=self.target, clock=self.clock,
            gates=gates,
        )  # fmt: skip

    def waves(self, spec: FleetSpec) -> list[tuple[str, ...]]:
        return [models for _, models in cut_waves(spec.name, self.models, spec.plan)]

    def busy(self, models: tuple[str, ...], k: int) -> list[str]:
        """The ``k`` busiest of ``models`` (enough traffic in one dwell to show a harm)."""
        return sorted(models, key=self.source.traffic, reverse=True)[:k]

    def serving(self, model: str) -> str:
        return self.target.read(ModelRef(namespace=NAMESPACE, name=model)).storage_uri


def run_until(fleet: MemoryFleet, done: Callable[[], bool], *, step: float = 900) -> None:
    """Advance the clock a look at a time and tick until ``done()``."""
    for _ in range(200):
        if done():
            return
        fleet.clock.advance(step)
        fleet.engine.tick()
    raise AssertionError("the fleet never got there")


def start_a_fleet_the_watch_catches(db: Engine, models: list[str]) -> tuple[MemoryFleet, str, str]:
    """A fleet of ``models`` (10 → 50 → 100 %, watched an hour after its last wave), started,
    whose one harmful model — a quiet one of wave 1 (~9 requests a minute, +5 points) with too
    little evidence in its wave's dwell — the watch rolls back after its wave passed. Returns the
    fleet, its id and that model."""
    spec = replace(fleet_spec(models, percents=(10, 50, 100), name="anomaly-watch"),
                   watch_seconds=3600.0)  # fmt: skip
    probe = MemoryFleet(db, models, harmful=set())
    quiet = sorted(probe.waves(spec)[0], key=probe.source.traffic)[2]
    fleet = MemoryFleet(db, models, harmful={quiet}, harm=0.05)
    started = fleet.engine.start(spec, initiator="alice")
    return fleet, started.id, quiet


def run_to_the_end(fleet: MemoryFleet, fleet_id: str) -> None:
    run_until(fleet, lambda: fleet.engine.get(fleet_id).state.status is not FleetStatus.PROGRESSING)
