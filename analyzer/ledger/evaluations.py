"""Reading CI's ``evaluation_recorded`` entries of one model back from the ledger.

The entries are indexed by model and event type; the registry version lives in each entry's data,
so the pages of a model's evaluations are walked newest first and filtered by version. Used by
the evaluations API (listing) and by the evaluation gate's ledger source (``analyzer.wiring``).
"""

from __future__ import annotations

from analyzer.domain.errors import ConflictError
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.store import Ledger

PAGE = 1000
# A model with more evaluation entries than this is a runaway CI loop; refusing to read further
# keeps one request bounded (the gate then stays closed, saying the results could not be read).
MAX_SCANNED = 50_000


class TooManyEvaluationsError(ConflictError):
    """More evaluation entries for one model than one read may walk (API 409, gate closed)."""


def evaluation_entries(
    ledger: Ledger,
    model: ModelRef,
    *,
    model_version: str | None = None,
    suite: str | None = None,
    limit: int | None = None,
) -> list[EntryRecord]:
    """``evaluation_recorded`` entries of ``model`` (optionally one version and suite), newest
    first, at most ``limit`` of them (all when None)."""
    found: list[EntryRecord] = []
    cursor: str | None = None
    scanned = 0
    while True:
        page = ledger.events(
            model=model,
            event_types=[EventType.EVALUATION_RECORDED],
            cursor=cursor,
            limit=PAGE,
            newest_first=True,
        )
        for entry in page.entries:
            data = entry.data()
            if model_version is not None and data.get("model_version") != model_version:
                continue
            if suite is not None and data.get("suite") != suite:
                continue
            found.append(entry)
            if limit is not None and len(found) >= limit:
                return found
        scanned += len(page.entries)
        if page.next_cursor is None:
            return found
        if scanned >= MAX_SCANNED:
            raise TooManyEvaluationsError(
                f"{model} has more than {MAX_SCANNED} evaluation entries; read fewer"
            )
        cursor = page.next_cursor
