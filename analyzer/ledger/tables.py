"""The ledger's tables as SQLAlchemy Core metadata.

Alembic migrations in ``migrations/`` are the only way these tables are created or changed; this
metadata mirrors them for queries (a test checks the two agree).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("model", String(320)),
    Column("rollout_id", String(64)),
    Column("revision", String(253)),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    # "which revisions served model M at T" = latest traffic_changed of M at or before T
    Index("ix_ledger_model_type_time", "model", "event_type", "recorded_at", "seq"),
    Index("ix_ledger_model_time", "model", "recorded_at", "seq"),
    Index("ix_ledger_rollout_seq", "rollout_id", "seq"),
    Index("ix_ledger_model_revision", "model", "revision", "event_type", "seq"),
    Index("ix_ledger_time", "recorded_at", "seq"),
)

# One row (id = 1): the chain's head. Appends lock it, which serializes writers across processes,
# and verify compares it with the chain's end, which catches entries removed from the tail.
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
