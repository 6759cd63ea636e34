"""The pages' own tables (migration 0016): what each look entry says, and the charts drawn
from a rollout's looks; derived caches.

``ui_look_summaries`` keeps, per ``analysis_recorded`` entry, what the rollout page reads of it
(``look_store.py``): made only from a payload that hashes to the entry's hash, and used only
while the entry's hash (and a compact look's base's) is still the one it was made from.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

metadata = MetaData()

ui_look_summaries = Table(
    "ui_look_summaries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),  # the entry's hash when the row was made
    Column("base_seq", BigInteger),  # a compact look's base entry (ledger/compact.py)
    Column("base_hash", String(64)),  # and its hash then
    Column("version", Integer, nullable=False),  # look_store.VERSION: how the summary was made
    Column("summary", Text, nullable=False),  # JSON: {"parts": LookParts | null, "line": str}
)

ui_look_charts = Table(
    "ui_look_charts",
    metadata,
    Column("rollout_id", String(64), primary_key=True),
    # sha256 of the (seq, hash) of every look the charts were drawn from (look_store.digest)
    Column("looks_digest", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("charts", Text, nullable=False),  # JSON of pictures.LookCharts: data, never markup
)
