"""Rollouts name the canary's registry version and artifact digest.

Both columns are nullable: rollouts started before this migration named neither, and a rollout
without a model version still runs (the ServiceNow gate closes for it when a version field is
configured, saying what to pass).

Revision ID: 0004_rollout_model_version
Revises: 0003_rollouts
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_rollout_model_version"
down_revision = "0003_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollouts", sa.Column("model_version", sa.String(128)))
    op.add_column("rollouts", sa.Column("artifact_digest", sa.String(135)))


def downgrade() -> None:
    # Drops the values with the columns; the ledger's revision_registered and rollout_started
    # entries keep them.
    op.drop_column("rollouts", "artifact_digest")
    op.drop_column("rollouts", "model_version")
