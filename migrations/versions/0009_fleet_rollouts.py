"""Fleet rollouts: many models upgraded in waves and judged together (issue 17).

``fleet_rollouts`` holds each fleet rollout's spec and state (JSON: waves, each model's phase,
the stopped e-values of models rolled back); ``fleet_looks`` one row per look (the fleet's
verdicts over time). Every model's move is in the ledger, not here.

Revision ID: 0009_fleet_rollouts
Revises: 0007_rollout_pending_move
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_fleet_rollouts"
down_revision = "0007_rollout_pending_move"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('progressing', 'held')")


def upgrade() -> None:
    op.create_table(
        "fleet_rollouts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("initiator", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_look_at", sa.DateTime(timezone=True)),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_fleet_rollouts_due", "fleet_rollouts", ["status", "next_look_at"])
    op.create_index(
        "uq_fleet_rollouts_one_active",
        "fleet_rollouts",
        ["namespace", "name"],
        unique=True,
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )
    op.create_table(
        "fleet_looks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fleet_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rollbacks", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
    )
    op.create_index("ix_fleet_looks_fleet", "fleet_looks", ["fleet_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_fleet_looks_fleet", table_name="fleet_looks")
    op.drop_table("fleet_looks")
    op.drop_index("uq_fleet_rollouts_one_active", table_name="fleet_rollouts")
    op.drop_index("ix_fleet_rollouts_due", table_name="fleet_rollouts")
    op.drop_table("fleet_rollouts")
