"""Analysis sessions remember the seq of their last whole look (issue 20: compact Argo looks).

A fresh look of the Argo endpoint that repeats the previous look's verdicts is written as a
compact ``analysis_recorded`` entry: the delta of its result over the session's last *whole*
look, whose seq ``look_base_seq`` names (as ``rollouts.last_look`` does for driven rollouts).
``ledger/compact.py`` expands it on reading. NULL (every existing row) just means the next look
is written whole.

Revision ID: 0015_analysis_look_base
Revises: 0014_registry_watch_leases
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_analysis_look_base"
down_revision = "0014_registry_watch_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("analysis_sessions", sa.Column("look_base_seq", sa.BigInteger()))


def downgrade() -> None:
    op.drop_column("analysis_sessions", "look_base_seq")
