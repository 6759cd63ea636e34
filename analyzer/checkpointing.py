"""Signed head checkpoints built from ``ledger`` settings: the signer, the sink, trusted keys.

Its own small module (settings and the ledger's checkpoint module only) because the serving
process, the API's verify route and the ``ledger checkpoint`` command all need it, and the API
must not import the whole wiring for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.config import Settings
from analyzer.domain.errors import ConfigurationError
from analyzer.ledger.checkpoint import (
    CheckpointDirectory,
    CheckpointError,
    CheckpointSigner,
    TrustedKeys,
    load_private_key,
    load_public_keys,
)


@dataclass(frozen=True, kw_only=True)
class Checkpointing:
    """What signs head checkpoints, where they go, and whose signatures the watch believes."""

    signer: CheckpointSigner
    directory: CheckpointDirectory | None
    trusted: TrustedKeys


def build_checkpointing(settings: Settings) -> Checkpointing | None:
    """From ``ledger`` settings; None without a signing key. Bad keys: ``ConfigurationError``."""
    ledger = settings.ledger
    if not ledger.checkpoints_enabled():
        return None
    pem, source = ledger.checkpoint_key_pem()
    try:
        signer = CheckpointSigner(load_private_key(pem, source=source))
        older = load_public_keys(ledger.checkpoint_public_key_files)
    except CheckpointError as exc:
        raise ConfigurationError(f"ledger checkpoints: {exc}") from exc
    directory = CheckpointDirectory(ledger.checkpoint_dir) if ledger.checkpoint_dir else None
    return Checkpointing(
        signer=signer, directory=directory, trusted=TrustedKeys([signer.public_key(), *older])
    )
