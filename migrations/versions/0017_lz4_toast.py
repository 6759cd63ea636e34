"""PostgreSQL: the large text columns compressed with lz4 instead of pglz.

Every ledger entry's payload (1.5–5 kB of JSON) and every look's session or rollout state is
compressed by PostgreSQL as it is written (TOAST, above ~2 kB). With the default ``pglz`` that
compression is a large part of a batch's insert, and the ledger's inserts run while the
ledger head's row lock is held, so it is time no other writer can append in. ``lz4`` (built
into Debian's and the official PostgreSQL 14+ packages) compresses the same payloads several
times faster and decompresses them faster for the pages and ``ledger verify``: the insert of a
500-entry batch of 2.7 kB looks went from ~35 to ~25 ms (docs/benchmarks.md, *Driven
rollouts: one replica against two*).

Only the column's setting changes: nothing is rewritten, values already stored stay pglz and
are read as before, and the stored text (so every hash) is the same either way. A server
built without lz4 keeps pglz (checked, not assumed). SQLite has no such setting.

Revision ID: 0017_lz4_toast
Revises: 0016_ui_look_summaries
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0017_lz4_toast"
down_revision = "0016_ui_look_summaries"
branch_labels = None
depends_on = None

# The text columns that hold documents (the small ones, names and reasons, stay as they are).
COLUMNS = (
    ("ledger_entries", "payload"),
    ("analysis_sessions", "judge_state"),
    ("analysis_sessions", "last_result"),
    ("rollouts", "plan"),
    ("rollouts", "judge_state"),
    ("rollouts", "last_look"),
    ("fleet_rollouts", "spec"),
    ("fleet_rollouts", "state"),
    ("fleet_looks", "summary"),
    ("ui_look_charts", "charts"),
    ("ui_look_summaries", "summary"),
)


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    offered = bind.execute(
        text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    if method not in (offered or ()):
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
