"""Evidence packs: one rollout's ledger entries with the hashes and chain links that prove them.

A pack is a JSON document (``FORMAT``) that travels inside a printable HTML report
(``analyzer/api/evidence_pack.py``) in a ``<pre id="evidence-pack-json">`` block, HTML-escaped,
so the same file is what a risk officer reads, prints and attaches, and what
``canary-analyzer ledger verify --pack FILE`` checks. It holds:

* ``entries``: every entry of the rollout, in seq order, each with its columns, its data, the
  hashed payload byte for byte, ``prev_hash`` and ``hash``;
* ``links``: for each entry whose predecessor (seq - 1) is not in the pack, that predecessor's
  seq and hash (an entry of another rollout or tenant: its payload is not disclosed);
* ``head``: the ledger's head (seq, hash) when the pack was made.

What verifying a pack proves. Offline (:func:`verify_pack`): every entry's hash is
``sha256(prev_hash ‖ payload)``; the payload is canonical JSON and says exactly what the
entry's columns and data say (so nothing shown was changed apart from the hashed bytes); each
``prev_hash`` is the hash of the entry before it (in the pack, or its link); seqs are unique and
ordered, and every entry belongs to the pack's rollout. Changing one byte of an entry breaks
at least one of these. What offline checking cannot prove is that those hashes are the ones
in *your* ledger: ``--against-ledger`` (:func:`check_against_ledger`) recomputes the ledger's
chain up to the pack's head and compares the hash at every seq the pack names, the links and
the head included.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select

from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import EntryRecord, canonical_json, entry_hash, format_time
from analyzer.ledger.compact import base_of
from analyzer.ledger.export import entry_json
from analyzer.ledger.store import Ledger
from analyzer.ledger.tables import ledger_entries

FORMAT = "canary-analyzer-evidence-pack/1"
PACK_ELEMENT_ID = "evidence-pack-json"
PAGE = 1000
_PAYLOAD_COLUMNS = {
    "seq": "seq",
    "recorded_at": "recorded_at",
    "type": "event_type",
    "schema": "schema_version",
    "actor": "actor",
    "model": "model",
    "rollout": "rollout_id",
    "revision": "revision",
}


def rollout_entries(ledger: Ledger, rollout_id: str, model: str | None) -> list[EntryRecord]:
    """Every entry of the rollout, in seq order."""
    ref = ModelRef.parse(model) if model is not None else None
    found: list[EntryRecord] = []
    cursor: str | None = None
    while True:
        page = ledger.events(model=ref, rollout_id=rollout_id, cursor=cursor, limit=PAGE)
        found.extend(page.entries)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return sorted(found, key=lambda e: e.seq)


def predecessor_links(ledger: Ledger, entries: Sequence[EntryRecord]) -> list[dict[str, Any]]:
    """(seq, hash) of each entry's predecessor that is not itself in ``entries``."""
    included = {e.seq for e in entries}
    wanted = sorted({e.seq - 1 for e in entries if e.seq > 1} - included)
    links: list[dict[str, Any]] = []
    t = ledger_entries.c
    with ledger.engine.connect() as conn:
        for start in range(0, len(wanted), PAGE):
            chunk = wanted[start : start + PAGE]
            rows = conn.execute(select(t.seq, t.hash).where(t.seq.in_(chunk)).order_by(t.seq))
            links.extend({"seq": int(seq), "hash": str(value)} for seq, value in rows)
    return links


def build_pack(
    ledger: Ledger,
    rollout_id: str,
    *,
    model: str | None,
    generated_at: datetime,
    generated_by: str,
) -> dict[str, Any]:
    """The pack document of one rollout, as the ledger holds it now."""
    head_seq, head_hash = ledger.head()
    entries = [e for e in rollout_entries(ledger, rollout_id, model) if e.seq <= head_seq]
    return {
        "format": FORMAT,
        "rollout": rollout_id,
        "model": model or next((e.model for e in entries if e.model), None),
        "generated_at": format_time(generated_at),
        "generated_by": generated_by,
        "head": {"seq": head_seq, "hash": head_hash},
        "entries": [entry_json(e) for e in entries],
        "links": predecessor_links(ledger, entries),
    }


def record_of(entry: Mapping[str, Any]) -> EntryRecord:
    """An entry of a pack (the export's shape) back as a record."""
    return EntryRecord(
        seq=int(entry["seq"]),
        recorded_at=datetime.fromisoformat(str(entry["recorded_at"]).replace("Z", "+00:00")),
        event_type=str(entry["event_type"]),
        schema_version=int(entry["schema_version"]),
        actor=str(entry["actor"]),
        model=entry.get("model"),
        rollout_id=entry.get("rollout_id"),
        revision=entry.get("revision"),
        payload=str(entry["payload"]),
        prev_hash=str(entry["prev_hash"]),
        hash=str(entry["hash"]),
    )


def pack_json(pack: Mapping[str, Any]) -> str:
    """The pack as text: indented for people, keys sorted so two packs of the same entries
    are byte-identical apart from when and by whom they were made.

    Written by msgspec (encoded with sorted keys, then indented): ``json.dumps`` with an indent
    runs its pure-Python encoder, which was a third of a 500-look pack's time. Numbers are the
    shortest text that reads back as the same number (``-0.0000555`` where ``json.dumps`` writes
    ``-5.55e-05``); what verifying compares — the values, and the payloads as strings — is the
    same. A value msgspec cannot write (an integer beyond 64 bits) is written by ``json``."""
    try:
        encoded = msgspec.json.encode(pack, order="sorted")
    except (msgspec.EncodeError, OverflowError, TypeError):
        return json.dumps(pack, indent=1, sort_keys=True, ensure_ascii=False)
    return msgspec.json.format(encoded, indent=1).decode("utf-8")


def pack_digest(pack: Mapping[str, Any]) -> str:
    """sha256 of the pack's canonical JSON: a short name to quote for this exact pack."""
    return hashlib.sha256(canonical_json(pack).encode("utf-8")).hexdigest()


def extract_pack(text: str) -> dict[str, Any]:
    """The pack document from a pack file: the HTML report or the bare JSON."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        document = json.loads(stripped)
    else:
        found = re.search(
            rf'<pre id="{PACK_ELEMENT_ID}"[^>]*>(.*?)</pre>', text, re.DOTALL | re.IGNORECASE
        )
        if found is None:
            raise ValueError(f'no <pre id="{PACK_ELEMENT_ID}"> block: not an evidence pack')
        document = json.loads(html.unescape(found.group(1)))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not an evidence pack of format {FORMAT}")
    return document


@dataclass(frozen=True, kw_only=True, slots=True)
class PackReport:
    rollout: str
    entries: int
    links: int
    head_seq: int | None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def intact(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.intact:
            return (
                f"pack intact: {self.entries} entries of rollout {self.rollout} verified "
                f"({self.links} chain links, head #{self.head_seq})"
            )
        shown = "; ".join(self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        return f"pack BROKEN: {shown}{more}"


def _check_entry(entry: Mapping[str, Any], rollout: str) -> tuple[list[str], Any]:
    """The entry's problems, and its payload decoded (None when it is not JSON)."""
    seq = entry.get("seq")
    where = f"entry #{seq}"
    payload, prev_hash, stored = entry.get("payload"), entry.get("prev_hash"), entry.get("hash")
    if not (isinstance(payload, str) and isinstance(prev_hash, str) and isinstance(stored, str)):
        return [f"{where}: payload, prev_hash and hash are required"], None
    problems = []
    try:
        recomputed = entry_hash(prev_hash, payload)
    except ValueError:
        return [f"{where}: prev_hash is not 64 hex digits"], None
    if recomputed != stored:
        problems.append(f"{where}: hash is not sha256(prev_hash ‖ payload)")
    try:
        decoded = json.loads(payload)
    except ValueError:
        return [*problems, f"{where}: payload is not JSON"], None
    if not _canonical(recomputed, payload, decoded):
        problems.append(f"{where}: payload is not canonical JSON")
    for key, column in _PAYLOAD_COLUMNS.items():
        if decoded.get(key) != entry.get(column):
            problems.append(f"{where}: {column} differs from the hashed payload")
    if decoded.get("data") != entry.get("data"):
        problems.append(f"{where}: data differs from the hashed payload")
    if entry.get("rollout_id") != rollout:
        problems.append(f"{where}: belongs to rollout {entry.get('rollout_id')!r}, not {rollout!r}")
    return problems, decoded


# Whether a payload is canonical JSON, by sha256(prev_hash ‖ payload) — which names the payload
# exactly — so the packs of a rollout asked for again do not re-encode every payload (most of a
# pack's check). Emptied when full; per process.
_CANONICAL: dict[str, bool] = {}
_CANONICAL_SIZE = 100_000


def _canonical(recomputed: str, payload: str, decoded: Any) -> bool:
    known = _CANONICAL.get(recomputed)
    if known is not None:
        return known
    try:
        found = canonical_json(decoded) == payload
    except ValueError:  # a number out of range (1e999 reads as inf)
        found = False
    if len(_CANONICAL) >= _CANONICAL_SIZE:
        _CANONICAL.clear()
    _CANONICAL[recomputed] = found
    return found


def _compact_bases(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """A compact look is evidence only with its base: each must be a full look in the pack."""
    full = {
        e.get("seq")
        for e in entries
        if e.get("event_type") == EventType.ANALYSIS_RECORDED.value
        and isinstance(e.get("data"), Mapping)
        and base_of(e["data"]) is None
    }
    return [
        f"entry #{e.get('seq')}: its base look #{base} is not a full look in the pack"
        for e in entries
        if isinstance(e.get("data"), Mapping)
        and (base := base_of(e["data"])) is not None
        and base not in full
    ]


def verify_pack(pack: Mapping[str, Any]) -> PackReport:
    """Check a pack on its own (see the module docstring for what this proves)."""
    return check_pack(pack)[0]


def check_pack(pack: Mapping[str, Any]) -> tuple[PackReport, dict[int, Any]]:
    """:func:`verify_pack`, and each entry's data as its hashed payload says, by seq (for the
    report, which then reads no payload twice)."""
    payload_data: dict[int, Any] = {}
    rollout = str(pack.get("rollout", ""))
    entries = [e for e in pack.get("entries") or () if isinstance(e, Mapping)]
    links = [x for x in pack.get("links") or () if isinstance(x, Mapping)]
    head = pack.get("head") if isinstance(pack.get("head"), Mapping) else {}
    assert isinstance(head, Mapping)
    head_seq = head.get("seq") if isinstance(head.get("seq"), int) else None
    problems: list[str] = []
    if not entries:
        problems.append("the pack holds no entries")
    hashes: dict[int, str] = {}
    for link in links:
        if isinstance(link.get("seq"), int) and isinstance(link.get("hash"), str):
            hashes[link["seq"]] = link["hash"]
    previous_seq = 0
    for entry in entries:
        seq = entry.get("seq")
        if not isinstance(seq, int) or seq <= previous_seq:
            problems.append(f"entry #{seq}: seqs must be unique and increasing")
            continue
        previous_seq = seq
        if head_seq is not None and seq > head_seq:
            problems.append(f"entry #{seq}: after the pack's head #{head_seq}")
        found, decoded = _check_entry(entry, rollout)
        problems += found
        if isinstance(decoded, dict) and "data" in decoded:
            payload_data[seq] = decoded["data"]
        if isinstance(entry.get("hash"), str):
            hashes[seq] = entry["hash"]
    problems += _compact_bases(entries)
    for entry in entries:
        seq = entry.get("seq")
        if not isinstance(seq, int) or seq <= 1:
            continue
        before = hashes.get(seq - 1)
        if before is None:
            problems.append(f"entry #{seq}: no link to entry #{seq - 1}")
        elif before != entry.get("prev_hash"):
            problems.append(f"entry #{seq}: prev_hash is not the hash of entry #{seq - 1}")
    report = PackReport(
        rollout=rollout,
        entries=len(entries),
        links=len(links),
        head_seq=head_seq,
        problems=tuple(problems),
    )
    return report, payload_data


def check_against_ledger(pack: Mapping[str, Any], ledger: Ledger) -> list[str]:
    """Problems anchoring the pack to ``ledger``: the chain must verify up to the pack's head,
    and the ledger's hash at every seq the pack names (entries, links, head) must be the
    pack's."""
    head = pack.get("head") if isinstance(pack.get("head"), Mapping) else {}
    assert isinstance(head, Mapping)
    named: dict[int, str] = {}
    for item in [*(pack.get("entries") or ()), *(pack.get("links") or ())]:
        if isinstance(item, Mapping) and isinstance(item.get("seq"), int):
            named[item["seq"]] = str(item.get("hash"))
    if isinstance(head.get("seq"), int):
        named[head["seq"]] = str(head.get("hash"))
    report = ledger.verify()
    problems = []
    if not report.intact:
        problems.append(f"the ledger's own chain is broken: {report.summary()}")
    t = ledger_entries.c
    found: dict[int, str] = {}
    wanted = sorted(named)
    with ledger.engine.connect() as conn:
        for start in range(0, len(wanted), PAGE):
            chunk = wanted[start : start + PAGE]
            for seq, value in conn.execute(select(t.seq, t.hash).where(t.seq.in_(chunk))):
                found[int(seq)] = str(value)
    for seq in wanted:
        if seq not in found:
            problems.append(f"#{seq}: not in the ledger")
        elif found[seq] != named[seq]:
            problems.append(f"#{seq}: the ledger's hash differs from the pack's")
    return problems
