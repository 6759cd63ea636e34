"""``canary-analyzer demo --fleet``: a fleet rollout of 120 per-merchant models, in memory.

It runs in a scratch SQLite database of its own with a simulated clock (six hours pass in
seconds), so it never writes back-dated entries into the service's ledger: the in-memory fleet
target plays ModelMesh, the seeded synthetic fleet source plays Prometheus (each model's counts
follow what it really serves, minute by minute), and three of the busier models get a new
version that errs 15 points more. They are rolled back at the look that finds them while the
waves go on; the other 117 end on the new version. See docs/fleets.md.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command

from analyzer.db import alembic_config, make_engine
from analyzer.domain.fleet import FleetRateQuery, ModelPhase, ModelVersion
from analyzer.domain.model import ModelRef
from analyzer.fleets.engine import FleetEngine
from analyzer.fleets.judge import FleetMetric
from analyzer.fleets.plan import WaveSpec, cut_waves
from analyzer.fleets.progress import FleetStatus
from analyzer.fleets.spec import FleetMetricSpec, FleetSpec
from analyzer.ledger.store import Ledger
from analyzer.metrics.synthetic.fleet import SyntheticFleetSource
from analyzer.targets.memory import InMemoryFleetTarget

NAMESPACE = "demo-merchants"
MODELS = [f"merchant-{i:03d}" for i in range(120)]
LOOK = 600.0


@dataclass
class _SimulatedClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 2, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


def _spec() -> FleetSpec:
    errors = 'modelmesh_api_request_milliseconds_count{namespace="{namespace}"'
    return FleetSpec(
        name="anomaly-v2",
        namespace=NAMESPACE,
        models=tuple(MODELS),
        version=ModelVersion(name="v2", storage_uri="s3://models/{model}/v2", runtime="triton-2"),
        from_version="v1",
        plan=tuple(
            WaveSpec(percent=p, dwell_seconds=3600, deadline_seconds=3 * 3600)
            for p in (10, 50, 100)
        ),
        metrics=(
            FleetMetricSpec(
                metric=FleetMetric(name="errors", tolerance=0.01, safety_max=0.25),
                query=FleetRateQuery(
                    name="errors",
                    events=errors + ',code!="OK"}',
                    total=errors + "}",
                    model_label="vModelId",
                ),
            ),
        ),
        look_interval_seconds=LOOK,
    )


def run_fleet_demo(echo: Callable[[str], None] = print) -> int:
    """Run the fleet to its end; 0 when exactly the harmful models went back and the rest were
    upgraded, with the ledger intact; 1 otherwise."""
    workdir = Path(tempfile.mkdtemp(prefix="canary-fleet-demo-"))
    url = f"sqlite:///{workdir}/fleet.sqlite3"
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    clock = _SimulatedClock()
    try:
        target = InMemoryFleetTarget(clock=lambda: clock().timestamp())
        for m in MODELS:
            ref = ModelRef(namespace=NAMESPACE, name=m)
            target.add_model(ref, storage_uri=f"s3://models/{m}/v1", runtime="triton-1")
        spec = _spec()
        harmful: set[str] = set()

        def rate_of(model: str, uri: str, base: float) -> float:
            return base + 0.15 if model in harmful and uri.endswith("/v2") else base

        source = SyntheticFleetSource(
            seed=2026,
            models=MODELS,
            serving=lambda m: target.history(ModelRef(namespace=NAMESPACE, name=m)),
            rate_of=rate_of,
        )
        waves = [w for _, w in cut_waves(spec.name, MODELS, spec.plan)]
        harmful.update(max(w, key=source.traffic) for w in waves)
        ledger = Ledger(engine, clock=clock)
        fleets = FleetEngine(db=engine, ledger=ledger, source=source, target=target, clock=clock)
        return _drive(fleets, ledger, spec=spec, clock=clock, harmful=harmful, echo=echo)
    finally:
        engine.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


def _drive(
    fleets: FleetEngine,
    ledger: Ledger,
    *,
    spec: FleetSpec,
    clock: _SimulatedClock,
    harmful: set[str],
    echo: Callable[[str], None],
) -> int:
    record = fleets.start(spec, initiator="demo-operator")
    sizes = ", ".join(str(len(w)) for _, w in record.waves)
    echo(f"fleet {NAMESPACE}/{spec.name}: {len(MODELS)} models, waves of {sizes}; "
         f"new version harmful for {', '.join(sorted(harmful))}")  # fmt: skip
    shown = 0
    for _ in range(100):
        if fleets.get(record.id).state.status is not FleetStatus.PROGRESSING:
            break
        clock.now += timedelta(seconds=LOOK)
        fleets.tick()
        looks = fleets.looks(record.id)
        for look in looks[shown:]:
            if look.final or look.rollbacks:
                back = f"; rolled back: {', '.join(look.rollbacks)}" if look.rollbacks else ""
                echo(f"  {look.at:%H:%M} wave {look.wave + 1}: {look.verdict} — "
                     f"{look.reason}{back}")  # fmt: skip
        shown = len(looks)
    final = fleets.get(record.id)
    rolled = set(final.state.models_in(ModelPhase.ROLLED_BACK))
    judged = final.state.models_in(ModelPhase.JUDGED)
    echo(f"{final.state.status.value}: {len(judged)} models on v2, {len(rolled)} rolled back")
    report = ledger.verify()
    echo(report.summary())
    ok = final.state.status is FleetStatus.COMPLETED and rolled == harmful and report.intact
    return 0 if ok else 1
