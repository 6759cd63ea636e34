"""Analysis sessions know their bake: how many looks, over how long.

An Argo AnalysisTemplate may pass its bake (``count`` looks every ``interval``); the session
keeps it from its first call, and each look tells the judge how much of the bake has gone by
(docs/statistics.md, bake-aware analyses). Both columns are nullable: sessions without a bake
judge horizon-free, as before.

Revision ID: 0006_analysis_bake
Revises: 0005_observed_traffic
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_analysis_bake"
down_revision = "0005_observed_traffic"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("analysis_sessions", sa.Column("bake_looks", sa.Integer))
    op.add_column("analysis_sessions", sa.Column("bake_seconds", sa.Float))


def downgrade() -> None:
    op.drop_column("analysis_sessions", "bake_seconds")
    op.drop_column("analysis_sessions", "bake_looks")
