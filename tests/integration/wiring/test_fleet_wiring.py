"""The wiring builds a fleet engine when the service reads Prometheus and reaches a cluster,
and the API then serves fleets from ModelMesh InferenceServices; otherwise the routes 404."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import create_engine

from analyzer.config import Settings
from analyzer.fleets.engine import FleetEngine
from analyzer.fleets.ports import WaveGateRequest
from analyzer.ledger.store import Ledger, utc_now
from analyzer.wiring import FleetWaveGates, build_fleets
from gates.base import GateContext, GateDecision
from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake
from tests.fakes.modelmesh import modelmesh_isvc
from tests.integration.fleets.support import fleet_spec

pytestmark = pytest.mark.postgres


def _kubeconfig(kube: KubeApiFake, tmp_path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
        "users": [{"name": "bot", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "test", "context": {"cluster": "fake", "user": "bot"}}],
        "current-context": "test",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_prometheus_and_a_cluster_give_a_fleet_engine_on_modelmesh(
    pg_url: str, tmp_path: Path
) -> None:
    with KubeApiFake(controller_lag_reads=0) as kube:
        kube.seed(
            INFERENCE_SERVICES,
            modelmesh_isvc("merchants", "merchant-1", "s3://m/1/v1", "triton-1", {"team": "a"}),
        )
        settings = Settings(
            database_url=SecretStr(pg_url),
            metric_source="prometheus",
            traffic_target="kserve",
            kubernetes={"kubeconfig": _kubeconfig(kube, tmp_path)},
        )
        engine = create_engine(pg_url)
        closables: list[object] = []
        fleets = build_fleets(settings, engine, Ledger(engine), closables, utc_now)
        assert isinstance(fleets, FleetEngine)
        # its target is the ModelMesh one, reaching the cluster through the kubeconfig
        spec = fleet_spec(["unused"], percents=(100,))
        started = fleets.start(
            replace(spec, namespace="merchants", models=(), selector={"team": "a"}),
            initiator="alice",
        )
        assert started.waves[0][1] == ("merchant-1",)
        isvc = kube.get(INFERENCE_SERVICES, "merchants", "merchant-1")
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://models/merchant-1/v2"
        for c in closables:
            c.close()  # type: ignore[attr-defined]
        engine.dispose()


def test_the_embedded_default_has_no_fleet_engine(pg_url: str) -> None:
    settings = Settings(database_url=SecretStr(pg_url))
    engine = create_engine(pg_url)
    assert build_fleets(settings, engine, Ledger(engine), [], utc_now) is None
    engine.dispose()


class _Gate:
    def __init__(self, name: str, *, open_: bool) -> None:
        self.name = name
        self._open = open_
        self.contexts: list[GateContext] = []

    def check(self, context: GateContext) -> GateDecision:
        self.contexts.append(context)
        return GateDecision(
            gate=self.name, open=self._open, reason="ok" if self._open else "freeze",
            checked_at=context.now,
        )  # fmt: skip


def test_wave_gates_ask_each_named_gate_and_close_on_any_or_a_missing_one() -> None:
    window, snow = _Gate("change_window", open_=True), _Gate("servicenow", open_=False)
    gates = FleetWaveGates({"change_window": window, "servicenow": snow})
    request = WaveGateRequest(
        fleet_id="f-1", namespace="merchants", name="anomaly-v2", version="v2",
        initiator="alice", change_request="CHG0001", wave=2, percent=50.0,
        gates=("change_window",), now=datetime(2026, 12, 7, 9, tzinfo=UTC),
    )  # fmt: skip
    assert gates.check(request).open
    seen = window.contexts[-1]
    assert (str(seen.model), seen.target_step, seen.target_weight) == (
        "merchants/anomaly-v2",
        2,
        50,
    )
    assert seen.change_request == "CHG0001"
    both = gates.check(replace(request, gates=("change_window", "servicenow")))
    assert not both.open
    assert "servicenow: freeze" in both.reason
    missing = gates.check(replace(request, gates=("manual_approval",)))
    assert not missing.open
    assert "not configured" in missing.reason
