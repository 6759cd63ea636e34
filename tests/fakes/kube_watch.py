"""The fake apiserver's ``?watch=true`` streams.

Part of the fake Kubernetes API server (see :mod:`tests.fakes.kube_api`). Like the real one:

* the answer is ``200`` with ``Transfer-Encoding: chunked``, one JSON event per line,
  ``{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": ...}``;
* without ``resourceVersion`` (or with ``"0"``) the stream starts with a synthetic ``ADDED`` for
  every existing object, then follows changes; with a version ``v`` it sends every change after
  ``v``, or, when ``v`` is older than the kept history, one ``ERROR`` event whose object is a
  ``Status`` with ``code: 410``, ``reason: Expired``, ``message: "too old resource version: v
  (horizon)"``, and closes (the apiserver answers a watch this way, not with HTTP 410);
* ``allowWatchBookmarks=true`` adds ``BOOKMARK`` events (an object with only ``kind``,
  ``apiVersion`` and ``metadata.resourceVersion``) every :attr:`WatchHub.bookmark_interval`
  seconds and just before a ``timeoutSeconds`` expiry (the real server sends them about once a
  minute; tests shorten it);
* ``timeoutSeconds`` ends the stream cleanly; without it the fake ends it after
  :attr:`WatchHub.default_timeout` (the real server picks 30-60 minutes).

Test hooks: :meth:`WatchHub.drop_all` cuts every open stream mid-chunk (a connection reset
as a load balancer or apiserver restart causes); the store's ``compact`` makes older versions
410. :attr:`WatchHub.opened` counts streams, so a test can wait until a client is watching.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.kube_store import JSON, ApiError, ObjectStore, Resource


class StreamDroppedError(Exception):
    """Raised inside a stream to cut its connection without the final chunk."""


def gone_status(rv: int, horizon: int) -> JSON:
    return ApiError(410, "Expired", f"too old resource version: {rv} ({horizon})").status_body()


class WatchHub:
    """Serves watch streams from an :class:`ObjectStore` and lets tests disturb them."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.bookmark_interval = 1.0
        self.default_timeout = 60.0
        self.opened = 0
        self.active = 0
        self._epoch = 0
        self._closing = False
        self._counter_lock = threading.Lock()

    def drop_all(self) -> None:
        """Cut every open stream now (the client sees a broken chunked response)."""
        with self._store.lock:
            self._epoch += 1
            self._store.history.changed.notify_all()

    def close(self) -> None:
        self._closing = True
        self.drop_all()

    def wait_for_watchers(self, count: int, timeout: float = 5.0) -> None:
        """Block until ``count`` streams have been opened in total (tests synchronise on it)."""
        deadline = time.monotonic() + timeout
        while self.opened < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.opened} of {count} watches opened")
            time.sleep(0.01)

    def serve(
        self,
        res: Resource,
        ns: str | None,
        query: dict[str, list[str]],
        send: Callable[[JSON], None],
    ) -> None:
        """Send the stream's events until it ends (or raise StreamDroppedError)."""
        rv_text = (query.get("resourceVersion") or [""])[0]
        bookmarks = (query.get("allowWatchBookmarks") or ["false"])[0] == "true"
        timeout = float((query.get("timeoutSeconds") or [self.default_timeout])[0])
        with self._counter_lock:
            self.opened += 1
            self.active += 1
        try:
            self._stream(res, ns, rv_text, bookmarks, time.monotonic() + timeout, send)
        finally:
            with self._counter_lock:
                self.active -= 1

    def _stream(
        self,
        res: Resource,
        ns: str | None,
        rv_text: str,
        bookmarks: bool,
        deadline: float,
        send: Callable[[JSON], None],
    ) -> None:
        store, history = self._store, self._store.history
        with store.lock:
            epoch = self._epoch
            if rv_text in ("", "0"):
                initial = store.list(res, ns)
                last = int(initial["metadata"]["resourceVersion"])
                pending: list[JSON] = [{"type": "ADDED", "object": o} for o in initial["items"]]
            else:
                last = _parse_rv(rv_text)
                pending = []
        for event in pending:
            send(event)
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            with store.lock:
                events = history.since(last, res.qualified, ns)
                if events is None:
                    send({"type": "ERROR", "object": gone_status(last, history.horizon)})
                    return
                if not events:
                    wait = min(deadline, next_bookmark) - time.monotonic()
                    if wait > 0 and self._epoch == epoch:
                        history.changed.wait(wait)
                    events = history.since(last, res.qualified, ns) or []
                dropped = self._epoch != epoch
                now_rv = store.last_rv
            if dropped:
                raise StreamDroppedError
            for event in events:
                send({"type": event.type, "object": event.obj})
                last = event.rv
            now = time.monotonic()
            if now >= deadline:
                if bookmarks:  # the apiserver bookmarks the end of a timed-out watch
                    send(_bookmark(res, max(last, now_rv)))
                return
            if bookmarks and now >= next_bookmark:
                last = max(last, now_rv)
                send(_bookmark(res, last))
                next_bookmark = now + self.bookmark_interval
            elif not bookmarks and now >= next_bookmark:
                next_bookmark = now + self.bookmark_interval


def _parse_rv(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"invalid resource version: {text}") from exc


def _bookmark(res: Resource, rv: int) -> JSON:
    return {
        "type": "BOOKMARK",
        "object": {
            "kind": res.kind,
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": str(rv)},
        },
    }


def encode_event(event: JSON) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


def is_watch(query: dict[str, Any]) -> bool:
    return (query.get("watch") or ["false"])[0] in ("true", "1")
