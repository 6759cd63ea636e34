"""The analysis-session table: one row per (model, canary, baseline, profile) the API judges.

Argo Rollouts asks the same question every ``interval``; the row carries the judge's sequential
state from one look to the next (so evidence accumulates and repeated looks stay valid) and the
last answer (so calls inside the cache TTL are answered without querying the metric source).
Created by the Alembic migrations ``0002_analysis_sessions``, ``0006_analysis_bake`` and
``0015_analysis_look_base``; a test checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

analysis_sessions = Table(
    "analysis_sessions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("namespace", String(63), nullable=False),
    Column("model", String(253), nullable=False),
    Column("canary", String(253), nullable=False),
    Column("baseline", String(253), nullable=False),
    # Profile name plus a digest of its content: an edited profile starts a fresh session
    # rather than continuing sequential state computed under different settings.
    Column("profile_key", String(160), nullable=False),
    Column("profile_name", String(128), nullable=False),
    Column("rollout", String(253)),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("looks", Integer, nullable=False),
    Column("judge_state", Text, nullable=False),
    Column("last_result", Text),
    Column("last_verdict", String(16)),
    Column("last_look_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The bake the caller planned (0006_analysis_bake): ``bake_looks`` looks over
    # ``bake_seconds`` from the session's first call; null for horizon-free sessions.
    Column("bake_looks", Integer),
    Column("bake_seconds", Float),
    # The seq of the session's last whole look (0015_analysis_look_base): a look repeating the
    # previous one's verdicts is written compactly over it (ledger/compact.py); null: none yet.
    Column("look_base_seq", BigInteger),
    UniqueConstraint(
        "namespace", "model", "canary", "baseline", "profile_key", name="uq_analysis_sessions_key"
    ),
)
Index(
    "ix_analysis_sessions_model_updated",
    analysis_sessions.c.namespace,
    analysis_sessions.c.model,
    analysis_sessions.c.updated_at,
)
