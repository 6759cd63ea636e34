"""Analysis sessions of the Argo web-provider endpoint: judge state and the cached last answer.

Revision ID: 0002_analysis_sessions
Revises: 0001_ledger
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_analysis_sessions"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysis_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("model", sa.String(253), nullable=False),
        sa.Column("canary", sa.String(253), nullable=False),
        sa.Column("baseline", sa.String(253), nullable=False),
        sa.Column("profile_key", sa.String(160), nullable=False),
        sa.Column("profile_name", sa.String(128), nullable=False),
        sa.Column("rollout", sa.String(253)),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("looks", sa.Integer, nullable=False),
        sa.Column("judge_state", sa.Text, nullable=False),
        sa.Column("last_result", sa.Text),
        sa.Column("last_verdict", sa.String(16)),
        sa.Column("last_look_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "namespace", "model", "canary", "baseline", "profile_key",
            name="uq_analysis_sessions_key",
        ),
    )  # fmt: skip
    op.create_index(
        "ix_analysis_sessions_model_updated",
        "analysis_sessions",
        ["namespace", "model", "updated_at"],
    )


def downgrade() -> None:
    op.drop_table("analysis_sessions")
