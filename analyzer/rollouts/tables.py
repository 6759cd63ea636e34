"""The rollouts table (created by migration 0003; ``model_version`` and ``artifact_digest``
added by 0004, ``pending_move`` by 0007, ``last_look`` by 0010) and the challenger poller's
leases (0014)."""

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

ACTIVE_STATES = ("pending", "progressing")

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("model", String(320), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("baseline_revision", String(253), nullable=False),
    Column("canary_revision", String(253), nullable=False),
    Column("profile", String(128), nullable=False),
    Column("plan", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("initiator", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("step_started_at", DateTime(timezone=True)),
    Column("analysis_started_at", DateTime(timezone=True)),
    Column("next_tick_at", DateTime(timezone=True)),
    Column("change_request", String(64)),
    Column("artifact_uri", String(1024)),
    Column("model_version", String(128)),
    # sha256:<64 hex> today; the width leaves room for sha512:<128 hex>.
    Column("artifact_digest", String(135)),
    Column("consecutive_errors", Integer, nullable=False),
    Column("reason", Text),
    Column("version", Integer, nullable=False),
    Column("judge_state", Text, nullable=False),
    # The canary weight last *observed* on the target (None: never applied). The engine drives
    # the target until it matches the state's claim, so a failed call never becomes a lie.
    Column("applied_weight", Integer),
    # A move (step or promotion) asked of the target and not yet confirmed: JSON, or NULL.
    # Written and committed before the target call, so a crash in between leaves the intent.
    Column("pending_move", Text),
    # Where the looks stand in the ledger (JSON ``LookMark``, or NULL): a look repeating the last
    # verdict is written compactly over the step's last full look (ledger/compact.py).
    Column("last_look", Text),
    # Lease: which replica works on this rollout, and until when (replicas coordinate here).
    Column("acquired_by", String(128)),
    Column("acquired_until", DateTime(timezone=True)),
    Index("ix_rollouts_due", "state", "next_tick_at"),
    Index("ix_rollouts_model", "model", "created_at"),
    # At most one active rollout per model.
    Index(
        "uq_rollouts_one_active_per_model",
        "model",
        unique=True,
        postgresql_where=text("state IN ('pending', 'progressing')"),
        sqlite_where=text("state IN ('pending', 'progressing')"),
    ),
)


# One row per watched registered model: which replica polls it until when (challengers.py).
registry_watch_leases = Table(
    "registry_watch_leases",
    metadata,
    Column("registered_model", String(255), primary_key=True),
    Column("leased_by", String(128), nullable=False),
    Column("leased_until", DateTime(timezone=True), nullable=False),
)
