"""What each look entry says, kept for the rollout page: a derived, checkable cache.

A rollout page draws every look of the rollout; decoding 500 judge results (~2 MB of payload)
on every request of a page nobody had opened since the process started cost most of its time
(docs/ui.md, *Speed*). This table keeps, per ``analysis_recorded`` entry, the few numbers the
pictures read and the timeline's one-line summary, made from the entry's payload **only when
that payload hashes to the entry's hash** (and, for a compact look, its base's too). A row is
used only while the entry's stored hash (and its base's) is still the one it was made from, so
it can never say something the hashed entry does not; anyone can re-derive it from the entry.

``ui_look_charts`` keeps, per rollout, the charts drawn from its looks alone (evidence, score,
confidence sequences) as data (escaped when written into a page, like any recorded text), under
the digest of the (seq, hash) of every look they were drawn from, all of them proven as above.

Revision ID: 0016_ui_look_summaries
Revises: 0015_analysis_look_base
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_ui_look_summaries"
down_revision = "0015_analysis_look_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_look_summaries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("base_seq", sa.BigInteger, nullable=True),
        sa.Column("base_hash", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )
    op.create_table(
        "ui_look_charts",
        sa.Column("rollout_id", sa.String(64), primary_key=True),
        sa.Column("looks_digest", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("charts", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ui_look_charts")
    op.drop_table("ui_look_summaries")
