"""A regulated promotion's signed ledger checkpoint in its ServiceNow change request.

The engine drives a regulated rollout through the ServiceNow gate (the fake Table API over HTTP)
on PostgreSQL; after the promotion commits, the signed head lands in the CR's work notes, and
that note alone later proves the promotion's entries are in the ledger, until the tail is cut.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from analyzer.change_record_checkpoints import NOTE_PREFIX, PromotionCheckpointNotes
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.rollout import RolloutState
from analyzer.ledger.anchoring import verify_with_checkpoints
from analyzer.ledger.checkpoint import (
    Checkpoint,
    CheckpointDirectory,
    CheckpointSigner,
    TrustedKeys,
    generate_key_pair,
    load_private_key,
)
from analyzer.ledger.watch import ChainWatch, HeadCheckpointer
from gates.servicenow import BasicCredentials, ServiceNowTableClient
from tests.fakes.servicenow import FakeServiceNow, Fault
from tests.integration.rollouts import test_model_version as regulated
from tests.integration.rollouts.harness import Rig
from tests.integration.rollouts.test_model_version import CR, DIGEST, drive

pytestmark = pytest.mark.postgres

# The regulated path's fixtures (a CR approved for version 17; the engine with the CR gate).
snow = regulated.snow
regulated_rig = regulated.regulated_rig

BOT = BasicCredentials(username="gate.bot", password=SecretStr("bot-password"))


def _signer() -> CheckpointSigner:
    return CheckpointSigner(load_private_key(generate_key_pair()[0], source="test"))


def _notes(
    rig: Rig, fake: FakeServiceNow, signer: CheckpointSigner
) -> tuple[PromotionCheckpointNotes, ServiceNowTableClient]:
    client = ServiceNowTableClient(fake.url, BOT, timeout_seconds=2.0)
    checkpointer = HeadCheckpointer(ChainWatch(rig.ledger), signer, directory=None)

    def change_request_of(rollout_id: str) -> str | None:
        return rig.service.get(rollout_id).change_request

    return PromotionCheckpointNotes(checkpointer, client, change_request_of), client


def _checkpoint_in(note: str) -> Checkpoint:
    heading, _, document = note.partition("\n")
    assert heading.startswith(NOTE_PREFIX)
    return Checkpoint.from_json(json.loads(document))


def test_the_promotion_puts_a_verifiable_checkpoint_into_the_change_request(
    regulated_rig: Rig, snow: FakeServiceNow, pg_engine: Engine, tmp_path: Path
) -> None:
    signer = _signer()
    notes, client = _notes(regulated_rig, snow, signer)
    regulated_rig.engine.add_observer(notes)
    with client, capture_logs() as logs:
        final, _ = drive(regulated_rig, model_version="17", artifact_digest=DIGEST)
    assert final.state is RolloutState.PROMOTED, final.reason
    [(key, written)] = snow.work_notes.items()
    assert key[0] == "change_request"
    assert [r.method for r in snow.requests].count("PATCH") == 1
    [note] = written
    checkpoint = _checkpoint_in(note)
    promoted = regulated_rig.ledger.events(
        rollout_id=final.id, event_types=[EventType.ROLLOUT_PROMOTED]
    ).entries
    assert checkpoint.seq >= promoted[0].seq  # the promotion is under the signed head
    assert TrustedKeys([signer.public_key()]).problem(checkpoint) is None
    assert [
        e["change_request"] for e in logs if e["event"] == "ledger.checkpoint.change_request"
    ] == [CR]

    # the note alone, saved as a file, proves the chain up to the promotion ...
    sink = CheckpointDirectory(tmp_path / "from-cr")
    sink.write(checkpoint)
    trusted = TrustedKeys([signer.public_key()])
    assert verify_with_checkpoints(regulated_rig.ledger, sink, trusted).intact
    # ... until the promotion is cut from the tail
    with pg_engine.begin() as conn:
        for table, trigger in (
            ("ledger_entries", "ledger_entries_append_only"),
            ("ledger_head", "ledger_head_forward"),
        ):
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
        keep = promoted[0].seq - 1
        conn.execute(text("DELETE FROM ledger_entries WHERE seq > :k"), {"k": keep})
        conn.execute(
            text(
                "UPDATE ledger_head SET seq = e.seq, hash = e.hash FROM ledger_entries e "
                "WHERE e.seq = :k AND ledger_head.id = 1"
            ),
            {"k": keep},
        )
        for table, trigger in (
            ("ledger_entries", "ledger_entries_append_only"),
            ("ledger_head", "ledger_head_forward"),
        ):
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}"))
    assert regulated_rig.ledger.verify().intact  # the cut alone goes unseen
    cut = verify_with_checkpoints(regulated_rig.ledger, sink, trusted)
    assert not cut.intact
    assert any("cut from the tail" in p for p in cut.problems)


def test_only_promotions_of_rollouts_with_a_change_request_write_a_note(
    regulated_rig: Rig, snow: FakeServiceNow
) -> None:
    notes, client = _notes(regulated_rig, snow, _signer())
    started = regulated_rig.start(change_request=None)  # hot-path, no CR
    with client:
        notes.recorded(
            [
                LedgerEvent(type=EventType.ROLLOUT_PROMOTED, actor="x", rollout_id=started.id),
                LedgerEvent(type=EventType.TRAFFIC_CHANGED, actor="x", rollout_id=started.id),
            ]
        )
    assert snow.work_notes == {}
    assert snow.requests == []


def test_servicenow_refusing_the_note_is_logged_and_changes_nothing(
    regulated_rig: Rig, snow: FakeServiceNow
) -> None:
    notes, client = _notes(regulated_rig, snow, _signer())
    started = regulated_rig.start(change_request=CR)  # a rollout naming the CR
    snow.inject(Fault(status=503))  # the lookup fails: nothing more is tried
    with client, capture_logs() as logs:
        notes.recorded(
            [LedgerEvent(type=EventType.ROLLOUT_PROMOTED, actor="x", rollout_id=started.id)]
        )
    [failed] = [e for e in logs if e["event"] == "ledger.checkpoint.change_request.failed"]
    assert failed["change_request"] == CR
    assert "ServiceNow answered 503" in failed["error"]
    assert snow.work_notes == {}
    assert regulated_rig.ledger.verify().intact
