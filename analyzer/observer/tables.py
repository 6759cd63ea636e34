"""The observer's table: the last observation recorded per watched object (migration 0005).

One row per (kind, namespace, name). The observer locks it (``SELECT … FOR UPDATE``) and
updates it in the same transaction as the ledger entry it writes, which is what makes the entry
exactly-once across replicas and restarts: a second observer, or a replay after a relist,
finds the resourceVersion it carries already recorded.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

metadata = MetaData()

observed_objects = Table(
    "observed_objects",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("namespace", String(63), primary_key=True),
    Column("name", String(253), primary_key=True),
    Column("uid", String(64), nullable=False),
    Column("resource_version", String(64), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("model", String(320), nullable=False),
    Column("split", Text, nullable=False),  # JSON {revision: percent}, revisions serving > 0 %
    Column("deleted", Integer, nullable=False),  # 1 after a DELETED was recorded
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
