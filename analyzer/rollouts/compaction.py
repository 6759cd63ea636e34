"""Writing a rollout's looks compactly: a look that repeats the last verdict records what changed.

The engine hands each write's rollouts and events here inside its transaction (rows locked):

1. :meth:`LookCompactor.prepare` replaces each ``analysis_recorded`` event whose verdicts equal
   the rollout's last look's (``Rollout.last_look``, same step) by its compact form over a whole
   look of that rollout and step (``ledger/compact.py``), and gives each rollout its new
   ``LookMark``. The engine saves the rows, then appends the entries *last*: the ledger head's
   lock (one for every writer, in every replica) is held only from the append to the commit.
2. After the append, :meth:`LookCompactor.appended` remembers the whole looks just written.

So the mark of a whole look cannot name its own seq (not known before the append): its
``base_seq`` is None, meaning "the rollout's latest look, which is whole". The next look finds
that base in this process's memory of the looks it wrote, else reads the rollout's latest
``analysis_recorded`` entry (one index seek per rollout). Any whole look of the same rollout and
step is a valid base (the packed changes are exact against whichever base they name), so a base
remembered here is never wrong; it is used for a mark without a seq only when the row was not
written since (its version), else the ledger is asked for the latest.

A base that cannot be found, or packed changes not much smaller than the result, simply mean
the look is written whole (and becomes the new base): never a lost look.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, select

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import LookMark, Rollout
from analyzer.ledger.chain import EntryRecord, canonical_json
from analyzer.ledger.compact import base_of, verdicts_of
from analyzer.ledger.compact_base import CompactBase
from analyzer.ledger.tables import ledger_entries
from analyzer.lru import BoundedLru

ANALYSIS = EventType.ANALYSIS_RECORDED


def verdict_text(result: Mapping[str, Any]) -> str:
    """The canonical text of a result's verdicts (what ``LookMark.verdicts`` holds)."""
    return canonical_json(verdicts_of(result))


@dataclass(frozen=True, kw_only=True, slots=True)
class _Base:
    step: int
    # the result cut once into its shape and leaf tokens (about the memory of its canonical
    # text), with the look's seq: a look compacted over it decodes neither it nor itself
    result: CompactBase
    # the rollout row's version saved with this look (None: read from the ledger): a mark
    # without a seq names this look only if the row was not written since
    version: int | None = None

    @property
    def seq(self) -> int:
        return self.result.seq


@dataclass(frozen=True, kw_only=True, slots=True)
class Written:
    """One rollout to save (with its new ``last_look``) and its events for the ledger:
    ``compacted`` has the same length as ``full``, with compact looks in place of whole ones."""

    rollout: Rollout
    compacted: list[LedgerEvent]
    full: list[LedgerEvent]


class LookCompactor:
    """Compacts repeated looks; thread-safe, one per engine (its memory is per process)."""

    def __init__(self, *, cache_size: int = 10_000, enabled: bool = True) -> None:
        self._enabled = enabled
        # rollout id -> the latest whole look this process wrote or read for it
        self._bases: BoundedLru[str, _Base] = BoundedLru(cache_size)

    def prepare(
        self, conn: Connection, items: Sequence[tuple[Rollout, list[LedgerEvent]]]
    ) -> list[Written]:
        """Each (rollout as it will be saved, its events) with repeated looks made compact and
        the rollout's new ``last_look``."""
        wanted = [
            rollout
            for rollout, events in items
            if self._enabled and rollout.last_look is not None and _look_of(events) is not None
        ]
        bases = self._bases_of(conn, wanted)
        return [self._prepared(rollout, events, bases.get(rollout.id)) for rollout, events in items]

    def _prepared(self, rollout: Rollout, events: list[LedgerEvent], base: _Base | None) -> Written:
        compacted, mark = [], rollout.last_look
        for event in events:
            result = event.data.get("result") if event.type is ANALYSIS else None
            if not isinstance(result, Mapping):
                compacted.append(event)
                continue
            step = int(event.data.get("step", rollout.step_index))
            verdicts = verdict_text(result)
            data = None
            if (
                base is not None
                and mark is not None
                and mark.step == step == base.step
                and mark.verdicts == verdicts
            ):
                data = base.result.compact(event.data)
            if data is None:  # whole: the base of the looks that repeat it
                compacted.append(event)
                mark = LookMark(base_seq=None, step=step, verdicts=verdicts)
            else:
                compacted.append(replace(event, data=data))
                mark = LookMark(base_seq=base.seq if base else None, step=step, verdicts=verdicts)
        updated = replace(rollout, last_look=mark) if mark is not rollout.last_look else rollout
        return Written(rollout=updated, compacted=compacted, full=events)

    def appended(self, written: Sequence[Written], records: Sequence[EntryRecord]) -> None:
        """Remember the whole looks among ``records`` (what the ledger appended for
        ``written``'s compacted events, in order) as their rollouts' bases."""
        position = 0
        for item in written:
            for compacted in item.compacted:
                record = records[position]
                position += 1
                result = compacted.data.get("result") if compacted.type is ANALYSIS else None
                if isinstance(result, Mapping) and self._enabled:
                    step = int(compacted.data.get("step", item.rollout.step_index))
                    cut = CompactBase.of(record.seq, result)
                    base = _Base(step=step, result=cut, version=item.rollout.version)
                    self._remember(item.rollout.id, base)

    def _remember(self, rollout_id: str, base: _Base) -> None:
        self._bases.put(rollout_id, base)

    def _bases_of(self, conn: Connection, rollouts: Sequence[Rollout]) -> dict[str, _Base]:
        """The base each rollout's mark names: remembered, else read (one query per kind)."""
        found: dict[str, _Base] = {}
        by_seq: dict[int, Rollout] = {}
        latest: list[Rollout] = []
        for rollout in rollouts:
            mark = rollout.last_look
            assert mark is not None, "only rollouts with a mark are asked for"
            known = self._bases.get(rollout.id)
            if known is not None and (
                mark.base_seq == known.seq
                or (mark.base_seq is None and known.version == rollout.version - 1)
            ):
                found[rollout.id] = known
            elif mark.base_seq is not None:
                by_seq[mark.base_seq] = rollout
            else:
                latest.append(rollout)
        t = ledger_entries.c
        rows: list[Any] = []
        if by_seq:
            query = select(t.seq, t.rollout_id, t.payload).where(
                t.seq.in_(sorted(by_seq)), t.event_type == ANALYSIS.value
            )
            rows += conn.execute(query).all()
        for rollout in latest:  # rare: a whole look another process (or a restart) wrote
            query = (
                select(t.seq, t.rollout_id, t.payload)
                .where(t.rollout_id == rollout.id, t.event_type == ANALYSIS.value)
                .order_by(t.seq.desc())
                .limit(1)
            )
            rows += conn.execute(query).all()
        asked = {seq: r.id for seq, r in by_seq.items()}
        for seq, rollout_id, payload in rows:
            base = _base_from(int(seq), payload)
            if base is None or asked.get(int(seq), rollout_id) != rollout_id:
                continue  # a base names its own rollout's entry, never another's
            found[str(rollout_id)] = base
            self._remember(str(rollout_id), base)
        return found


def _base_from(seq: int, payload: str) -> _Base | None:
    """A whole look's entry as a base; None for a compact one (never a base) or no result."""
    data = json.loads(payload).get("data", {})
    result = data.get("result") if isinstance(data, Mapping) else None
    if not isinstance(result, Mapping) or base_of(data) is not None:
        return None
    return _Base(step=int(data.get("step", -1)), result=CompactBase.of(seq, result))


def _look_of(events: Sequence[LedgerEvent]) -> LedgerEvent | None:
    return next((e for e in events if e.type is ANALYSIS), None)
