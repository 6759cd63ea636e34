"""Acceptance: 400 per-merchant models on ModelMesh (the fake apiserver and its controller),
judged from a real Prometheus, a handful made worse by the new version.

The Prometheus data is written before the rollout runs, so it must know when each model moves:
every wave here passes at its first look after its dwell (asserted), which fixes the schedule
the data was generated for. The harmful models are busy ones (enough traffic to show +15
points within a dwell; docs/fleets.md states the per-model limit).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType
from analyzer.domain.fleet import ModelPhase
from analyzer.domain.model import ModelRef
from analyzer.fleets.engine import FleetEngine
from analyzer.fleets.plan import cut_waves
from analyzer.fleets.progress import FleetStatus
from analyzer.ledger.store import Ledger
from analyzer.metrics.prometheus import PrometheusClient, RetryPolicy
from analyzer.metrics.prometheus.fleet import PrometheusFleetSource
from analyzer.targets.kube import RetryPolicy as KubeRetry
from analyzer.targets.modelmesh import ModelMeshTarget, ModelMeshTargetSettings
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake
from tests.fakes.modelmesh import modelmesh_isvc
from tests.integration.fleets.support import NAMESPACE, Clock, fleet_spec

sys.path.insert(0, str(Path(__file__).parents[1] / "prometheus"))
import fleetdata
import promserver

pytestmark = [pytest.mark.postgres, pytest.mark.prometheus, pytest.mark.slow]

MODELS = [f"merchant-{i:04d}" for i in range(400)]
TICK = 120.0  # a scrape every 2 minutes: half the samples to backfill, same counts
HISTORY = 30  # ticks (an hour) before the rollout: the first wave's mirror window
DWELL = 3600.0
LOOK = 900.0
WAVE_TICKS = int(DWELL // TICK)  # a wave passes at the look that ends its dwell
TICKS = HISTORY + 4 * WAVE_TICKS + 5


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[fleetdata.FleetScenario, set[str], str]]:
    found = promserver.binaries()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus/promtool not on PATH (CI must install prometheus)")
        pytest.skip("prometheus/promtool not on PATH")
    spec = fleet_spec(MODELS, dwell=DWELL, look=LOOK)
    waves = [models for _, models in cut_waves(spec.name, MODELS, spec.plan)]
    switches = {m: HISTORY + k * WAVE_TICKS for k, wave in enumerate(waves) for m in wave}
    end = promserver.aligned_end(TICK, before_now=120.0)
    base = fleetdata.FleetScenario(
        seed=1717,
        origin=end - timedelta(seconds=TICK * TICKS),
        ticks=TICKS,
        tick_seconds=TICK,
        models=MODELS,
        mean_requests_per_tick=20.0,  # ~10 a minute
    )
    traffic = fleetdata.traffic_of(base)
    busiest = {k: sorted(w, key=lambda m: -traffic[m]) for k, w in enumerate(waves)}
    harmful = {busiest[0][0], busiest[1][0], busiest[2][0], busiest[2][1], busiest[3][0]}
    scenario = fleetdata.FleetScenario(
        **{**base.__dict__, "switches": switches, "new_rates": dict.fromkeys(harmful, 0.2)}
    )
    truth = fleetdata.generate(scenario)
    work = tmp_path_factory.mktemp("fleet-acceptance")
    fleetdata.write_openmetrics(work / "fleet.om", scenario, truth)
    promserver.backfill(found[1], work / "fleet.om", work / "data")
    running = promserver.start(found[0], work / "data", work)
    try:
        yield scenario, harmful, running.url
    finally:
        running.stop()


def test_four_hundred_models_on_modelmesh_judged_from_prometheus(
    scenario: tuple[fleetdata.FleetScenario, set[str], str], pg_engine: Engine
) -> None:
    data, harmful, url = scenario
    clock = Clock(now=data.at(HISTORY))
    spec = fleet_spec(MODELS, dwell=DWELL, look=LOOK)
    with KubeApiFake(controller_lag_reads=0) as kube, httpx.Client() as http:
        for m in MODELS:
            kube.seed(
                INFERENCE_SERVICES,
                modelmesh_isvc(NAMESPACE, m, f"s3://models/{m}/v1", "triton-1", {"fleet": "a"}),
            )
            kube.modelmesh.reconcile(NAMESPACE, m)
        target = ModelMeshTarget(
            kube.api_client(),
            settings=ModelMeshTargetSettings(
                poll_interval=0.0, ready_timeout=5.0, retry=KubeRetry(initial_backoff=0.0)
            ),
        )
        client = PrometheusClient(
            base_url=url, http=http, timeout=30.0, retry=RetryPolicy(attempts=2)
        )
        ledger = Ledger(pg_engine, clock=clock)
        engine = FleetEngine(
            db=pg_engine,
            ledger=ledger,
            source=PrometheusFleetSource(client),
            target=target,
            clock=clock,
        )
        started = engine.start(spec, initiator="platform-team")
        for _ in range(40):
            if engine.get(started.id).state.status is not FleetStatus.PROGRESSING:
                break
            clock.advance(LOOK)
            engine.tick()
        record = engine.get(started.id)

        assert record.state.status is FleetStatus.COMPLETED, record.state.reason
        looks = engine.looks(started.id)
        passes = [lk for lk in looks if lk.final]
        assert [lk.verdict for lk in passes] == ["pass"] * 4
        # the schedule the data was written for: each wave passed at the end of its dwell
        assert [lk.at for lk in passes] == [
            data.at(HISTORY + (k + 1) * WAVE_TICKS) for k in range(4)
        ]
        assert set(record.state.models_in(ModelPhase.ROLLED_BACK)) == harmful
        for m in MODELS:
            uri = kube.get(INFERENCE_SERVICES, NAMESPACE, m)["spec"]["predictor"]["model"]
            want = "v1" if m in harmful else "v2"
            assert uri["storageUri"] == f"s3://models/{m}/{want}", m
        assert ledger.verify().intact
        bad = sorted(harmful)[0]
        history = [
            e.data()["split"][0]["revision"]
            for e in ledger.events(model=ModelRef(namespace=NAMESPACE, name=bad), limit=50).entries
            if e.event_type == EventType.TRAFFIC_CHANGED.value
        ]
        assert history == ["v1", "v2", "v1"]
