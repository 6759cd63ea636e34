"""The fleet rollout tables (created by migration 0009)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

ACTIVE_STATUSES = ("progressing", "held")

fleet_rollouts = Table(
    "fleet_rollouts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(253), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", Text, nullable=False),  # JSON: what was asked (FleetSpec)
    Column("state", Text, nullable=False),  # JSON: waves, each model's phase, stopped e-values
    Column("initiator", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("next_look_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),  # optimistic concurrency between replicas
    Index("ix_fleet_rollouts_due", "status", "next_look_at"),
    # At most one active fleet rollout of a name per namespace.
    Index(
        "uq_fleet_rollouts_one_active",
        "namespace",
        "name",
        unique=True,
        postgresql_where=text("status IN ('progressing', 'held')"),
        sqlite_where=text("status IN ('progressing', 'held')"),
    ),
)

fleet_looks = Table(
    "fleet_looks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fleet_id", String(36), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("wave", Integer, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("final", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("rollbacks", Text, nullable=False),  # JSON list of model names
    Column("summary", Text, nullable=False),  # JSON: pooled evidence, thresholds, flagged models
    Index("ix_fleet_looks_fleet", "fleet_id", "id"),
)
