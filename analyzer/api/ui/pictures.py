"""A rollout's pictures from its ledger entries: the traffic staircase with its markers, the
evidence over the looks, each rate metric's confidence sequence, and the last analysis as
charts and a table.

The rollout's entries are read in one query (``look_store.read_rollout``; the model filter is
the audit queries' own, with the same namespace checks as the API) and serve the pictures and
the first page of the rollout's timeline alike; a rollout with more than ``MAX_ENTRIES`` entries
is drawn from its first ``MAX_ENTRIES`` and says so. What each look says is kept in the
database once made from a payload that proves out (``look_store.py``): a page then reads
those summaries instead of the looks' payloads, and the looks' charts once every look is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy.exc import SQLAlchemyError

from analyzer.api import audit_queries
from analyzer.api.deps import Services
from analyzer.api.ui import look_store
from analyzer.api.ui.charts import (
    Chart,
    Look,
    LookParts,
    Marker,
    TrafficPoint,
    evidence_chart,
    look_parts,
    number,
    score_chart,
    sequence_chart,
    traffic_chart,
)
from analyzer.api.ui.evidence import AnalysisEvidence, analysis_evidence
from analyzer.api.ui.look_decoder import DecodedLook, decode_look
from analyzer.api.ui.look_store import (
    StoredLook,
    base_seq,
    keep,
    read_rollout,
    stored_look,
    summary_rows,
)
from analyzer.api.ui.session import Viewer
from analyzer.api.ui.summaries import summary_of
from analyzer.domain.events import EventType
from analyzer.domain.rollout import Rollout
from analyzer.ledger.chain import EntryRecord
from analyzer.lru import BoundedLru

log = structlog.get_logger(__name__)

MAX_ENTRIES = 20_000
PICTURE_TYPES = (
    EventType.TRAFFIC_CHANGED,
    EventType.ANALYSIS_RECORDED,
    EventType.GATE_CHECKED,
    EventType.APPROVAL_GIVEN,
    EventType.APPROVAL_REFUSED,
    EventType.ROLLOUT_ABORTED,
    EventType.ROLLOUT_PROMOTED,
    EventType.ROLLOUT_FAILED,
)
_PICTURE_TYPE_NAMES = frozenset(t.value for t in PICTURE_TYPES)
_ANALYSIS = EventType.ANALYSIS_RECORDED.value  # an enum's .value is a property: read it once
_OUTCOME_KINDS = {
    EventType.ROLLOUT_ABORTED.value: "aborted",
    EventType.ROLLOUT_PROMOTED.value: "promoted",
    EventType.ROLLOUT_FAILED.value: "failed",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class RolloutPictures:
    traffic: Chart
    evidence: Chart | None
    score: Chart | None
    sequences: tuple[Chart, ...]
    last_analysis: AnalysisEvidence | None
    last_analysis_seq: int | None
    looks: int
    truncated: bool
    # seq -> one readable line (or the cached look that makes it when asked), for the entries
    # read here: a page shows the lines of its timeline's entries, not of every look.
    lines: dict[int, str | CachedLook]

    def summary(self, seq: int) -> str | None:
        """The one-line summary of entry ``seq``, when it was read for the pictures."""
        line = self.lines.get(seq)
        return line.summary if isinstance(line, CachedLook) else line


# (seq, stored hash, hash of the payload text read ^ its base's): a look read from its kept
# summary (no payload) is known by its seq and hash, which the summary was proven against.
LookKey = tuple[int, str, int]


def look_key(entry: EntryRecord, base: EntryRecord | None) -> LookKey:
    return (entry.seq, entry.hash,
            hash(entry.payload) ^ (hash(base.payload) if base is not None else 0))  # fmt: skip


class CachedLook:
    """What one analysis entry says. Its one-line summary is made when first asked for (a
    page shows the lines of its timeline's entries, not of every look)."""

    __slots__ = ("_decoded", "_event_type", "_summary", "parts")

    def __init__(
        self,
        parts: LookParts | None,
        event_type: str,
        decoded: DecodedLook | None,
        summary: str,
    ) -> None:
        self.parts = parts
        self._event_type = event_type
        self._decoded = decoded  # the fast path's small subset, kept until the line is made
        self._summary = summary

    @property
    def summary(self) -> str:
        decoded = self._decoded  # read once: another thread may be making the same line
        if decoded is not None:
            self._summary = summary_of(self._event_type, decoded.data())
            self._decoded = None  # after the line is stored, so a reader never sees neither
        return self._summary


class LookCache:
    """What each analysis entry says, by entry: a rollout page redraws every look of a long
    bake on each request, and decoding 500 judge results was most of its time.

    Entries never change (append-only), and the key holds the hash of the payload *text* as
    well as the seq: a row rewritten in the database (which ``verify`` reports) is decoded
    afresh, never shown from the cache. Bounded (least recently used out); per process.
    """

    def __init__(self, size: int = 50_000) -> None:
        self._items: BoundedLru[LookKey, CachedLook] = BoundedLru(size)

    def get(
        self,
        entry: EntryRecord,
        base: EntryRecord | None = None,
        stored: str | None = None,
    ) -> CachedLook:
        """What ``entry`` says; ``base`` is the full look a compact one was expanded from
        (ledger/compact.py), when it was read too: its payload is part of the key, so a
        rewritten base expands afresh as well. ``stored``: what the database keeps of it
        (``look_store.py``, JSON), read instead of its payload."""
        key = look_key(entry, base)
        found = self._items.get(key)
        if found is not None:
            return found
        if stored is not None:
            kept = stored_look(stored)
            made = CachedLook(kept.parts, entry.event_type, None, kept.line)
            self._items.put(key, made)
            return made
        # The fast decoder reads only what the pictures and the summary need; an entry of
        # another shape is read whole (same readers, same answer), and its summary made now
        # rather than keeping the whole decoded entry in the cache. A compact look's payload
        # holds only what changed since its base (ledger/compact.py): its expanded data is read.
        decoded = decode_look(entry.payload) if entry.expanded is None else None
        if decoded is not None:
            made = CachedLook(decoded.parts, entry.event_type, decoded, "")
        else:
            data = entry.data()
            made = CachedLook(look_parts(data), entry.event_type, None,
                              summary_of(entry.event_type, data))  # fmt: skip
        self._items.put(key, made)
        return made

    def clear(self) -> None:
        self._items.clear()


LOOKS = LookCache()


@dataclass(frozen=True, slots=True)
class LookCharts:
    evidence: Chart | None
    score: Chart | None
    sequences: tuple[Chart, ...]


class LookChartsCache:
    """The charts drawn from a rollout's looks alone (evidence, score, confidence sequences), by
    the looks they were drawn from: each look's (seq, hash of its payload text), so a new look
    or a rewritten one draws them afresh. A finished rollout's page is then redrawn from
    here, and its figures' markup (``svg.figure``) is kept with these very objects. Bounded
    (least recently used out); per process."""

    def __init__(self, size: int = 64) -> None:
        self._items: BoundedLru[tuple[LookKey, ...], LookCharts] = BoundedLru(size)

    def known(self, key: tuple[LookKey, ...]) -> bool:
        return self._items.get(key) is not None

    def put(self, key: tuple[LookKey, ...], charts: LookCharts) -> None:
        self._items.put(key, charts)

    def get(self, key: tuple[LookKey, ...], looks: Sequence[Look]) -> LookCharts:
        found = self._items.get(key)
        if found is not None:
            return found
        names = _rate_metrics(looks)
        made = LookCharts(
            evidence=evidence_chart(looks, "evidence") if looks else None,
            score=score_chart(looks, "score") if looks else None,
            sequences=tuple(
                chart
                for index, name in enumerate(names)
                if (chart := sequence_chart(looks, name, f"sequence-{index}")) is not None
            ),
        )
        self._items.put(key, made)
        return made

    def clear(self) -> None:
        self._items.clear()


LOOK_CHARTS = LookChartsCache()
_CHARTS_DECODER = msgspec.json.Decoder(LookCharts)
_CHARTS_ENCODER = msgspec.json.Encoder()


def pictures_of(
    entries: Sequence[EntryRecord],
    *,
    start: datetime,
    end: datetime,
    truncated: bool = False,
    stored: Mapping[int, str] | None = None,
    bases: Mapping[int, EntryRecord] | None = None,
    full_data: Callable[[EntryRecord], dict[str, Any]] | None = None,
    looks_cache: LookCache = LOOKS,
    charts_cache: LookChartsCache = LOOK_CHARTS,
) -> RolloutPictures:
    """Every picture of a rollout from its entries (oldest first), drawn from ``start`` to
    ``end``. ``stored``: what the database keeps of looks read without their payload, by seq;
    ``bases``: compact looks' bases read with their payload apart; ``full_data``: the whole
    data of such a look (the last look's evidence table needs every number)."""
    stored = stored or {}
    points: list[TrafficPoint] = []
    markers: list[Marker] = []
    looks: list[Look] = []
    lines: dict[int, str | CachedLook] = {}
    drawn_looks: list[LookKey] = []  # what each look drawn was read from
    by_seq = {e.seq: e for e in entries if e.event_type == _ANALYSIS}
    by_seq.update(bases or {})
    last: EntryRecord | None = None
    for entry in entries:
        kind = entry.event_type
        if kind == _ANALYSIS:
            base = None
            if entry.expanded is not None and (wanted := base_seq(entry)) is not None:
                base = by_seq.get(wanted)
            cached = looks_cache.get(entry, base, stored.get(entry.seq))
            lines[entry.seq] = cached
            if cached.parts is None:
                continue
            parts = cached.parts
            look = Look(
                number=len(looks) + 1, seq=entry.seq, recorded_at=entry.recorded_at,
                verdict=parts.verdict, score=parts.score, metrics=parts.metrics,
            )  # fmt: skip
            looks.append(look)
            drawn_looks.append(look_key(entry, base))
            last = entry
            markers.append(_marker(entry, f"verdict-{look.verdict}",
                                   f"look {look.number}: {look.verdict}, score "
                                   f"{look.score_text}"))  # fmt: skip
            continue
        data = entry.data()
        if kind == EventType.TRAFFIC_CHANGED.value:
            weight = number(data.get("canary_weight"))
            if weight is not None:
                points.append(
                    TrafficPoint(
                        seq=entry.seq, at=entry.recorded_at, weight=weight,
                        source=str(data.get("source") or "confirmed"),
                        cause=str(data.get("cause") or ""), actor=entry.actor,
                    )
                )  # fmt: skip
        elif kind == EventType.GATE_CHECKED.value:
            state = "open" if data.get("open") is True else "closed"
            label = f"gates {state}: {data.get('reason') or ''}".strip()
            markers.append(_marker(entry, f"gate-{state}", label))
        elif kind == EventType.APPROVAL_GIVEN.value:
            markers.append(_marker(entry, "approval", _approval_label(entry, data)))
        elif kind == EventType.APPROVAL_REFUSED.value:
            markers.append(_marker(entry, "approval-refused", f"approval refused by {entry.actor}"))
        elif kind in _OUTCOME_KINDS:
            reason = str(data.get("reason") or "")
            label = _OUTCOME_KINDS[kind] + (f": {reason}" if reason else "")
            markers.append(_marker(entry, _OUTCOME_KINDS[kind], label))
        lines[entry.seq] = summary_of(kind, data)
    # The last look in full: its evidence table and charts need every number it holds.
    last_evidence = None
    if last is not None:
        whole = last.data() if last.payload or full_data is None else full_data(last)
        last_evidence = analysis_evidence(whole, key="last")
    look_charts = charts_cache.get(tuple(drawn_looks), looks)
    return RolloutPictures(
        traffic=traffic_chart(points, markers, start=start, end=end, key="traffic"),
        evidence=look_charts.evidence,
        score=look_charts.score,
        sequences=look_charts.sequences,
        last_analysis=last_evidence,
        last_analysis_seq=last.seq if last is not None else None,
        looks=len(looks),
        truncated=truncated,
        lines=lines,
    )


def _marker(entry: EntryRecord, kind: str, label: str) -> Marker:
    return Marker(seq=entry.seq, at=entry.recorded_at, kind=kind, label=label, actor=entry.actor)


def _approval_label(entry: EntryRecord, data: dict[str, Any]) -> str:
    step = data.get("step")
    cr = data.get("change_request")
    return (
        f"approved by {entry.actor}"
        + (f" for step {step}" if step is not None else "")
        + (f" under {cr}" if isinstance(cr, str) and cr else "")
    )


def _rate_metrics(looks: Iterable[Look]) -> list[str]:
    names: dict[str, None] = {}
    for look in looks:
        for name, metric in look.metrics.items():
            if metric.kind == "proportion" and metric.interval is not None:
                names[name] = None
    return list(names)


def rollout_pictures(
    services: Services, viewer: Viewer, rollout: Rollout
) -> tuple[RolloutPictures, list[EntryRecord]]:
    """The pictures of ``rollout``, and the entries they were drawn from (oldest first; a look
    read from its kept summary has no payload). Looks read with their payload that prove out
    are kept for the next page, and the charts of the looks once every look is proven
    (``look_store.py``)."""
    model = audit_queries.scoped_model(viewer.actor, str(rollout.model))
    engine = services.ledger.engine
    read = read_rollout(engine, model, rollout.id, MAX_ENTRIES)
    entries = read.entries
    end = services.clock()
    if rollout.state.terminal and entries:
        end = entries[-1].recorded_at
    start = min([rollout.created_at, *(e.recorded_at for e in entries[:1])])
    drawn = [e for e in entries if e.event_type in _PICTURE_TYPE_NAMES]
    looks = [e for e in drawn if e.event_type == _ANALYSIS]
    looks_digest = look_store.digest(looks)
    charts_known = True
    if looks and all(e.seq in read.stored for e in looks):  # every look proven: charts kept?
        key = _charts_key(looks, read.stored)
        if not LOOK_CHARTS.known(key):
            found = look_store.kept_charts(engine, rollout.id, looks_digest)
            if found is not None:
                LOOK_CHARTS.put(key, _CHARTS_DECODER.decode(found))
            else:
                charts_known = False

    def full_data(entry: EntryRecord) -> dict[str, Any]:
        found = services.ledger.entry(entry.seq)
        return found.data() if found is not None else {}

    pictures = pictures_of(drawn, start=start, end=end, truncated=read.truncated,
                           stored=read.stored, bases=read.bases, full_data=full_data)  # fmt: skip

    def made(entry: EntryRecord) -> StoredLook | None:
        line = pictures.lines.get(entry.seq)
        if not isinstance(line, CachedLook):
            return None
        return StoredLook(parts=line.parts, line=line.summary)

    rows = summary_rows(read, made)
    _quietly(keep, engine, rows)
    proven = {r["seq"] for r in rows} | read.stored.keys()
    if (
        looks
        and not read.truncated
        and (not charts_known or rows)
        and all(e.seq in proven for e in looks)
    ):
        charts = LookCharts(pictures.evidence, pictures.score, pictures.sequences)
        encoded = _CHARTS_ENCODER.encode(charts)
        _quietly(look_store.keep_charts, engine, rollout.id, looks_digest, encoded)
    return pictures, entries


def _quietly(write: Callable[..., None], *args: Any) -> None:
    """Keep what the page made for the next one. A refused write (a read-only replica, a role
    without rights on the pages' tables, a lock timeout) costs the next page its head start,
    not this page its answer: logged, not raised."""
    try:
        write(*args)
    except SQLAlchemyError as exc:
        log.warning("ui.keep_failed", table_write=write.__name__, error=str(exc))


def _charts_key(looks: Sequence[EntryRecord], stored: Mapping[int, str]) -> tuple[LookKey, ...]:
    """The key :func:`pictures_of` gives the charts of looks all read from kept summaries."""
    return tuple(
        look_key(e, None) for e in looks if LOOKS.get(e, None, stored[e.seq]).parts is not None
    )


def check_kept_charts(services: Services) -> list[str]:
    """Every kept chart set drawn again from its looks' kept summaries: those that differ."""
    problems = []
    engine = services.ledger.engine
    for rollout_id, looks_digest, charts in look_store.kept_chart_rows(engine):
        read = read_rollout(engine, None, rollout_id, MAX_ENTRIES)
        looks = [e for e in read.entries if e.event_type == _ANALYSIS]
        if look_store.digest(looks) != looks_digest or not all(e.seq in read.stored for e in looks):
            continue  # stale (a look was added or changed since): never used
        drawn = [e for e in read.entries if e.event_type in _PICTURE_TYPE_NAMES]
        again = pictures_of(drawn, start=drawn[0].recorded_at, end=drawn[-1].recorded_at,
                            stored=read.stored, full_data=lambda _: {},
                            looks_cache=LookCache(), charts_cache=LookChartsCache())  # fmt: skip
        if _CHARTS_DECODER.decode(charts) != LookCharts(again.evidence, again.score,
                                                         again.sequences):  # fmt: skip
            problems.append(f"kept charts of rollout {rollout_id}: differ from its looks")
    return problems
