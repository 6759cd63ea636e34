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
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Literal

from fastapi.responses import StreamingResponse

from analyzer.api.auth import ensure_namespace
from analyzer.domain.errors import InvalidInputError, PermissionDeniedError
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.export import CSV_COLUMNS, entry_json, iter_selected
from analyzer.ledger.store import Ledger, Page, ServingAnswer, encode_cursor
from analyzer.rollouts.control import Actor

ExportFormat = Literal["json", "csv"]


def aware(value: datetime | None, field: str) -> datetime | None:
    """``value`` unchanged, or ``InvalidInputError`` naming ``field`` when it has no zone."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidInputError(
            "needs a time zone, e.g. 2026-03-04T02:13:00Z or +01:00", field=field
        )
    return value


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
    """Every selected entry with its payload and hashes, streamed as JSON or CSV."""
    entries = iter_selected(
        ledger,
        model=scoped_model(actor, model),
        since=aware(since, "since"),
        until=aware(until, "until"),
    )
    if format == "csv":
        return StreamingResponse(_csv_chunks(entries), media_type="text/csv; charset=utf-8")
    return StreamingResponse(_json_chunks(entries), media_type="application/json")


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
