"""Migration 0004 on a database that already holds rollouts: upgrade keeps them (with no model
version), downgrade removes the columns and nothing else, and upgrade works again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, func, inspect, select

from analyzer.db import alembic_config, current_revision, head_revision, make_engine
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import Rollout, RolloutState, StepPlan
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import StartRollout
from analyzer.rollouts.repository import to_row
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget
from tests.integration.rollouts.harness import ALICE, MODEL

BEFORE = "0003_rollouts"
NEW_COLUMNS = {"model_version", "artifact_digest"}
T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("rollouts")}


def insert_as_0003(engine: Engine) -> dict[str, Any]:
    """A rollout row as the 0003 schema holds it (only the columns that table has)."""
    legacy = Rollout(
        id="r-legacy", model=MODEL, tier=Tier.REGULATED, baseline_revision="fraud-00001",
        canary_revision="fraud-00002", profile="fraud", plan=StepPlan.default(),
        state=RolloutState.PROGRESSING, step_index=1, paused=False, initiator="alice",
        created_at=T0, updated_at=T0, change_request="CHG0031337",
        artifact_uri="s3://models/fraud-scorer/16", applied_weight=25,
    )  # fmt: skip
    table = Table("rollouts", MetaData(), autoload_with=engine)
    row = {k: v for k, v in to_row(legacy).items() if k in table.c}
    with engine.begin() as conn:
        conn.execute(table.insert().values(**row))
    return row


def rows(engine: Engine) -> list[dict[str, Any]]:
    table = Table("rollouts", MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]


def upgrade_and_downgrade(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, BEFORE)
    engine = make_engine(url)
    try:
        assert not NEW_COLUMNS & columns(engine)
        legacy = insert_as_0003(engine)

        command.upgrade(config, "head")
        assert current_revision(engine) == head_revision()
        assert columns(engine) >= NEW_COLUMNS
        service = RolloutService(engine, Ledger(engine), InMemoryTarget())
        kept = service.get("r-legacy")
        assert (kept.model_version, kept.artifact_digest) == (None, None)
        assert (kept.state, kept.step_index, kept.artifact_uri) == (
            RolloutState.PROGRESSING, 1, "s3://models/fraud-scorer/16",
        )  # fmt: skip
        other = ModelRef(namespace=MODEL.namespace, name="credit-decision")
        versioned = service.start(
            StartRollout(
                model=other, tier=Tier.REGULATED, baseline_revision="credit-00007",
                canary_revision="credit-00008", profile="knative", model_version="3.2.1",
                artifact_digest=DIGEST,
            ),
            ALICE,
        )  # fmt: skip
        assert service.get(versioned.id).model_version == "3.2.1"

        command.downgrade(config, BEFORE)
        assert current_revision(engine) == BEFORE
        assert not NEW_COLUMNS & columns(engine)
        after = rows(engine)
        assert len(after) == 2
        [old] = [r for r in after if r["id"] == "r-legacy"]
        assert {k: old[k] for k in ("state", "step_index", "artifact_uri", "change_request")} == {
            k: legacy[k] for k in ("state", "step_index", "artifact_uri", "change_request")
        }
        # the indexes 0003 made are still there (the one-active-rollout rule above all)
        names = {i["name"] for i in inspect(engine).get_indexes("rollouts")}
        assert "uq_rollouts_one_active_per_model" in names

        command.upgrade(config, "head")
        assert columns(engine) >= NEW_COLUMNS
        with engine.connect() as conn:
            table = Table("rollouts", MetaData(), autoload_with=conn)
            count = conn.execute(select(func.count()).select_from(table)).scalar_one()
        assert count == 2
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_0004_on_postgres_with_existing_rollouts(empty_pg_url: str) -> None:
    upgrade_and_downgrade(empty_pg_url)


def test_0004_on_sqlite_with_existing_rollouts(sqlite_url: str) -> None:
    upgrade_and_downgrade(sqlite_url)
