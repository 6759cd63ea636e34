"""The scheduler's ticks reach /metrics: the serving process's app observes its engine.

Before, only API routes counted target and gate failures, so the alerts on
``canary_analyzer_integration_errors_total`` never saw a KServe patch that failed during a step.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from analyzer.api.metrics import ApiMetrics, gate_errors
from analyzer.api.server import build_app
from analyzer.config import Settings
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef, Tier
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import build_service

MODEL = ModelRef(namespace="risk-prod", name="fraud-scorer")


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("}")[0].count("=") == len(labels):
            found = ",".join(sorted(line[len(name) + 1 :].split("}")[0].split(",")))
            if found == wanted:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.postgres
def test_target_errors_of_scheduler_ticks_are_counted_on_metrics(pg_url: str) -> None:
    target = InMemoryTarget()
    target.add_model(MODEL, stable_revision="fraud-00001", canary_revision="fraud-00002")
    settings = Settings(database_url=SecretStr(pg_url))
    service = build_service(settings, target=target)
    app = build_app(settings, service=service)
    try:
        service.rollouts.start(
            StartRollout(
                model=MODEL, tier=Tier.LONG_TAIL, baseline_revision="fraud-00001",
                canary_revision="fraud-00002", profile="knative",
            ),
            Actor(subject="alice", roles=frozenset({"operator"})),
        )  # fmt: skip
        # the tick's first read of the target and then the first step's weight change fail
        target.fail_next(2)
        assert service.rollout_engine.tick() == 1

        async def scrape() -> str:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return (await client.get("/metrics")).text

        text = asyncio.run(scrape())
        errors = "canary_analyzer_integration_errors_total"
        appends = "canary_analyzer_ledger_appends_total"
        assert sample(text, errors, integration="target") == 1.0
        assert sample(text, appends, event_type="target_error") == 1.0
        assert target.read_weight(MODEL).canary_weight == 0  # nothing applied, retried later
    finally:
        app.state.services.analyses.close()
        service.close()


def _event(kind: EventType, **data: object) -> LedgerEvent:
    return LedgerEvent(type=kind, actor="canary-analyzer/r1", model=MODEL, data=data)


def test_recorded_counts_verdicts_appends_and_gate_errors() -> None:
    metrics = ApiMetrics(CollectorRegistry())
    broken = {"gate": "servicenow-change", "open": False, "evidence": {"error": "ConnectError"}}
    closed = {"gate": "change-window", "open": False, "evidence": {"freeze": "weekend"}}
    metrics.recorded([
        _event(EventType.ANALYSIS_RECORDED, result={
            "verdict": "fail", "metrics": [
                {"kind": "histogram", "verdict": "fail"},
                {"kind": "proportion", "verdict": "error"},
            ],
        }),
        _event(EventType.GATE_CHECKED, open=False, evidence={"decisions": [broken, closed]}),
        _event(EventType.ROLLOUT_ABORTED, reason="latency regression"),
    ])  # fmt: skip
    value = metrics.registry.get_sample_value
    assert value("canary_analyzer_verdicts_total", {"kind": "overall", "verdict": "fail"}) == 1
    assert value("canary_analyzer_verdicts_total", {"kind": "histogram", "verdict": "fail"}) == 1
    assert value("canary_analyzer_integration_errors_total", {"integration": "source"}) == 1
    # a gate that could not decide is an error; a gate closed by a freeze is not
    assert value("canary_analyzer_integration_errors_total", {"integration": "gate"}) == 1
    for kind in ("analysis_recorded", "gate_checked", "rollout_aborted"):
        assert value("canary_analyzer_ledger_appends_total", {"event_type": kind}) == 1


def test_gate_errors_tolerate_other_shapes() -> None:
    assert gate_errors({}) == []
    assert gate_errors({"evidence": "text"}) == []
    opened = {"open": True, "evidence": {"error": 1}}
    assert gate_errors({"evidence": {"decisions": ["x", opened]}}) == []
    assert gate_errors(
        {"evidence": {"decisions": [{"gate": "g", "open": False, "evidence": {"error": "E"}}]}}
    ) == ["g"]
