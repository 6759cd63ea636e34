"""Writing an Argo session's fresh looks compactly: a look that repeats the previous look's
verdicts records what changed (issue 20), as driven rollouts' looks do (rollouts/compaction.py).

A session's row names its last *whole* look (``look_base_seq``). A fresh look whose verdicts
equal the previous look's (``ledger/compact.verdicts_of``) is written as the compact form of
its data over that whole look's result (``ledger/compact.compact_data``): exact, so
``ledger verify`` proves it and every reader (``Ledger.events``/``entry``: the API, the UI, the
evidence packs) expands it back to the whole look. Anything else is written whole and becomes
the session's new base.

The base is kept here per session, as this process last wrote or read it, cut once into its
shape and leaf tokens (``ledger/compact_base.CompactBase``: 5.2 kB for a 5-metric look whose
canonical text is 4.3 kB, and 2.1 kB more once a look has packed over it: its old floats' bits
and decimal powers), so a look neither decodes its base nor walks both results again;
it is used only while the session's row names its seq as the base. A session this process
does not know (a restart, another replica wrote its last whole look) reads it from the ledger
by seq (one primary-key lookup), and a base that is not that session's whole look means the
look is written whole: never a lost look.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from analyzer.domain.events import EventType
from analyzer.ledger.compact import base_of, verdicts_of
from analyzer.ledger.compact_base import CompactBase
from analyzer.ledger.tables import ledger_entries
from analyzer.lru import BoundedLru

ANALYSIS = EventType.ANALYSIS_RECORDED.value


class SessionLookBases:
    """Compacts the fresh looks of analysis sessions; thread-safe, one per service."""

    def __init__(self, *, cache_size: int = 10_000, enabled: bool = True) -> None:
        self._enabled = enabled
        self._bases: BoundedLru[int, CompactBase] = BoundedLru(cache_size)  # session -> whole look

    def compact(
        self,
        conn: Connection,
        *,
        session_id: int,
        base_seq: int | None,
        previous: Mapping[str, Any] | None,
        data: Mapping[str, Any],
        stored: str | None = None,
    ) -> dict[str, Any] | None:
        """``data`` (a fresh look's) in compact form over the session's base entry, or None
        when it is to be written whole: no base, other verdicts than the previous look's, or a
        result whose shape or size does not pay. ``stored``: the canonical text of its result,
        when the caller has it."""
        result = data.get("result")
        if (
            not self._enabled
            or base_seq is None
            or previous is None
            or not isinstance(result, Mapping)
            or verdicts_of(previous) != verdicts_of(result)
        ):
            return None
        base = self._base(conn, session_id, base_seq)
        if base is None:
            return None
        return base.compact(data, stored=stored)

    def written(
        self, session_id: int, seq: int, data: Mapping[str, Any], *, stored: str | None = None
    ) -> None:
        """Remember the whole look just appended at ``seq`` as the session's base (``stored``:
        the canonical text of its result, when the caller has it)."""
        result = data.get("result")
        if self._enabled and isinstance(result, Mapping):
            self._remember(session_id, CompactBase.of(seq, result, stored=stored))

    def _base(self, conn: Connection, session_id: int, seq: int) -> CompactBase | None:
        known = self._bases.get(session_id)
        if known is not None and known.seq == seq:
            return known
        t = ledger_entries.c
        found = conn.execute(select(t.event_type, t.payload).where(t.seq == seq)).first()
        if found is None or found.event_type != ANALYSIS:
            return None
        data = json.loads(found.payload).get("data")
        result = data.get("result") if isinstance(data, Mapping) else None
        # a base is this session's whole look, never another's or a compact one
        if (
            not isinstance(result, Mapping)
            or data.get("session") != session_id
            or base_of(data) is not None
        ):
            return None
        base = CompactBase.of(seq, result)
        self._remember(session_id, base)
        return base

    def _remember(self, session_id: int, base: CompactBase) -> None:
        self._bases.put(session_id, base)
