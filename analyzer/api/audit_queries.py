"""The audit queries behind both the JSON API (``audit.py``) and the web pages (``ui/``).

One function per question, each applying the same rules wherever it is asked from: times must
carry a zone, a model must be in the actor's namespaces, and a namespace-scoped actor must name
a model for event queries and exports (the ledger pages by time, so filtering a page afterwards
would break paging and leak how many entries other tenants have).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Literal

import structlog
from fastapi.responses import StreamingResponse

from analyzer.api.auth import ensure_namespace
from analyzer.api.inputs import utc_instant
from analyzer.domain.errors import PermissionDeniedError
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.ledger.anchoring import CheckpointFinding, newest_checkpoint_problem
from analyzer.ledger.chain import EntryRecord, VerifyReport
from analyzer.ledger.checkpoint import CheckpointDirectory, TrustedKeys
from analyzer.ledger.export import CSV_COLUMNS, entry_json
from analyzer.ledger.store import Ledger, Page, ServingAnswer, encode_cursor
from analyzer.rollouts.control import Actor

ExportFormat = Literal["json", "csv"]
log = structlog.get_logger(__name__)


def verify(
    ledger: Ledger, checkpoints: tuple[CheckpointDirectory, TrustedKeys] | None
) -> tuple[VerifyReport, bool, CheckpointFinding | None]:
    """The chain recomputed; then, when a checkpoint directory is configured and the chain
    verifies, compared with the newest signed checkpoint (a tail cut after it verifies on its
    own). Returns the report, whether the checkpoint was compared, and what it found."""
    report = ledger.verify()
    if not report.intact or checkpoints is None:
        return report, False, None
    return report, True, newest_checkpoint_problem(ledger, *checkpoints)


def aware(value: datetime | None, field: str) -> datetime | None:
    """``value`` in UTC, or ``InvalidInputError`` naming ``field`` (no zone, out of range)."""
    return utc_instant(value, field)


def scoped_model(actor: Actor, model: str | None) -> ModelRef | None:
    """The model filter of an event query or export, checked against the actor's namespaces."""
    ref = ModelRef.parse(model) if model is not None else None
    if ref is not None:
        ensure_namespace(actor, ref.namespace)
    elif actor.namespaces is not None:
        raise PermissionDeniedError(
            "your token is limited to namespaces; pass model=NAMESPACE/NAME in one of them"
        )
    return ref


def serving(ledger: Ledger, actor: Actor, model: str, at: datetime) -> ServingAnswer:
    """Which revisions served ``model`` at the instant ``at``."""
    ref = ModelRef.parse(model)
    ensure_namespace(actor, ref.namespace)
    moment = aware(at, "at")
    assert moment is not None
    return ledger.serving_at(ref, moment)


def mirror_at(ledger: Ledger, actor: Actor, model: str, at: datetime) -> EntryRecord | None:
    """The shadow mirror copying ``model``'s requests at ``at`` (docs/strategies.md), if any."""
    ref = ModelRef.parse(model)
    ensure_namespace(actor, ref.namespace)
    moment = aware(at, "at")
    assert moment is not None
    return ledger.mirror_at(ref, moment)


def linked_analysis(ledger: Ledger, actor: Actor, traffic: EntryRecord) -> EntryRecord | None:
    """The last analysis look behind a traffic change, recorded before it.

    A driven rollout's change links its rollout (its latest ``analysis_recorded`` entry); an
    observed change (``source: observed``) links the analysis session judging that canary
    against that baseline, e.g. the one Argo's AnalysisRun asks through ``POST
    /api/v1/analyses`` (its latest look of that session before the change).
    """
    if traffic.model is None:
        return None
    session = (traffic.data().get("links") or {}).get("analysis_session")
    if traffic.rollout_id is None and session is None:
        return None
    cursor = encode_cursor(traffic.recorded_at, traffic.seq)
    for _ in range(20):  # newest first, a bounded walk back
        page = events(
            ledger, actor, model=traffic.model, types=(EventType.ANALYSIS_RECORDED,),
            rollout=traffic.rollout_id if session is None else None,
            newest_first=True, limit=100, cursor=cursor,
        )  # fmt: skip
        for entry in page.entries:
            if session is None or entry.data().get("session") == session:
                return entry
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor
    return None


def events(
    ledger: Ledger,
    actor: Actor,
    *,
    model: str | None = None,
    rollout: str | None = None,
    types: Sequence[EventType] = (),
    by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
    newest_first: bool = False,
) -> Page:
    """One page of ledger entries; ``by`` filters on the recorded actor."""
    return ledger.events(
        model=scoped_model(actor, model),
        rollout_id=rollout,
        event_types=tuple(types),
        actor=by,
        since=aware(since, "since"),
        until=aware(until, "until"),
        cursor=cursor,
        limit=limit,
        newest_first=newest_first,
    )


def export(
    ledger: Ledger,
    actor: Actor,
    *,
    format: ExportFormat,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    """Every selected entry with its payload and hashes, streamed as JSON or CSV.

    Everything that can be refused is checked, and the first page read, before the first
    byte: a bad filter or an unavailable database is a 4xx/5xx answer, never a 200 with a
    cut body. A failure after streaming began aborts the connection without the chunked
    terminator, which every HTTP client reports as an incomplete body.
    """
    selected, start, end = scoped_model(actor, model), aware(since, "since"), aware(until, "until")

    def page(cursor: str | None) -> Page:
        return ledger.events(
            model=selected, since=start, until=end, cursor=cursor, limit=EXPORT_PAGE
        )

    entries = _entries_from(page(None), page)
    if format == "csv":
        return StreamingResponse(
            _aborting(_csv_chunks(entries)), media_type="text/csv; charset=utf-8"
        )
    return StreamingResponse(_aborting(_json_chunks(entries)), media_type="application/json")


EXPORT_PAGE = 1000


def _entries_from(first: Page, page: Callable[[str | None], Page]) -> Iterator[EntryRecord]:
    current = first
    while True:
        yield from current.entries
        if current.next_cursor is None:
            return
        current = page(current.next_cursor)


def _aborting(chunks: Iterator[str]) -> Iterator[str]:
    try:
        yield from chunks
    except Exception as exc:
        # Re-raised: the server then drops the connection mid-body (no chunked terminator).
        log.error("audit.export_aborted", error=f"{type(exc).__name__}: {exc}"[:500])
        raise


def _json_chunks(entries: Iterator[EntryRecord]) -> Iterator[str]:
    # The same layout as `canary-analyzer ledger export`, one entry per line.
    yield "["
    for count, entry in enumerate(entries):
        yield (",\n" if count else "\n") + json.dumps(
            entry_json(entry), sort_keys=True, ensure_ascii=False
        )
    yield "\n]\n"


def _csv_chunks(entries: Iterator[EntryRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = entry_json(entry)
        writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
