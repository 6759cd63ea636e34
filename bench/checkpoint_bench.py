"""Signed head checkpoints: what a growing checkpoint directory costs the readers.

    python bench/checkpoint_bench.py [--files 20000]

Writes ``--files`` signed checkpoints into a scratch directory through the real
``CheckpointDirectory`` (temporary file, fsync, rename), then times what reads them: the chain
watch's ``newest()`` (every minute on every replica: a directory listing, one file read) and
``ledger verify --checkpoints``'s ``read_all()`` with every signature verified (the daily job).
At one checkpoint per 5 minutes a year is about 105,000 files (fewer: an idle ledger adds none).
No database: the comparison with the chain is one indexed query per 1,000 checkpoints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.ledger.checkpoint import (
    CheckpointDirectory,
    CheckpointSigner,
    TrustedKeys,
    generate_key_pair,
    load_private_key,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    args = parser.parse_args()
    signer = CheckpointSigner(load_private_key(generate_key_pair()[0], source="bench"))
    trusted = TrustedKeys([signer.public_key()])
    with tempfile.TemporaryDirectory() as scratch:
        sink = CheckpointDirectory(Path(scratch) / "checkpoints")
        started = time.perf_counter()
        for i in range(1, args.files + 1):
            sink.write(signer.sign(seq=i * 10, head_hash=f"{i:064x}", at=datetime.now(UTC)))
        written = time.perf_counter() - started
        started = time.perf_counter()
        newest = sink.newest()
        newest_seconds = time.perf_counter() - started
        started = time.perf_counter()
        stored = sink.read_all()
        bad = [
            s for s in stored if s.problem or s.checkpoint is None or trusted.problem(s.checkpoint)
        ]
        read_seconds = time.perf_counter() - started
    assert newest is not None
    assert newest.checkpoint is not None
    assert newest.checkpoint.seq == args.files * 10
    assert not bad
    print(
        f"{args.files} files: write {written / args.files * 1e3:.2f} ms each; "
        f"newest() {newest_seconds * 1e3:.0f} ms; read and verify all {read_seconds:.1f} s "
        f"({read_seconds / args.files * 1e6:.0f} µs each)"
    )


if __name__ == "__main__":
    main()
