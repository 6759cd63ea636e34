"""Signed head checkpoints, pure parts: the signed bytes, signatures, keys, files, comparison."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from analyzer.ledger.checkpoint import (
    Checkpoint,
    CheckpointDirectory,
    CheckpointError,
    CheckpointSigner,
    TrustedKeys,
    compare_with_chain,
    generate_key_pair,
    key_id_of,
    load_private_key,
    load_public_keys,
)

T0 = datetime(2026, 3, 4, 2, 13, tzinfo=UTC)
H6, H7 = "6" * 64, "7" * 64


def signer() -> CheckpointSigner:
    private, _ = generate_key_pair()
    return CheckpointSigner(load_private_key(private, source="test"))


def test_a_signed_checkpoint_round_trips_and_verifies() -> None:
    s = signer()
    checkpoint = s.sign(seq=6, head_hash=H6, at=T0)
    assert checkpoint.key_id == key_id_of(s.public_key())
    assert checkpoint.key_id.startswith("ed25519:")
    document = json.loads(json.dumps(checkpoint.to_json()))
    assert document["signed_at"] == "2026-03-04T02:13:00.000000Z"
    again = Checkpoint.from_json(document)
    assert again == checkpoint
    assert TrustedKeys([s.public_key()]).problem(again) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("seq", 7), ("hash", H7), ("signed_at", "2026-03-04T02:14:00.000000Z")],
)
def test_any_signed_field_changed_breaks_the_signature(field: str, value: object) -> None:
    s = signer()
    document = s.sign(seq=6, head_hash=H6, at=T0).to_json() | {field: value}
    problem = TrustedKeys([s.public_key()]).problem(Checkpoint.from_json(document))
    assert problem is not None
    assert "signature does not verify" in problem


def test_an_unknown_key_and_a_garbled_signature_are_named() -> None:
    s, other = signer(), signer()
    checkpoint = s.sign(seq=6, head_hash=H6, at=T0)
    unknown = TrustedKeys([other.public_key()]).problem(checkpoint)
    assert unknown is not None
    assert f"signed by key {s.key_id}, which is not among the trusted" in unknown
    garbled = Checkpoint.from_json(checkpoint.to_json() | {"signature": "not base64!"})
    assert "signature does not verify" in (TrustedKeys([s.public_key()]).problem(garbled) or "")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other"}, "not a canary-analyzer/ledger-checkpoint/v1 document"),
        ({"seq": 0}, "seq must be a positive integer"),
        ({"seq": True}, "seq must be a positive integer"),
        ({"hash": "ABC"}, "hash must be 64 lowercase hex digits"),
        ({"signed_at": "yesterday"}, "signed_at must be a UTC time"),
        ({"extra": 1}, "unexpected field(s) extra"),
    ],
)
def test_malformed_documents_are_refused_naming_the_field(
    change: dict[str, object], message: str
) -> None:
    document = signer().sign(seq=6, head_hash=H6, at=T0).to_json() | change
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Checkpoint.from_json(document)


def test_keys_load_from_files_and_directories_and_refuse_other_material(tmp_path: Path) -> None:
    _, public = generate_key_pair()
    (tmp_path / "a.pub").write_bytes(public)
    (tmp_path / "b.pem").write_bytes(generate_key_pair()[1])
    (tmp_path / "notes.txt").write_text("ignored")
    assert len(load_public_keys([tmp_path])) == 2
    assert len(load_public_keys([tmp_path / "a.pub"])) == 1
    with pytest.raises(CheckpointError, match="not a PEM public key"):
        load_public_keys([tmp_path / "notes.txt"])
    with pytest.raises(CheckpointError, match="No such file"):
        load_public_keys([tmp_path / "missing.pub"])
    with pytest.raises(CheckpointError, match="not an unencrypted PEM private key"):
        load_private_key(public, source="k.pub")


def test_the_directory_writes_atomically_and_finds_the_newest(tmp_path: Path) -> None:
    s = signer()
    directory = CheckpointDirectory(tmp_path / "sink")
    assert directory.newest() is None
    first = directory.write(s.sign(seq=9, head_hash=H6, at=T0))
    directory.write(s.sign(seq=10, head_hash=H7, at=T0))
    again = directory.write(s.sign(seq=10, head_hash=H7, at=T0))  # another replica, same head
    assert first.name == f"checkpoint-{9:020d}-{H6[:16]}.json"
    assert sorted(p.name for p in (tmp_path / "sink").iterdir()) == [first.name, again.name]
    newest = directory.newest()
    assert newest is not None
    assert newest.checkpoint is not None
    assert newest.checkpoint.seq == 10  # names are zero-padded: text order is seq order
    first.rename(first.with_name(f"checkpoint-{11:020d}-{H6[:16]}.json"))
    renamed = directory.newest()
    assert renamed is not None
    assert renamed.problem == "its name does not match its seq and hash (renamed or copied over)"
    (tmp_path / "sink" / f"checkpoint-{12:020d}-{H6[:16]}.json").write_text("{")
    broken = directory.newest()
    assert broken is not None
    assert (broken.problem or "").startswith("unreadable:")


def test_comparison_with_the_chain_names_the_cut_and_the_rewrite() -> None:
    checkpoint = signer().sign(seq=6, head_hash=H6, at=T0)
    assert compare_with_chain(checkpoint, chain_end=8, hash_at={6: H6}) is None
    cut = compare_with_chain(checkpoint, chain_end=4, hash_at={})
    assert cut is not None
    assert "beyond the chain's end at seq 4: entries 5..6" in cut
    rewritten = compare_with_chain(checkpoint, chain_end=6, hash_at={6: H7})
    assert rewritten is not None
    assert "now has hash 7777777777777777…" in rewritten
    hole = compare_with_chain(checkpoint, chain_end=8, hash_at={})
    assert "the chain has no entry at seq 6" in (hole or "")
