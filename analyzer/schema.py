"""Every table's metadata, for Alembic's environment and the schema-agreement test.

Each part of the service describes its own tables; migrations create them. Add a part's
``MetaData`` here when it gains tables.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from analyzer.analyses.tables import metadata as analyses_metadata
from analyzer.api.ui.tables import metadata as ui_metadata
from analyzer.fleets.tables import metadata as fleets_metadata
from analyzer.ledger.tables import metadata as ledger_metadata
from analyzer.observer.tables import metadata as observer_metadata
from analyzer.rollouts.tables import metadata as rollouts_metadata

ALL_METADATA: list[MetaData] = [
    ledger_metadata,
    analyses_metadata,
    rollouts_metadata,
    observer_metadata,
    fleets_metadata,
    ui_metadata,
]
