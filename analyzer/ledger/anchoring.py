"""The ledger checked against its signed checkpoints (``ledger verify --checkpoints``, the watch).

``verify_with_checkpoints`` is the full check: every checkpoint file's signature, the whole hash
chain, then that the chain still holds every checkpoint's (seq, hash). ``newest_checkpoint_problem``
is the watch's cheap one: the newest checkpoint only, against the stored head and entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.domain.errors import LedgerHeadMissingError
from analyzer.ledger.chain import VerifyReport
from analyzer.ledger.checkpoint import (
    Checkpoint,
    CheckpointDirectory,
    StoredCheckpoint,
    TrustedKeys,
    compare_with_chain,
)
from analyzer.ledger.store import Ledger


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckpointReport:
    """The chain's own verification plus what its checkpoints say about it."""

    chain: VerifyReport
    checkpoints: int  # files whose signature verified
    newest: Checkpoint | None
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return self.chain.intact and not self.problems

    def lines(self) -> list[str]:
        lines = [self.chain.summary()]
        if not self.problems and self.newest is not None:
            lines.append(
                f"checkpoints: all {self.checkpoints} held by the chain; newest "
                f"{self.newest.describe()}"
            )
        lines += [f"checkpoint problem: {p}" for p in self.problems]
        return lines


def _believed(
    stored: Sequence[StoredCheckpoint], keys: TrustedKeys
) -> tuple[list[Checkpoint], list[str]]:
    believed, problems = [], []
    for item in stored:
        problem = item.problem
        if problem is None and item.checkpoint is not None:
            problem = keys.problem(item.checkpoint)
        if problem is not None or item.checkpoint is None:
            problems.append(f"{item.path.name}: {problem}")
        else:
            believed.append(item.checkpoint)
    return believed, problems


def verify_with_checkpoints(
    ledger: Ledger, directory: CheckpointDirectory, keys: TrustedKeys
) -> CheckpointReport:
    """Signatures first (a forged or altered file is a finding, never believed), then the
    chain, then each believed checkpoint against the stored entry at its seq."""
    stored = directory.read_all()
    believed, problems = _believed(stored, keys)
    if not stored:
        problems.append(
            f"no checkpoint files in {directory.directory}: nothing vouches for the chain's tail "
            "(is the directory the checkpoint sink, and has `serve` or `ledger checkpoint` run?)"
        )
    chain = ledger.verify()
    hash_at = ledger.stored_hashes(sorted({c.seq for c in believed}))
    chain_end = max(chain.head_seq, ledger.last_stored_seq())
    held: list[Checkpoint] = []
    for checkpoint in believed:
        problem = compare_with_chain(checkpoint, chain_end=chain_end, hash_at=hash_at)
        if problem is None:
            held.append(checkpoint)
        else:
            problems.append(problem)
    if held and len(held) < len(believed):
        problems.append(
            f"the newest checkpoint the chain still holds is {max(held, key=_order).describe()}"
        )
    newest = max(believed, key=_order) if believed else None
    return CheckpointReport(
        chain=chain, checkpoints=len(believed), newest=newest, problems=tuple(problems)
    )


def _order(checkpoint: Checkpoint) -> tuple[int, float]:
    return checkpoint.seq, checkpoint.signed_at.timestamp()


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckpointFinding:
    first_bad_seq: int | None
    problem: str


def newest_checkpoint_problem(
    ledger: Ledger, directory: CheckpointDirectory, keys: TrustedKeys
) -> CheckpointFinding | None:
    """Whether the stored chain still holds the newest checkpoint in ``directory``.

    The head is read *after* the checkpoint: another replica may sign a head newer than one
    read before, and only an append moves the head, so an intact ledger's head is at or past
    every checkpoint read earlier.
    """
    newest = directory.newest()
    if newest is None:
        return None
    believed, problems = _believed([newest], keys)
    if problems:
        return CheckpointFinding(first_bad_seq=None, problem=f"newest checkpoint {problems[0]}")
    checkpoint = believed[0]
    try:
        head_seq, _ = ledger.head()
    except LedgerHeadMissingError as exc:
        return CheckpointFinding(first_bad_seq=None, problem=str(exc))
    hash_at = ledger.stored_hashes([checkpoint.seq])
    problem = compare_with_chain(checkpoint, chain_end=head_seq, hash_at=hash_at)
    if problem is None:
        return None
    first_bad = head_seq + 1 if checkpoint.seq > head_seq else checkpoint.seq
    return CheckpointFinding(first_bad_seq=first_bad, problem=problem)
