"""``ChainWatch``: the serving process re-verifies the ledger's new entries every minute.

The daily ``canary-analyzer ledger verify`` CronJob checks the whole chain; between two runs a
row altered behind the service's back (the append-only trigger disabled by someone with the
rights to) would go unseen for up to a day. The watch keeps the last verified (seq, hash) and
checks only what was appended since, plus the last ``history`` entries when the process starts:
cheap enough to run every minute on every replica, and it exports the answer on ``/metrics``
(``canary_analyzer_ledger_chain_intact``) so an alert can say it directly.

With a checkpoint directory and trusted keys it also checks that the stored chain still holds
the newest signed checkpoint there (analyzer/ledger/checkpoint.py): a tail cut and a head rewound
below it are reported although every remaining link verifies, even by a replica started after
the cut. ``HeadCheckpointer`` signs the head the watch has just verified and writes it out.

A broken chain stays broken for the watch (sticky) until the process restarts: an append-only
ledger is not repaired, it is investigated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from analyzer.domain.errors import LedgerHeadMissingError
from analyzer.ledger.anchoring import newest_checkpoint_problem
from analyzer.ledger.chain import GENESIS_HASH
from analyzer.ledger.checkpoint import (
    Checkpoint,
    CheckpointDirectory,
    CheckpointSigner,
    TrustedKeys,
)
from analyzer.ledger.store import Clock, Ledger, utc_now

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class ChainStatus:
    intact: bool
    verified_seq: int  # every entry up to here is verified (when intact)
    checked_at: datetime
    verified_hash: str | None = None  # the hash of the entry at verified_seq (when intact)
    first_bad_seq: int | None = None
    problem: str | None = None


class ChainWatch:
    """Incremental verification of the ledger; ``check`` is called by the serving process's
    timer and tells ``report`` (the /metrics gauges) each outcome."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        clock: Clock = utc_now,
        history: int = 10_000,
        report: Callable[[ChainStatus], None] | None = None,
        checkpoints: CheckpointDirectory | None = None,
        trusted: TrustedKeys | None = None,
    ) -> None:
        if history < 0:
            raise ValueError("history must be zero or more entries")
        self._ledger = ledger
        self._clock = clock
        self._history = history
        self._report = report
        self._anchor: tuple[int, str] | None = None  # the last verified (seq, hash)
        self._broken: ChainStatus | None = None
        if (checkpoints is None) != (trusted is None):
            raise ValueError("checkpoints and trusted keys go together")
        self._checkpoints = checkpoints
        self._trusted = trusted
        self._lock = threading.Lock()  # the watch and the checkpointer share it across threads

    def check(self) -> ChainStatus:
        with self._lock:
            status = self._broken or self._check()
        if self._report is not None:
            self._report(status)
        return status

    def _check(self) -> ChainStatus:
        if self._anchor is None:
            try:
                self._anchor = self._starting_anchor()
            except LedgerHeadMissingError as exc:  # a broken ledger, not a failed job
                return self._break(verified_seq=0, first_bad_seq=None, problem=str(exc))
        report = self._ledger.verify(after=self._anchor)
        if report.intact:
            self._anchor = (report.head_seq, report.head_hash)
            if self._checkpoints is not None and self._trusted is not None:
                finding = newest_checkpoint_problem(self._ledger, self._checkpoints, self._trusted)
                if finding is not None:
                    return self._break(
                        verified_seq=report.head_seq,
                        first_bad_seq=finding.first_bad_seq,
                        problem=finding.problem,
                    )
            return ChainStatus(
                intact=True,
                verified_seq=report.head_seq,
                verified_hash=report.head_hash,
                checked_at=self._clock(),
            )
        return self._break(
            verified_seq=self._anchor[0],
            first_bad_seq=report.first_bad_seq,
            problem=report.problem,
        )

    def _break(
        self, *, verified_seq: int, first_bad_seq: int | None, problem: str | None
    ) -> ChainStatus:
        self._broken = ChainStatus(
            intact=False,
            verified_seq=verified_seq,
            checked_at=self._clock(),
            first_bad_seq=first_bad_seq,
            problem=problem,
        )
        log.error(
            "ledger.chain.broken",
            first_bad_seq=first_bad_seq,
            problem=problem,
            detail="run `canary-analyzer ledger verify`; see docs/ledger.md",
        )
        return self._broken

    def _starting_anchor(self) -> tuple[int, str]:
        """Where verification starts in this process: ``history`` entries before the head
        (the entry there is taken as stored; the links after it are all checked)."""
        head_seq, _ = self._ledger.head()
        start = max(0, head_seq - self._history)
        if start == 0:
            return 0, GENESIS_HASH
        entry = self._ledger.entry(start)
        if entry is None:  # a hole where an entry must be: verification reports seq `start`
            return start - 1, GENESIS_HASH
        return start, entry.hash


class HeadCheckpointer:
    """Signs the head the watch has just verified, then writes it to the log and the directory.

    Only a verified head is signed (a checkpoint vouches for the chain up to it), and only when
    it moved since this process last signed: an idle ledger adds no files.
    """

    def __init__(
        self,
        watch: ChainWatch,
        signer: CheckpointSigner,
        *,
        directory: CheckpointDirectory | None,
        clock: Clock = utc_now,
    ) -> None:
        self._watch = watch
        self._signer = signer
        self._directory = directory
        self._clock = clock
        self._last: tuple[int, str] | None = None

    def write(self) -> Checkpoint | None:
        """The periodic job: a checkpoint when the verified head moved, else None."""
        return self.sign_verified_head(even_if_unchanged=False)

    def sign_verified_head(self, *, even_if_unchanged: bool = True) -> Checkpoint | None:
        """Verify what was appended since the last check, then sign and write the head; None
        when the chain is broken (logged) or empty."""
        status = self._watch.check()
        if not status.intact or status.verified_hash is None:
            log.error(
                "ledger.checkpoint.skipped",
                reason="the chain does not verify: a broken chain is not signed",
                first_bad_seq=status.first_bad_seq,
            )
            return None
        head = (status.verified_seq, status.verified_hash)
        if status.verified_seq == 0 or (head == self._last and not even_if_unchanged):
            return None
        checkpoint = self._signer.sign(seq=head[0], head_hash=head[1], at=self._clock())
        path = self._directory.write(checkpoint) if self._directory is not None else None
        log.info(
            "ledger.checkpoint",
            checkpoint=checkpoint.to_json(),
            path=str(path) if path is not None else None,
        )
        self._last = head
        return checkpoint
