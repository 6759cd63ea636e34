"""Rollouts remember a traffic move they asked the target for and have not confirmed yet.

The engine writes the move (step or promotion) to ``pending_move`` and commits it, with the
analysis and gate evidence behind it, *before* calling the target; the confirmation clears it in a
second transaction. A process that dies between the target call and that commit leaves the
intent behind, and the next tick settles it from what the target really shows (roll forward,
never back). JSON text, NULL when nothing is pending.

Revision ID: 0007_rollout_pending_move
Revises: 0006_analysis_bake
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_rollout_pending_move"
down_revision = "0006_analysis_bake"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollouts", sa.Column("pending_move", sa.Text()))


def downgrade() -> None:
    op.drop_column("rollouts", "pending_move")
