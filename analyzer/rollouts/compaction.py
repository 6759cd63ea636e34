"""Writing a rollout's looks compactly: a look that repeats the last verdict records what changed.

The engine hands each write's rollouts and events here inside its transaction (rows locked):

1. :meth:`LookCompactor.compact` replaces each ``analysis_recorded`` event whose verdicts equal
   the rollout's last look's (``Rollout.last_look``, same step) by its compact form over the
   step's last full look (``ledger/compact.py``). The bases' results come from a bounded
   per-process cache, else from the ledger by seq (one query for the whole batch), so a replica
   that did not write the base, or a restarted one, still writes compactly.
2. After the append, :meth:`LookCompactor.marks` gives each rollout its new ``LookMark``.

A base whose result cannot be read, or a delta not much smaller than the result, simply means
the look is written in full (and becomes the new base): never a lost look.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, select

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import LookMark, Rollout
from analyzer.ledger.chain import EntryRecord, canonical_json
from analyzer.ledger.compact import base_of, compact_data, verdicts_of
from analyzer.ledger.tables import ledger_entries

ANALYSIS = EventType.ANALYSIS_RECORDED


def verdict_text(result: Mapping[str, Any]) -> str:
    """The canonical text of a result's verdicts (what ``LookMark.verdicts`` holds)."""
    return canonical_json(verdicts_of(result))


@dataclass(frozen=True, kw_only=True, slots=True)
class Written:
    """One rollout's events as handed to the ledger: ``compacted`` has the same length as the
    events given, with compact looks in place of full ones."""

    rollout: Rollout
    compacted: list[LedgerEvent]
    full: list[LedgerEvent]


class LookCompactor:
    """Compacts repeated looks; thread-safe, one per engine (its cache is per process)."""

    def __init__(self, *, cache_size: int = 10_000, enabled: bool = True) -> None:
        self._enabled = enabled
        # base seq -> the base look's result as canonical JSON text (text: a tenth of the memory
        # of the decoded dict; decoding one costs ~30 µs)
        self._bases: OrderedDict[int, str] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def compact(
        self, conn: Connection, items: Sequence[tuple[Rollout, list[LedgerEvent]]]
    ) -> list[Written]:
        """Each (rollout as it will be saved, its events) with repeated looks made compact."""
        wanted = [
            rollout.last_look.base_seq
            for rollout, events in items
            if self._enabled and rollout.last_look is not None and _look_of(events) is not None
        ]
        bases = self._results(conn, wanted)
        written = []
        for rollout, events in items:
            compacted = [self._compacted(rollout, event, bases) for event in events]
            written.append(Written(rollout=rollout, compacted=compacted, full=events))
        return written

    def _compacted(
        self, rollout: Rollout, event: LedgerEvent, bases: Mapping[int, str]
    ) -> LedgerEvent:
        mark = rollout.last_look
        result = event.data.get("result") if event.type is ANALYSIS else None
        if not self._enabled or mark is None or not isinstance(result, Mapping):
            return event
        if event.data.get("step") != mark.step or verdict_text(result) != mark.verdicts:
            return event
        base = bases.get(mark.base_seq)
        if base is None:
            return event
        data = compact_data(event.data, base_seq=mark.base_seq, base_result=json.loads(base))
        return event if data is None else replace(event, data=data)

    def marks(self, written: Sequence[Written], records: Sequence[EntryRecord]) -> list[Rollout]:
        """Each written rollout with its new ``last_look`` (``records``: what the ledger appended
        for ``written``'s compacted events, in order); full looks become cached bases."""
        position, updated = 0, []
        for item in written:
            rollout = item.rollout
            for compacted, full in zip(item.compacted, item.full, strict=True):
                record = records[position]
                position += 1
                result = full.data.get("result") if full.type is ANALYSIS else None
                if not isinstance(result, Mapping):
                    continue
                base = base_of(compacted.data)
                if base is None:
                    base = record.seq
                    self._remember(record.seq, canonical_json(result))
                step = int(full.data.get("step", rollout.step_index))
                mark = LookMark(base_seq=base, step=step, verdicts=verdict_text(result))
                rollout = replace(rollout, last_look=mark)
            updated.append(rollout)
        return updated

    def _remember(self, seq: int, text: str) -> None:
        with self._lock:
            self._bases[seq] = text
            self._bases.move_to_end(seq)
            while len(self._bases) > self._size:
                self._bases.popitem(last=False)

    def _results(self, conn: Connection, seqs: Sequence[int]) -> dict[int, str]:
        """The results of the base looks at ``seqs``: cached, else read (one query)."""
        found: dict[int, str] = {}
        with self._lock:
            for seq in seqs:
                text = self._bases.get(seq)
                if text is not None:
                    found[seq] = text
        missing = sorted(set(seqs) - found.keys())
        if not missing:
            return found
        t = ledger_entries.c
        rows = conn.execute(
            select(t.seq, t.payload).where(t.seq.in_(missing), t.event_type == ANALYSIS.value)
        )
        for seq, payload in rows:
            data = json.loads(payload).get("data", {})
            result = data.get("result") if isinstance(data, Mapping) else None
            if isinstance(result, Mapping) and base_of(data) is None:
                found[int(seq)] = canonical_json(result)
                self._remember(int(seq), found[int(seq)])
        return found


def _look_of(events: Sequence[LedgerEvent]) -> LedgerEvent | None:
    return next((e for e in events if e.type is ANALYSIS), None)
