"""The pack check remembers which payloads are canonical by their hash: asked again, it answers
the same, and a payload re-hashed after an edit is judged afresh. Pure."""

from __future__ import annotations

from typing import Any

from analyzer.ledger.chain import canonical_json, entry_hash
from analyzer.ledger.pack import FORMAT, verify_pack

PREV = "0" * 64
COLUMNS = {
    "seq": 1, "recorded_at": "2026-03-04T02:13:00.000000Z", "type": "analysis_recorded",
    "schema": 1, "actor": "engine", "model": "ns/m", "rollout": "r", "revision": "c",
}  # fmt: skip


def pack_of(payload: str, data: dict[str, Any]) -> dict[str, Any]:
    entry = {
        "seq": 1, "recorded_at": COLUMNS["recorded_at"], "event_type": "analysis_recorded",
        "schema_version": 1, "actor": "engine", "model": "ns/m", "rollout_id": "r",
        "revision": "c", "data": data, "payload": payload, "prev_hash": PREV,
        "hash": entry_hash(PREV, payload),
    }  # fmt: skip
    return {"format": FORMAT, "rollout": "r", "head": {"seq": 1, "hash": entry["hash"]},
            "entries": [entry], "links": []}  # fmt: skip


def test_a_canonical_payload_verifies_every_time_and_a_re_hashed_edit_never() -> None:
    data = {"result": {"verdict": "pass", "score": 100.0}}
    payload = canonical_json({**COLUMNS, "data": data})
    for _ in range(2):  # the second answer is the remembered one
        assert verify_pack(pack_of(payload, data)).intact
    spaced = payload.replace('"score":100.0', '"score": 100.0')  # same values, not canonical
    assert spaced != payload
    for _ in range(2):
        report = verify_pack(pack_of(spaced, data))
        assert report.problems == ("entry #1: payload is not canonical JSON",)
    assert verify_pack(pack_of(payload, data)).intact
