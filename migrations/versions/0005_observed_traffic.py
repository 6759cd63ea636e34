"""The traffic observer's last observation per watched object.

Revision ID: 0005_observed_traffic
Revises: 0004_rollout_model_version
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_observed_traffic"
down_revision = "0004_rollout_model_version"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observed_objects",
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("model", sa.String(320), nullable=False),
        sa.Column("split", sa.Text, nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    # The ledger keeps every observed traffic change; only the dedup state goes.
    op.drop_table("observed_objects")
