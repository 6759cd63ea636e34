"""The challenger-alias poller against a real MLflow server: a version that gets the
``challenger`` alias starts a rollout (once, whichever replicas poll), pinned to that version."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.config import Settings
from analyzer.domain.events import EventType
from analyzer.domain.model import Tier
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.registry.mlflow import MlflowRegistry
from analyzer.rollouts.aliases import RegistryAliases
from analyzer.rollouts.challengers import POLLER, ChallengerPoller, ChallengerWatch
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import build_service
from tests.integration.rollouts.harness import MODEL, PLAN, Rig
from tests.mlflow_server import MlflowAdmin

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def registry(mlflow_url: str) -> Iterator[MlflowRegistry]:
    client = MlflowRegistry(mlflow_url)
    yield client
    client.close()


def rig_with(engine: Engine, registry: MlflowRegistry) -> Rig:
    rig = Rig(engine, lambda r: Verdict.PASS)
    rig.service = RolloutService(engine, rig.ledger, rig.target, clock=rig.clock, registry=registry)
    rig.engine = RolloutEngine(
        engine, rig.ledger, rig.target, rig.analyzer, OpenGates(), clock=rig.clock,
        replica_id="test-replica", aliases=RegistryAliases(registry),
    )  # fmt: skip
    return rig


def poller(rig: Rig, engine: Engine, registry: MlflowRegistry, name: str,
           replica: str = "replica-a") -> ChallengerPoller:  # fmt: skip
    watch = ChallengerWatch(registered_model=name, model=MODEL, profile="fraud",
                            tier=Tier.HOT_PATH, plan=PLAN)  # fmt: skip
    return ChallengerPoller(engine, registry, rig.service, rig.target, [watch], clock=rig.clock,
                            replica_id=replica, lease=timedelta(seconds=90))  # fmt: skip


def test_a_version_given_the_challenger_alias_starts_one_pinned_rollout(
    pg_engine: Engine, registry: MlflowRegistry, mlflow_admin: MlflowAdmin, model_name: str
) -> None:
    mlflow_admin.create_model(model_name)
    mlflow_admin.create_version(model_name, "s3://models/fraud/v1", run_id="run-1")
    rig = rig_with(pg_engine, registry)
    a = poller(rig, pg_engine, registry, model_name)
    [nothing] = a.poll()
    assert (nothing.action, nothing.reason) == ("skipped", "no version has the 'challenger' alias")
    mlflow_admin.set_alias(model_name, "challenger", "1")
    [started] = a.poll()
    assert started.action == "started", started.reason
    assert started.version == "1"
    rollout = rig.service.get(started.rollout_id or "")
    assert rollout.artifact_uri == f"models:/{model_name}/1"  # pinned, not the alias
    assert rollout.model_version == "1"
    assert (rollout.baseline_revision, rollout.canary_revision) == ("fraud-00001", "fraud-00002")
    assert rollout.initiator == POLLER.subject
    [registered] = rig.ledger.events(
        rollout_id=rollout.id, event_types=[EventType.REVISION_REGISTERED]
    ).entries
    assert registered.data()["registry"]["requested_uri"] == f"models:/{model_name}/1"
    # polled again (by this replica, later by another): the version already has its rollout
    [again] = a.poll()
    assert (again.action, again.version) == ("skipped", "1")
    rig.clock.advance(timedelta(minutes=5))
    [other] = poller(rig, pg_engine, registry, model_name, "replica-b").poll()
    assert (other.action, other.version) == ("skipped", "1")
    assert len(rig.service.list(model=MODEL)) == 1
    # the rollout runs to the end: champion moves; a new challenger starts the next rollout
    rig.run(minutes=12)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED
    assert mlflow_admin.aliases(model_name)["champion"] == "1"
    mlflow_admin.create_version(model_name, "s3://models/fraud/v2", run_id="run-2")
    rig.target.deploy_canary(MODEL, "fraud-00003")
    mlflow_admin.set_alias(model_name, "challenger", "2")
    rig.clock.advance(timedelta(minutes=5))
    [next_one] = poller(rig, pg_engine, registry, model_name, "replica-b").poll()
    assert next_one.action == "started", next_one.reason
    second = rig.service.get(next_one.rollout_id or "")
    assert (second.baseline_revision, second.canary_revision) == ("fraud-00002", "fraud-00003")
    assert second.artifact_uri == f"models:/{model_name}/2"


def test_one_replica_holds_the_lease_until_it_runs_out(
    pg_engine: Engine, registry: MlflowRegistry, mlflow_admin: MlflowAdmin, model_name: str
) -> None:
    mlflow_admin.create_model(model_name)
    rig = rig_with(pg_engine, registry)
    a = poller(rig, pg_engine, registry, model_name, "replica-a")
    b = poller(rig, pg_engine, registry, model_name, "replica-b")
    assert len(a.poll()) == 1
    assert b.poll() == []  # a's lease (90 s) is running: b does not ask the registry
    rig.clock.advance(timedelta(seconds=30))
    assert len(a.poll()) == 1  # a renews its own lease
    rig.clock.advance(timedelta(seconds=100))
    assert len(b.poll()) == 1  # a's lease ran out: b takes over
    assert a.poll() == []


def test_a_registry_that_does_not_answer_holds_and_starts_nothing(
    pg_engine: Engine, model_name: str
) -> None:
    down = MlflowRegistry("http://127.0.0.1:9", timeout_seconds=0.5)
    try:
        rig = rig_with(pg_engine, down)
        [held] = poller(rig, pg_engine, down, model_name).poll()
    finally:
        down.close()
    assert held.action == "held"
    assert held.reason.startswith("the registry did not answer")
    assert rig.service.list(model=MODEL) == []


def test_a_running_rollout_of_the_model_holds_the_next_challenger(
    pg_engine: Engine, registry: MlflowRegistry, mlflow_admin: MlflowAdmin, model_name: str
) -> None:
    mlflow_admin.create_model(model_name)
    mlflow_admin.create_version(model_name, "s3://models/fraud/v1", run_id="run-1")
    rig = rig_with(pg_engine, registry)
    rig.start()  # a rollout by hand, still running
    mlflow_admin.set_alias(model_name, "challenger", "1")
    [held] = poller(rig, pg_engine, registry, model_name).poll()
    assert held.action == "held"
    assert "active" in held.reason or "running" in held.reason
    assert len(rig.service.list(model=MODEL)) == 1


def test_serve_builds_the_poller_from_registry_watch(
    pg_url: str, mlflow_url: str, mlflow_admin: MlflowAdmin, model_name: str
) -> None:
    mlflow_admin.create_model(model_name)
    mlflow_admin.create_version(model_name, "s3://models/fraud/v1", run_id="run-1")
    mlflow_admin.set_alias(model_name, "challenger", "1")
    without = build_service(Settings(database_url=pg_url), target=InMemoryTarget())
    assert without.challengers is None
    without.close()
    target = InMemoryTarget()
    target.add_model(MODEL, stable_revision="fraud-00001", canary_revision="fraud-00002")
    plan = {"steps": [{"weight": 50, "dwell_seconds": 60}, {"weight": 100, "dwell_seconds": 60}]}
    settings = Settings(database_url=pg_url, registry={"url": mlflow_url, "watch": [
        {"registered_model": model_name, "model": str(MODEL), "profile": "knative",
         "plan": plan}]})  # fmt: skip
    service = build_service(settings, target=target)
    try:
        assert service.challengers is not None
        [started] = service.challengers.poll()
        assert started.action == "started", started.reason
        rollout = service.rollouts.get(started.rollout_id or "")
        assert rollout.artifact_uri == f"models:/{model_name}/1"
        assert rollout.tier is Tier.STANDARD
        assert [s.weight for s in rollout.plan.steps] == [50, 100]  # the watch's plan
    finally:
        service.close()
