"""Leases of the challenger-alias poller: one replica polls a registered model at a time.

The poller (analyzer/rollouts/challengers.py) starts a rollout when a version of a watched
registered model gets the ``challenger`` alias. Any number of replicas run it; each poll of a
registered model first takes its lease here (``leased_by``, ``leased_until``), as the engine's
ticks claim rollouts, so one replica asks the registry and starts the rollout while the others
skip it until the lease runs out.

Revision ID: 0014_registry_watch_leases
Revises: 0010_rollout_last_look
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_registry_watch_leases"
down_revision = "0010_rollout_last_look"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_watch_leases",
        sa.Column("registered_model", sa.String(255), primary_key=True),
        sa.Column("leased_by", sa.String(128), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("registry_watch_leases")
