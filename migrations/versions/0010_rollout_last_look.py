"""Rollouts remember where their looks stand in the ledger (issue 20: compact look entries).

``last_look`` is JSON (``LookMark``): the seq of the step's last full ``analysis_recorded`` entry
and the last look's verdicts. A look that repeats them is written as a compact entry (the delta
of its result over that full entry's), which ``ledger/compact.py`` expands on reading. NULL
(every existing row) just means the next look is written in full.

Revision ID: 0010_rollout_last_look
Revises: 0007_rollout_pending_move
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_rollout_last_look"
down_revision = "0009_fleet_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollouts", sa.Column("last_look", sa.Text()))


def downgrade() -> None:
    op.drop_column("rollouts", "last_look")
