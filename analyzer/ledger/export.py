"""Ledger export as JSON or CSV, streamed page by page.

Each exported entry carries its payload and both hashes, so an auditor can re-verify a full
export offline (the payload is the hashed text, byte for byte).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord, format_time
from analyzer.ledger.store import Ledger

CSV_COLUMNS = (
    "seq", "recorded_at", "event_type", "schema_version", "actor", "model", "rollout_id",
    "revision", "payload", "prev_hash", "hash",
)  # fmt: skip


def entry_json(entry: EntryRecord) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "recorded_at": format_time(entry.recorded_at),
        "event_type": entry.event_type,
        "schema_version": entry.schema_version,
        "actor": entry.actor,
        "model": entry.model,
        "rollout_id": entry.rollout_id,
        "revision": entry.revision,
        "data": entry.stored_data(),  # as hashed
        "payload": entry.payload,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    } | ({"expanded": entry.data()} if entry.expanded is not None else {})


def iter_selected(
    ledger: Ledger, *, model: ModelRef | None, since: datetime | None, until: datetime | None
) -> Iterator[EntryRecord]:
    cursor: str | None = None
    while True:
        page = ledger.events(model=model, since=since, until=until, cursor=cursor, limit=1000)
        yield from page.entries
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def write_json(entries: Iterator[EntryRecord], out: TextIO) -> int:
    count = 0
    out.write("[")
    for entry in entries:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(entry_json(entry), sort_keys=True, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_csv(entries: Iterator[EntryRecord], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for entry in entries:
        row = entry_json(entry)
        writer.writerow([row[c] if row[c] is not None else "" for c in CSV_COLUMNS])
        count += 1
    return count
