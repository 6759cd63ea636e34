"""Signed head checkpoints on PostgreSQL: the tail cut (or rewritten) after a checkpoint is caught.

The attacks are what a database owner can do past the append-only triggers: delete the last
entries and rewind ``ledger_head``, optionally appending a different tail so the head moves on.
The chain alone still verifies afterwards (asserted below: that is the gap); the checkpoints,
written outside the database, do not.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from analyzer.api.metrics import ApiMetrics
from analyzer.checkpointing import build_checkpointing
from analyzer.config import load_settings
from analyzer.ledger.checkpoint import (
    CheckpointDirectory,
    CheckpointSigner,
    TrustedKeys,
    generate_key_pair,
    load_private_key,
)
from analyzer.ledger.store import Ledger
from analyzer.ledger.watch import ChainWatch, HeadCheckpointer
from tests.integration.ledger.helpers import T0, SteppingClock, run_cli, traffic
from tests.integration.ledger.test_ledger_postgres import _seed

pytestmark = pytest.mark.postgres


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = generate_key_pair()
    (tmp_path / "keys").mkdir()
    private_path, public_path = tmp_path / "keys" / "ckpt.pem", tmp_path / "keys" / "ckpt.pub"
    private_path.write_bytes(private)
    public_path.write_bytes(public)
    return private_path, public_path


def _signer(private_path: Path) -> CheckpointSigner:
    return CheckpointSigner(load_private_key(private_path.read_bytes(), source="test"))


def cut_tail(engine: Engine, *, keep: int) -> None:
    """Delete every entry after seq ``keep`` and rewind the head to it, past both triggers."""
    with engine.begin() as conn:
        for table, trigger in (
            ("ledger_entries", "ledger_entries_append_only"),
            ("ledger_head", "ledger_head_forward"),
        ):
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}"))
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


def checkpoint_via_cli(pg_url: str, private_path: Path, directory: Path) -> str:
    result = run_cli(
        "ledger", "checkpoint", "--dir", str(directory), database_url=pg_url,
        env={"CANARY_ANALYZER_LEDGER__CHECKPOINT_KEY_FILE": str(private_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def verify_cli(pg_url: str, directory: Path, *keys: Path) -> tuple[int, str]:
    key_args = [a for k in keys for a in ("--key", str(k))]
    result = run_cli(
        "ledger", "verify", "--checkpoints", str(directory), *key_args, database_url=pg_url
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


def test_checkpoint_then_verify_passes(
    pg_engine: Engine, pg_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    _seed(pg_engine)  # 6 entries
    out = checkpoint_via_cli(pg_url, keys[0], tmp_path / "ckpt")
    assert "checkpoint seq 6" in out
    (written,) = (tmp_path / "ckpt").iterdir()
    document = json.loads(written.read_text())
    assert document["seq"] == 6
    assert document["hash"] == Ledger(pg_engine).head()[1]
    assert document["key_id"].startswith("ed25519:")
    code, out = verify_cli(pg_url, tmp_path / "ckpt", keys[1])
    assert code == 0, out
    assert "checkpoints: all 1 held by the chain" in out


def test_a_tail_cut_after_a_checkpoint_is_caught_by_verify_with_checkpoints(
    pg_engine: Engine, pg_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    _seed(pg_engine)
    checkpoint_via_cli(pg_url, keys[0], tmp_path / "ckpt")
    cut_tail(pg_engine, keep=4)
    plain = run_cli("ledger", "verify", database_url=pg_url)
    assert plain.returncode == 0  # the gap checkpoints close: what is left links
    assert plain.stdout.startswith("ledger intact: 4 entries")
    code, out = verify_cli(pg_url, tmp_path / "ckpt", keys[1])
    assert code == 1
    assert "checkpoint seq 6" in out
    assert "beyond the chain's end at seq 4" in out
    assert "cut from the tail" in out


def test_a_rewritten_and_rehashed_tail_is_caught(
    pg_engine: Engine, pg_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    ledger = _seed(pg_engine)
    directory = CheckpointDirectory(tmp_path / "ckpt")
    signer = _signer(keys[0])
    directory.write(signer.sign(seq=3, head_hash=ledger.entry(3).hash, at=T0))  # type: ignore[union-attr]
    directory.write(signer.sign(seq=6, head_hash=ledger.head()[1], at=T0))
    cut_tail(pg_engine, keep=4)
    forger = Ledger(pg_engine, clock=SteppingClock(T0 + timedelta(hours=1)))
    forger.record(traffic({"credit-00007": 100}, step=0))  # a different seq 5 and 6: head 6
    forger.record(traffic({"credit-00007": 100}, step=1))
    assert Ledger(pg_engine).verify().intact  # a consistent chain, head included
    code, out = verify_cli(pg_url, tmp_path / "ckpt", keys[1])
    assert code == 1
    assert "the chain's entry at seq 6 now has hash" in out
    assert "rewritten and re-hashed" in out
    assert "the newest checkpoint the chain still holds is checkpoint seq 3" in out


def test_a_bad_signature_an_unknown_key_and_no_checkpoints_each_fail(
    pg_engine: Engine, pg_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    ledger = _seed(pg_engine)
    directory = CheckpointDirectory(tmp_path / "ckpt")
    path = directory.write(_signer(keys[0]).sign(seq=6, head_hash=ledger.head()[1], at=T0))
    document = json.loads(path.read_text())
    document["signed_at"] = "2026-03-05T01:00:00.000000Z"  # a later time, the same signature
    path.write_text(json.dumps(document))
    code, out = verify_cli(pg_url, tmp_path / "ckpt", keys[1])
    assert code == 1
    assert "signature does not verify" in out

    _, other_public = generate_key_pair()
    (tmp_path / "other.pub").write_bytes(other_public)
    path.unlink()
    directory.write(_signer(keys[0]).sign(seq=6, head_hash=ledger.head()[1], at=T0))
    code, out = verify_cli(pg_url, tmp_path / "ckpt", tmp_path / "other.pub")
    assert code == 1
    assert "not among the trusted public keys" in out
    code, out = verify_cli(pg_url, tmp_path / "ckpt", tmp_path / "other.pub", keys[1])
    assert code == 0, out  # rotation: several keys trusted at once

    (tmp_path / "empty").mkdir()
    code, out = verify_cli(pg_url, tmp_path / "empty", keys[1])
    assert code == 1
    assert "no checkpoint files" in out
    code, out = verify_cli(pg_url, tmp_path / "ckpt")  # no --key
    assert code == 2
    assert "--key" in out


def test_checkpoint_refuses_to_sign_a_broken_chain(
    pg_engine: Engine, pg_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    _seed(pg_engine)
    with pg_engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"))
        conn.execute(text("UPDATE ledger_entries SET actor = 'mallory' WHERE seq = 2"))
        conn.execute(text("ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only"))
    result = run_cli(
        "ledger", "checkpoint", "--dir", str(tmp_path / "ckpt"), database_url=pg_url,
        env={"CANARY_ANALYZER_LEDGER__CHECKPOINT_KEY_FILE": str(keys[0])},
    )  # fmt: skip
    assert result.returncode == 1
    assert "no checkpoint written" in result.stdout
    assert not (tmp_path / "ckpt").exists()
    no_key = run_cli("ledger", "checkpoint", "--dir", str(tmp_path), database_url=pg_url)
    assert no_key.returncode == 2
    assert "checkpoint-key" in no_key.stderr


def _watch(ledger: Ledger, directory: Path, public: Path, metrics: ApiMetrics) -> ChainWatch:
    from analyzer.ledger.checkpoint import load_public_keys

    return ChainWatch(
        ledger,
        clock=lambda: T0,
        report=metrics.chain_checked,
        checkpoints=CheckpointDirectory(directory),
        trusted=TrustedKeys(load_public_keys([public])),
    )


def test_the_watch_of_a_replica_started_after_the_cut_reports_it(
    pg_engine: Engine, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    ledger = _seed(pg_engine)
    metrics = ApiMetrics(CollectorRegistry())
    watch = _watch(ledger, tmp_path / "ckpt", keys[1], metrics)
    checkpointer = HeadCheckpointer(
        watch, _signer(keys[0]), directory=CheckpointDirectory(tmp_path / "ckpt"), clock=lambda: T0
    )
    with capture_logs() as logs:
        written = checkpointer.write()
    assert written is not None
    assert written.seq == 6
    assert [e["checkpoint"]["seq"] for e in logs if e["event"] == "ledger.checkpoint"] == [6]
    assert checkpointer.write() is None  # the head did not move: no second file
    assert len(list((tmp_path / "ckpt").iterdir())) == 1
    assert metrics.registry.get_sample_value("canary_analyzer_ledger_chain_intact") == 1

    cut_tail(pg_engine, keep=4)
    assert ChainWatch(ledger).check().intact  # without checkpoints the cut goes unseen
    restarted = _watch(ledger, tmp_path / "ckpt", keys[1], metrics)
    with capture_logs() as logs:
        status = restarted.check()
    assert not status.intact
    assert status.first_bad_seq == 5
    assert "beyond the chain's end at seq 4" in (status.problem or "")
    assert metrics.registry.get_sample_value("canary_analyzer_ledger_chain_intact") == 0
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["ledger.chain.broken"]


def test_the_watch_reports_a_rewritten_tail_and_the_checkpointer_stops_signing(
    pg_engine: Engine, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    ledger = _seed(pg_engine)
    directory = CheckpointDirectory(tmp_path / "ckpt")
    directory.write(_signer(keys[0]).sign(seq=6, head_hash=ledger.head()[1], at=T0))
    cut_tail(pg_engine, keep=4)
    forger = Ledger(pg_engine, clock=SteppingClock(T0 + timedelta(hours=1)))
    for step in range(3):
        forger.record(traffic({"credit-00007": 100}, step=step))  # head 7, a different 5..7
    watch = _watch(ledger, tmp_path / "ckpt", keys[1], ApiMetrics(CollectorRegistry()))
    checkpointer = HeadCheckpointer(watch, _signer(keys[0]), directory=directory)
    with capture_logs() as logs:
        assert checkpointer.write() is None
    status = watch.check()
    assert (status.intact, status.first_bad_seq) == (False, 6)
    assert "rewritten and re-hashed" in (status.problem or "")
    assert "ledger.checkpoint.skipped" in [e["event"] for e in logs]
    assert len(list((tmp_path / "ckpt").iterdir())) == 1  # the forged head was not signed


def test_settings_build_the_signer_and_trust_older_keys(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    _, older_public = generate_key_pair()
    (tmp_path / "older.pub").write_bytes(older_public)
    settings = load_settings(
        ledger={
            "checkpoint_dir": tmp_path / "ckpt",
            "checkpoint_key_file": keys[0],
            "checkpoint_public_key_files": [tmp_path / "older.pub"],
        }
    )
    built = build_checkpointing(settings)
    assert built is not None
    assert built.directory is not None
    assert built.directory.directory == tmp_path / "ckpt"
    assert len(built.trusted) == 2
    assert built.signer.key_id in built.trusted.key_ids
    assert build_checkpointing(load_settings()) is None


def test_change_request_notes_without_servicenow_refuse_to_start(
    keys: tuple[Path, Path], pg_engine: Engine
) -> None:
    from analyzer.api.server import change_request_notes
    from analyzer.domain.errors import ConfigurationError
    from analyzer.wiring import build_service

    settings = load_settings(
        database_url=pg_engine.url.render_as_string(hide_password=False),
        ledger={"checkpoint_key_file": keys[0], "checkpoint_change_request_notes": True},
    )
    built = build_checkpointing(settings)
    assert built is not None
    service = build_service(settings, warm_looks=False)
    try:
        checkpointer = HeadCheckpointer(ChainWatch(service.ledger), built.signer, directory=None)
        with pytest.raises(ConfigurationError, match=r"needs servicenow.instance_url"):
            change_request_notes(settings, service, checkpointer)
    finally:
        service.close()
