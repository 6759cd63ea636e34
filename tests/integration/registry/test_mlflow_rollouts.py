"""Rollouts driven from a real MLflow model registry: resolve, pin, move aliases, fail closed.

A real ``mlflow server`` (SQLite store, 127.0.0.1) and PostgreSQL; the traffic target is the
in-memory one and the analysis is scripted (tests/integration/rollouts/harness.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from analyzer.domain.errors import FatalIntegrationError, IntegrationError, InvalidInputError
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import RolloutState
from analyzer.domain.verdict import Verdict
from analyzer.ledger.chain import EntryRecord
from analyzer.registry.base import ResolvedVersion
from analyzer.registry.mlflow import MlflowRegistry
from analyzer.rollouts.aliases import RegistryAliases
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from analyzer.rollouts.service import RolloutService
from analyzer.targets.base import TrafficState
from analyzer.targets.memory.target import InMemoryTarget
from tests.integration.rollouts.harness import ALICE, MODEL, PLAN, Rig
from tests.mlflow_server import MlflowAdmin, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DIGEST_V1 = "sha256:" + "1" * 64
DIGEST_V2 = "sha256:" + "2" * 64


class SwitchableRegistry:
    """The real MLflow client, or one aimed at a closed port (a registry that is down)."""

    kind = "mlflow"

    def __init__(self, url: str) -> None:
        self.up = MlflowRegistry(url, timeout_seconds=5.0)
        self.down = MlflowRegistry(f"http://127.0.0.1:{free_port()}", timeout_seconds=1.0)
        self.current = self.up

    def close(self) -> None:
        self.up.close()
        self.down.close()

    def get_version(self, name: str, version: str) -> ResolvedVersion:
        return self.current.get_version(name, version)

    def get_by_alias(self, name: str, alias: str) -> ResolvedVersion:
        return self.current.get_by_alias(name, alias)

    def aliases(self, name: str) -> dict[str, str]:
        return self.current.aliases(name)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.current.set_alias(name, alias, version)


@pytest.fixture
def registry(mlflow_url: str) -> Iterator[SwitchableRegistry]:
    switchable = SwitchableRegistry(mlflow_url)
    yield switchable
    switchable.close()


@pytest.fixture
def registered(mlflow_admin: MlflowAdmin, model_name: str) -> str:
    """v1 is the champion; v2 (the canary) was registered and tagged by its pipeline."""
    mlflow_admin.create_model(model_name)
    v1 = mlflow_admin.create_version(
        model_name, "s3://models/fraud/v1", run_id="run-v1", artifact_digest=DIGEST_V1
    )
    v2 = mlflow_admin.create_version(
        model_name, "s3://models/fraud/v2", run_id="run-v2", artifact_digest=DIGEST_V2
    )
    assert (v1, v2) == ("1", "2")
    mlflow_admin.set_alias(model_name, "champion", "1")
    mlflow_admin.set_alias(model_name, "candidate", "2")
    return model_name


def registry_rig(engine: Engine, registry: SwitchableRegistry, script: Any = None) -> Rig:
    rig = Rig(engine, script or (lambda r: Verdict.PASS))
    rig.service = RolloutService(engine, rig.ledger, rig.target, clock=rig.clock, registry=registry)
    rig.engine = RolloutEngine(
        engine, rig.ledger, rig.target, rig.analyzer, OpenGates(), clock=rig.clock,
        replica_id="test-replica", aliases=RegistryAliases(registry),
    )  # fmt: skip
    return rig


def start(rig: Rig, uri: str, **changes: Any) -> Any:
    request = StartRollout(
        model=MODEL, tier=Tier.REGULATED, baseline_revision="fraud-00001",
        canary_revision="fraud-00002", profile="fraud", plan=PLAN, artifact_uri=uri,
    )  # fmt: skip
    return rig.service.start(replace(request, **changes), ALICE)


def entries(rig: Rig, kind: EventType) -> list[EntryRecord]:
    return list(rig.ledger.events(model=MODEL, event_types=[kind], limit=1000).entries)


def test_the_client_reads_versions_aliases_and_moves_an_alias(
    registry: SwitchableRegistry, registered: str
) -> None:
    client = registry.up
    v2 = client.get_version(registered, "2")
    assert (v2.version, v2.source, v2.run_id, v2.status) == ("2", "s3://models/fraud/v2",
                                                             "run-v2", "READY")  # fmt: skip
    assert v2.digest == DIGEST_V2
    assert client.get_by_alias(registered, "champion").version == "1"
    assert client.aliases(registered) == {"champion": "1", "candidate": "2"}
    client.set_alias(registered, "challenger", "2")
    assert client.aliases(registered)["challenger"] == "2"


def test_start_from_an_alias_pins_the_version_and_records_the_resolution(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str
) -> None:
    rig = registry_rig(pg_engine, registry)
    rollout = start(rig, f"models:/{registered}@candidate")
    assert rollout.artifact_uri == f"models:/{registered}/2"
    assert (rollout.model_version, rollout.artifact_digest) == ("2", DIGEST_V2)
    [entry] = entries(rig, EventType.REVISION_REGISTERED)
    data = entry.data()
    assert data["artifact_uri"] == f"models:/{registered}/2"
    assert data["registry"] == {
        "kind": "mlflow", "requested_uri": f"models:/{registered}@candidate",
        "resolved_uri": f"models:/{registered}/2", "registered_model": registered,
        "version": "2", "source": "s3://models/fraud/v2", "run_id": "run-v2", "status": "READY",
        "digest": DIGEST_V2, "signature": None, "aliases": ["candidate"],
    }  # fmt: skip


def test_promotion_moves_challenger_then_champion_each_recorded(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str, mlflow_admin: MlflowAdmin
) -> None:
    rig = registry_rig(pg_engine, registry)
    rollout = start(rig, f"models:/{registered}/2")
    rig.run(minutes=1)  # the first step: challenger moves with the canary's first traffic
    assert mlflow_admin.aliases(registered)["challenger"] == "2"
    assert mlflow_admin.aliases(registered)["champion"] == "1"
    rig.run(minutes=12)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED
    assert mlflow_admin.aliases(registered)["champion"] == "2"
    moves = [e.data() for e in entries(rig, EventType.ALIAS_MOVED)]
    assert [(m["alias"], m["version"], m["previous_version"], m["moved"]) for m in moves] == [
        ("challenger", "2", None, True),
        ("champion", "2", "1", True),
    ]
    # the champion moved before the promotion's traffic move was asked of the target
    kinds = [e.event_type for e in rig.ledger.events(model=MODEL, limit=1000).entries]
    champion_at = max(i for i, k in enumerate(kinds) if k == EventType.ALIAS_MOVED.value)
    assert kinds[champion_at + 1] == EventType.TRAFFIC_CHANGE_REQUESTED.value
    assert rig.ledger.verify().intact


def test_abort_leaves_the_champion_unchanged(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str, mlflow_admin: MlflowAdmin
) -> None:
    rig = registry_rig(pg_engine, registry)
    rollout = start(rig, f"models:/{registered}@candidate")
    rig.run(minutes=3)
    aborted = rig.service.abort(rollout.id, ALICE, "latency regression seen by on-call")
    rig.run(minutes=5)
    assert aborted.state is RolloutState.ABORTED
    assert rig.weight() == 0
    assert mlflow_admin.aliases(registered)["champion"] == "1"
    assert [e.data()["alias"] for e in entries(rig, EventType.ALIAS_MOVED)] == ["challenger"]


def test_a_registry_that_is_down_holds_the_promotion_until_it_answers(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str, mlflow_admin: MlflowAdmin
) -> None:
    rig = registry_rig(pg_engine, registry)
    rollout = start(rig, f"models:/{registered}/2")
    rig.run(minutes=5)  # through 10 % and 25 %, to 50 %
    assert rig.service.get(rollout.id).step_index == 2
    registry.current = registry.down
    rig.run(minutes=10)
    held = rig.service.get(rollout.id)
    assert held.state is RolloutState.PROGRESSING
    assert rig.weight() == 50  # never promoted ahead of the registry
    assert (held.reason or "").startswith("held: the model registry did not move alias 'champion'")
    errors = [e.data() for e in entries(rig, EventType.REGISTRY_ERROR)]
    assert errors
    assert {(e["alias"], e["error_type"]) for e in errors} == {
        ("champion", "RegistryUnavailableError")
    }
    assert not entries(rig, EventType.ROLLOUT_PROMOTED)
    assert mlflow_admin.aliases(registered)["champion"] == "1"
    registry.current = registry.up
    rig.run(minutes=2)
    assert rig.service.get(rollout.id).state is RolloutState.PROMOTED
    assert mlflow_admin.aliases(registered)["champion"] == "2"


def test_a_registry_that_refuses_the_move_holds_the_rollout(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str, mlflow_admin: MlflowAdmin
) -> None:
    """The version was deleted from the registry after the rollout started: MLflow refuses to
    point an alias at it, and the canary never gets traffic."""
    rig = registry_rig(pg_engine, registry)
    rollout = start(rig, f"models:/{registered}/2")
    mlflow_admin.delete_version(registered, "2")
    rig.run(minutes=3)
    held = rig.service.get(rollout.id)
    assert held.state is RolloutState.PENDING
    assert rig.weight() == 0
    [first, *_] = [e.data() for e in entries(rig, EventType.REGISTRY_ERROR)]
    assert (first["alias"], first["error_type"]) == ("challenger", "RegistryNotFoundError")
    assert not entries(rig, EventType.TRAFFIC_CHANGE_REQUESTED)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/{name}/latest", "'latest' moves"),
        ("models:/{name}/Production", "stage 'Production' moves"),
        ("models:/{name}", "names no version"),
        ("models:/{name}@latest", "'latest' is not an alias"),
        ("models:/{name}/7", "is not in the registry"),
        ("models:/{name}@nobody", "is not in the registry"),
    ],
)
def test_unpinned_or_unknown_registry_uris_are_refused(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str, uri: str, message: str
) -> None:
    rig = registry_rig(pg_engine, registry)
    with pytest.raises(InvalidInputError, match=message) as caught:
        start(rig, uri.format(name=registered))
    assert caught.value.field == "artifact_uri"
    assert rig.service.list() == []


def test_a_model_version_contradicting_the_registry_is_refused(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str
) -> None:
    rig = registry_rig(pg_engine, registry)
    with pytest.raises(InvalidInputError, match=r"is .1., but .* is version 2") as caught:
        start(rig, f"models:/{registered}@candidate", model_version="1")
    assert caught.value.field == "model_version"


def test_a_registry_that_is_down_at_start_starts_nothing(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str
) -> None:
    rig = registry_rig(pg_engine, registry)
    registry.current = registry.down
    with pytest.raises(IntegrationError, match="could not be reached"):
        start(rig, f"models:/{registered}@candidate")
    assert rig.service.list() == []


class RefusingPromotion(InMemoryTarget):
    """A target that refuses the promotion for good (e.g. an admission webhook says no)."""

    def promote(self, ref: ModelRef) -> TrafficState:
        raise FatalIntegrationError(f"admission webhook denied promoting {ref}")


def test_a_promotion_the_target_refuses_points_the_champion_back(
    pg_engine: Engine, registry: SwitchableRegistry, registered: str, mlflow_admin: MlflowAdmin
) -> None:
    rig = registry_rig(pg_engine, registry)
    refusing = RefusingPromotion()
    refusing.add_model(MODEL, stable_revision="fraud-00001", canary_revision="fraud-00002")
    rig.target = refusing
    rig.service = RolloutService(
        pg_engine, rig.ledger, refusing, clock=rig.clock, registry=registry
    )
    rig.engine = RolloutEngine(
        pg_engine, rig.ledger, refusing, rig.analyzer, OpenGates(), clock=rig.clock,
        replica_id="test-replica", aliases=RegistryAliases(registry),
    )  # fmt: skip
    rollout = start(rig, f"models:/{registered}/2")
    rig.run(minutes=10)
    assert rig.service.get(rollout.id).state is RolloutState.FAILED
    assert mlflow_admin.aliases(registered)["champion"] == "1"
    moves = [e.data() for e in entries(rig, EventType.ALIAS_MOVED)]
    assert [(m["alias"], m["version"], m.get("restored", False)) for m in moves] == [
        ("challenger", "2", False),
        ("champion", "2", False),
        ("champion", "1", True),
    ]
