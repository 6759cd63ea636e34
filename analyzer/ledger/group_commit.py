"""Group commit for ledger appends that need no transaction of their own.

The ledger is one hash chain: every append locks its head row until commit, so appends are
serialized across all replicas. At Argo-webhook rates (hundreds of cached answers a second) one
transaction per answer makes that lock the bottleneck. ``BatchingRecorder`` queues events from
any number of request threads and appends whatever is queued in one transaction (one head lock,
one commit). ``record`` still returns only after the entry is committed, so an answer is never
sent for a call that is not in the ledger; batching costs a caller at most one transaction's
wait.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import structlog

from analyzer.domain.events import LedgerEvent
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.store import Ledger

log = structlog.get_logger(__name__)

_Item = tuple[LedgerEvent, "Future[EntryRecord]"]


class BatchingRecorder:
    """Appends events to ``ledger`` in batches of up to ``max_batch``; thread-safe."""

    def __init__(self, ledger: Ledger, *, max_batch: int = 500, timeout: float = 10.0) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        self._timeout = timeout
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def record(self, event: LedgerEvent) -> EntryRecord:
        """Append ``event``; return its committed entry (raises what the append raised)."""
        future: Future[EntryRecord] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the recorder is closed")
            if self._thread is None:  # started on first use, never at import or construction
                self._thread = threading.Thread(
                    target=self._run, name="ledger-recorder", daemon=True
                )
                self._thread.start()
            self._queue.put((event, future))
        return future.result(timeout=self._timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=self._timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Item]) -> None:
        try:
            with self._ledger.engine.begin() as conn:
                records = self._ledger.append_many(conn, [event for event, _ in batch])
        except Exception as exc:
            if len(batch) > 1:  # one bad event must not fail its neighbours: retry one by one
                for item in batch:
                    self._write([item])
                return
            log.warning("ledger.append.failed", error=type(exc).__name__)
            batch[0][1].set_exception(exc)
            return
        for (_, future), record in zip(batch, records, strict=True):
            future.set_result(record)
