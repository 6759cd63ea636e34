"""Signed head checkpoints: a copy of the chain's head kept where the database owners cannot write.

The hash chain proves every entry links to the one before; it cannot prove that entries were not
cut from the *end* (delete the tail, rewind ``ledger_head``: what is left verifies). A
checkpoint is the head (seq, hash) the serving process had just verified, with the time and the
id of the Ed25519 key that signed it, written as one JSON file to a directory outside the
database (a WORM bucket mount, a volume the database owners cannot reach) and to the structured
log. ``ledger verify --checkpoints`` then proves the chain still holds every checkpoint's
(seq, hash): a tail cut after a checkpoint, or a tail rewritten and re-hashed, no longer does.

Format (``canary-analyzer/ledger-checkpoint/v1``): ``{"format", "seq", "hash", "signed_at",
"key_id", "signature"}``; the signature is Ed25519 over the canonical JSON of every other field;
``key_id`` is ``ed25519:`` and the first 16 hex digits of SHA-256 over the raw public key, so a
verifier holding several public keys (key rotation) picks the right one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from analyzer.ledger.chain import canonical_json, format_time

CHECKPOINT_FORMAT = "canary-analyzer/ledger-checkpoint/v1"
_NAME = re.compile(r"^checkpoint-(\d{20})-([0-9a-f]{16})\.json$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(ValueError):
    """A checkpoint or key that cannot be read or does not verify (the message says which)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Checkpoint:
    """A signed statement "the ledger's verified head was (seq, hash) at signed_at"."""

    seq: int
    hash: str
    signed_at: datetime
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature over ``message()``

    def signed_fields(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "seq": self.seq,
            "hash": self.hash,
            "signed_at": format_time(self.signed_at),
            "key_id": self.key_id,
        }

    def message(self) -> bytes:
        return canonical_json(self.signed_fields()).encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return self.signed_fields() | {"signature": self.signature}

    def describe(self) -> str:
        return (
            f"checkpoint seq {self.seq} hash {self.hash[:16]}… "
            f"(signed {format_time(self.signed_at)} by {self.key_id})"
        )

    @classmethod
    def from_json(cls, document: Any) -> Checkpoint:
        """The checkpoint in ``document``, or ``CheckpointError`` naming what is wrong."""
        if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"not a {CHECKPOINT_FORMAT} document")
        extra = set(document) - {"format", "seq", "hash", "signed_at", "key_id", "signature"}
        if extra:
            raise CheckpointError(f"unexpected field(s) {', '.join(sorted(extra))}")
        seq, digest = document.get("seq"), document.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise CheckpointError("seq must be a positive integer")
        if not isinstance(digest, str) or not _HASH.match(digest):
            raise CheckpointError("hash must be 64 lowercase hex digits")
        key_id, signature = document.get("key_id"), document.get("signature")
        if not isinstance(key_id, str) or not isinstance(signature, str):
            raise CheckpointError("key_id and signature must be strings")
        try:
            signed_at = datetime.strptime(str(document.get("signed_at")), "%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError as exc:
            raise CheckpointError(
                "signed_at must be a UTC time like 2026-03-04T02:13:00.000000Z"
            ) from exc
        return cls(
            seq=seq,
            hash=digest,
            signed_at=signed_at.replace(tzinfo=UTC),
            key_id=key_id,
            signature=signature,
        )


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class CheckpointSigner:
    """Signs heads with one private key (the serving process's, or ``ledger checkpoint``'s)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.key_id = key_id_of(private_key.public_key())

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def sign(self, *, seq: int, head_hash: str, at: datetime) -> Checkpoint:
        unsigned = Checkpoint(
            seq=seq, hash=head_hash, signed_at=at.astimezone(UTC), key_id=self.key_id, signature=""
        )
        signature = base64.b64encode(self._key.sign(unsigned.message())).decode("ascii")
        return Checkpoint(
            seq=seq,
            hash=head_hash,
            signed_at=unsigned.signed_at,
            key_id=self.key_id,
            signature=signature,
        )


class TrustedKeys:
    """The public keys whose checkpoints are believed, by key id (old and new during rotation)."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id_of(k): k for k in keys}

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def problem(self, checkpoint: Checkpoint) -> str | None:
        """Why ``checkpoint`` is not to be believed, or None when its signature verifies."""
        key = self._keys.get(checkpoint.key_id)
        if key is None:
            return (
                f"signed by key {checkpoint.key_id}, which is not among the trusted public keys "
                f"({', '.join(self.key_ids) or 'none'})"
            )
        try:
            key.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.message())
        except (InvalidSignature, binascii.Error, ValueError):
            return f"signature does not verify with key {checkpoint.key_id} (altered or forged)"
        return None


# -- keys ---------------------------------------------------------------------------------------
def generate_key_pair() -> tuple[bytes, bytes]:
    """A new (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM) Ed25519 pair."""
    private = Ed25519PrivateKey.generate()
    return (
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        public_pem(private.public_key()),
    )


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes, *, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CheckpointError(f"{source}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{source}: an Ed25519 key is needed, found {type(key).__name__}")
    return key


def load_public_keys(paths: Iterable[Path]) -> list[Ed25519PublicKey]:
    """Public keys from PEM files, or every ``*.pem``/``*.pub`` file of a directory."""
    keys: list[Ed25519PublicKey] = []
    for path in paths:
        files = (
            sorted(p for p in path.iterdir() if p.suffix in (".pem", ".pub"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            keys.append(_load_public_key(file))
    return keys


def _load_public_key(file: Path) -> Ed25519PublicKey:
    try:
        pem = file.read_bytes()
    except OSError as exc:  # a missing file too: a key the operator named must be there
        raise CheckpointError(f"{file}: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CheckpointError(f"{file}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{file}: an Ed25519 public key is needed")
    return key


# -- the directory sink -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class StoredCheckpoint:
    """One file of the sink: its checkpoint, or why it could not be read."""

    path: Path
    checkpoint: Checkpoint | None
    problem: str | None = None


def checkpoint_filename(checkpoint: Checkpoint) -> str:
    """Sorted by seq; replicas signing the same head write the same name (one file, not two)."""
    return f"checkpoint-{checkpoint.seq:020d}-{checkpoint.hash[:16]}.json"


class CheckpointDirectory:
    """Checkpoints as one JSON file each in a directory (a mounted bucket or volume)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, checkpoint: Checkpoint) -> Path:
        """Write atomically (temporary file, fsync, rename): a reader never sees half a file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / checkpoint_filename(checkpoint)
        handle, temporary = tempfile.mkstemp(prefix=".checkpoint-", dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(json.dumps(checkpoint.to_json(), sort_keys=True, indent=1) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def names(self) -> list[str]:
        """File names that look like checkpoints, oldest seq first."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if _NAME.match(p.name))

    def read_all(self) -> list[StoredCheckpoint]:
        return [self.read(self.directory / name) for name in self.names()]

    def newest(self) -> StoredCheckpoint | None:
        names = self.names()
        return self.read(self.directory / names[-1]) if names else None

    @staticmethod
    def read(path: Path) -> StoredCheckpoint:
        try:
            checkpoint = Checkpoint.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # CheckpointError is one
            return StoredCheckpoint(path=path, checkpoint=None, problem=f"unreadable: {exc}")
        match = _NAME.match(path.name)
        if match and (int(match[1]), match[2]) != (checkpoint.seq, checkpoint.hash[:16]):
            problem = "its name does not match its seq and hash (renamed or copied over)"
            return StoredCheckpoint(path=path, checkpoint=checkpoint, problem=problem)
        return StoredCheckpoint(path=path, checkpoint=checkpoint)


# -- checking the chain against checkpoints (pure) ----------------------------------------------
def compare_with_chain(
    checkpoint: Checkpoint, *, chain_end: int, hash_at: Mapping[int, str]
) -> str | None:
    """Why the chain (ending at seq ``chain_end``; ``hash_at`` its hashes at the checkpoints'
    seqs) no longer holds ``checkpoint``, or None when it does."""
    if checkpoint.seq > chain_end:
        return (
            f"{checkpoint.describe()} lies beyond the chain's end at seq {chain_end}: entries "
            f"{chain_end + 1}..{checkpoint.seq} (at least) were cut from the tail and the head "
            "rewound"
        )
    found = hash_at.get(checkpoint.seq)
    if found is None:
        return f"{checkpoint.describe()}: the chain has no entry at seq {checkpoint.seq}"
    if found != checkpoint.hash:
        return (
            f"{checkpoint.describe()}: the chain's entry at seq {checkpoint.seq} now has hash "
            f"{found[:16]}…: the chain up to seq {checkpoint.seq} was rewritten and re-hashed "
            "after the checkpoint was signed"
        )
    return None
