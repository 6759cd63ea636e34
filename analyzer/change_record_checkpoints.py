"""A promotion's signed ledger head checkpoint, written into its change request's work notes.

A checkpoint proves the chain's head as it was; where it is kept decides who can remove it. The
change request of a promotion is kept by another system and team (ServiceNow, the change
board): right after a rollout that names a change request is promoted, the head just verified
(the promotion entry included) is signed and added to that CR as a work note, with the whole
checkpoint document, so an auditor holding only the CR can later prove, with
``canary-analyzer ledger verify --checkpoints`` on that document, that the promotion's entries
are still in the ledger. A best-effort copy besides the checkpoint directory and the log: a
failure is logged (``ledger.checkpoint.change_request.failed``) and never undoes a promotion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

from analyzer.domain.errors import IntegrationError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.ledger.watch import HeadCheckpointer
from gates.servicenow.records import is_change_number

log = structlog.get_logger(__name__)

NOTE_PREFIX = "canary-analyzer signed ledger checkpoint"


class ChangeRequestNotes(Protocol):
    """The part of ``ServiceNowTableClient`` this needs: find a CR, add a work note to it."""

    def query(
        self, table: str, query: str, *, fields: Sequence[str], limit: int, display_value: Any
    ) -> list[dict[str, Any]]: ...

    def add_work_note(self, table: str, sys_id: str, note: str) -> None: ...


def checkpoint_note(rollout_id: str, document: dict[str, Any]) -> str:
    """The work note: one line saying what it is, then the checkpoint document as JSON."""
    return (
        f"{NOTE_PREFIX} after the promotion of rollout {rollout_id} (verify: save the JSON "
        "below as a file and run `canary-analyzer ledger verify --checkpoints DIR --key "
        "PUBKEY`):\n" + json.dumps(document, sort_keys=True)
    )


class PromotionCheckpointNotes:
    """A ``TickObserver``: after a tick commits a ``rollout_promoted`` entry of a rollout with a
    change request, sign the verified head and add it to that CR."""

    def __init__(
        self,
        checkpointer: HeadCheckpointer,
        servicenow: ChangeRequestNotes,
        change_request_of: Callable[[str], str | None],
        *,
        table: str = "change_request",
    ) -> None:
        self._checkpointer = checkpointer
        self._servicenow = servicenow
        self._change_request_of = change_request_of
        self._table = table

    def recorded(self, events: Sequence[LedgerEvent]) -> None:
        for event in events:
            if event.type is EventType.ROLLOUT_PROMOTED and event.rollout_id is not None:
                number = self._change_request_of(event.rollout_id)
                if number:
                    self._note(event.rollout_id, number)

    def _note(self, rollout_id: str, number: str) -> None:
        context = {"rollout_id": rollout_id, "change_request": number}
        if not is_change_number(number):
            log.error("ledger.checkpoint.change_request.failed", **context, error="not a number")
            return
        checkpoint = self._checkpointer.sign_verified_head()
        if checkpoint is None:  # a broken chain: already logged, nothing is signed
            return
        try:
            found = self._servicenow.query(
                self._table, f"number={number}", fields=["sys_id"], limit=2, display_value="false"
            )
            if len(found) != 1:
                raise LookupError(f"{len(found)} change requests numbered {number}")
            note = checkpoint_note(rollout_id, checkpoint.to_json())
            self._servicenow.add_work_note(self._table, str(found[0]["sys_id"]), note)
        except (IntegrationError, LookupError, ValueError) as exc:
            log.error(
                "ledger.checkpoint.change_request.failed",
                **context,
                seq=checkpoint.seq,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        log.info("ledger.checkpoint.change_request", **context, seq=checkpoint.seq)
