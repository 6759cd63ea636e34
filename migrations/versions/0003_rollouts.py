"""Driven rollouts: durable state, judge state, leases.

Revision ID: 0003_rollouts
Revises: 0002_analysis_sessions
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_rollouts"
down_revision = "0002_analysis_sessions"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("state IN ('pending', 'progressing')")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("model", sa.String(320), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("baseline_revision", sa.String(253), nullable=False),
        sa.Column("canary_revision", sa.String(253), nullable=False),
        sa.Column("profile", sa.String(128), nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("initiator", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True)),
        sa.Column("analysis_started_at", sa.DateTime(timezone=True)),
        sa.Column("next_tick_at", sa.DateTime(timezone=True)),
        sa.Column("change_request", sa.String(64)),
        sa.Column("artifact_uri", sa.String(1024)),
        sa.Column("consecutive_errors", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("judge_state", sa.Text, nullable=False),
        sa.Column("applied_weight", sa.Integer),
        sa.Column("acquired_by", sa.String(128)),
        sa.Column("acquired_until", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_rollouts_due", "rollouts", ["state", "next_tick_at"])
    op.create_index("ix_rollouts_model", "rollouts", ["model", "created_at"])
    op.create_index(
        "uq_rollouts_one_active_per_model", "rollouts", ["model"], unique=True,
        postgresql_where=_ACTIVE, sqlite_where=_ACTIVE,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("rollouts")
