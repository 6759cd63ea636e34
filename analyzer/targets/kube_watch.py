"""List + watch of namespaced custom objects, the way client-go's reflector does it.

One :class:`ObjectWatch` follows one kind in one namespace (or every namespace) on its own
thread:

1. **list** the collection and hand every object to the handler as ``ADDED`` (``relisted``);
   objects the handler saw before that are missing from the list are handed over as
   ``DELETED`` (they went away while nobody was watching, as client-go's ``Replace`` does);
2. **watch** from the list's ``metadata.resourceVersion`` with ``allowWatchBookmarks``; every
   event and every ``BOOKMARK`` moves the version the next watch starts from, so a stream that
   ends (``timeoutSeconds``) or breaks resumes exactly where it was, without a relist;
3. a watch answered with ``410 Gone`` (an ``ERROR`` event whose ``Status`` has ``code: 410``, as
   the apiserver sends it, or an HTTP 410) means the version was compacted: **relist** at once;
4. any other failure (refused connection, 5xx, a broken chunked stream, a read timeout) is
   retried with bounded exponential backoff with jitter, each retry logged, until :meth:`stop`.

Why raw streaming over the ``kubernetes`` client's ``ApiClient`` rather than
``kubernetes.watch.Watch``: the ApiClient gives us the cluster's configuration (TLS, tokens,
in-cluster or kubeconfig, built in :mod:`analyzer.targets.kube`), but ``Watch.stream`` hides
the two things a reflector needs to control: on a 410 it silently retries *once from the same
version* and then raises, and it has no backoff or relist of its own. Here the request is the
client's (``list_*_custom_object(watch=True, _preload_content=False)``) and the stream's lines
are read directly, so every 410, bookmark and retry is ours and visible.

The handler is called on the watch's thread; it must be idempotent (a relist replays every
object) and should not block for long (the stream waits meanwhile).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from analyzer.targets.kube import JSON, as_json, status_message


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchedKind:
    """A namespaced custom resource to watch."""

    group: str
    version: str
    plural: str
    kind: str


INFERENCE_SERVICES = WatchedKind(
    group="serving.kserve.io", version="v1beta1", plural="inferenceservices",
    kind="InferenceService",
)  # fmt: skip
ROLLOUTS = WatchedKind(group="argoproj.io", version="v1alpha1", plural="rollouts", kind="Rollout")
KINDS = {k.plural: k for k in (INFERENCE_SERVICES, ROLLOUTS)}


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchEvent:
    """One object as a watch (or a relist) reported it."""

    kind: WatchedKind
    type: str  # ADDED | MODIFIED | DELETED
    obj: JSON
    relisted: bool = False  # replayed from a list, not a change seen on the stream


class WatchHandler(Protocol):
    def __call__(self, event: WatchEvent) -> None:
        """Take one event; raising makes the watch retry from the event's predecessor."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class WatchBackoff:
    """Bounded exponential backoff with jitter: ``initial * 2**(n-1)`` capped, ±``jitter``."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5  # fraction of the delay added or removed at random

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.maximum, self.initial * 2 ** (attempt - 1))
        return float(max(0.0, base * (1 + self.jitter * (2 * rng.random() - 1))))


class GoneError(Exception):
    """The version to watch from was compacted (410 Gone): relist."""


WatchReport = Callable[[str, str], None]  # (plural, what): relist|gone|error|ended


class ObjectWatch:
    """List+watch one kind in one namespace (``namespace=None``: all namespaces)."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        kind: WatchedKind,
        handler: WatchHandler,
        *,
        namespace: str | None = None,
        timeout_seconds: int = 300,
        backoff: WatchBackoff | None = None,
        rng: random.Random | None = None,
        report: WatchReport | None = None,
        logger: Any = None,
    ) -> None:
        self._api = k8s.CustomObjectsApi(api_client)
        self.kind, self.namespace = kind, namespace
        self._handler = handler
        self._timeout = timeout_seconds
        self._backoff = backoff or WatchBackoff()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._report = report or (lambda _plural, _what: None)
        self._log = logger or structlog.get_logger("analyzer.targets.kube_watch")
        self._stopping = threading.Event()
        self._response: Any = None
        self._known: dict[tuple[str, str], JSON] = {}
        self._thread: threading.Thread | None = None
        self.resource_version: str | None = None
        self.synced = threading.Event()  # set after the first successful list

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> ObjectWatch:
        where = self.namespace or "all-namespaces"
        self._thread = threading.Thread(
            target=self.run, name=f"watch-{self.kind.plural}-{where}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # best effort: the loop checks _stopping too
                response.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """The reflector loop (see the module docstring) until :meth:`stop`."""
        attempt = 0
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch_once()
                attempt = 0  # a stream that ended cleanly: resume at once
            except GoneError as exc:
                self._log.info("kube_watch_gone", **self._where(), error=str(exc))
                self._report(self.kind.plural, "gone")
                self.resource_version = None  # relist at once, as client-go does
            except Exception as exc:
                if self._stopping.is_set():
                    break
                attempt += 1
                delay = self._backoff.delay(attempt, self._rng)
                self._log.warning(
                    "kube_watch_retry", **self._where(), attempt=attempt,
                    delay_seconds=round(delay, 3), error=_describe(exc),
                    resource_version=self.resource_version,
                )  # fmt: skip
                self._report(self.kind.plural, "error")
                self._stopping.wait(delay)

    # -- list ---------------------------------------------------------------------------
    def _relist(self) -> None:
        answer = as_json(self._list(), f"list {self.kind.plural}")
        items = [as_json(o, self.kind.kind) for o in answer.get("items") or []]
        seen = {_key(o): o for o in items}
        for key, last in list(self._known.items()):
            if key not in seen:
                self._deliver(WatchEvent(kind=self.kind, type="DELETED", obj=last, relisted=True))
        for obj in items:
            obj.setdefault("kind", self.kind.kind)
            self._deliver(WatchEvent(kind=self.kind, type="ADDED", obj=obj, relisted=True))
        self.resource_version = str(answer["metadata"]["resourceVersion"])
        self._report(self.kind.plural, "relist")
        self._log.info(
            "kube_watch_listed", **self._where(), objects=len(items),
            resource_version=self.resource_version,
        )  # fmt: skip
        self.synced.set()

    def _list(self) -> object:
        k = self.kind
        if self.namespace is None:
            return self._api.list_cluster_custom_object(
                k.group, k.version, k.plural, _request_timeout=30
            )
        return self._api.list_namespaced_custom_object(
            k.group, k.version, self.namespace, k.plural, _request_timeout=30
        )

    # -- watch --------------------------------------------------------------------------
    def _watch_once(self) -> None:
        """One watch request, until the stream ends (timeoutSeconds) or fails (raises)."""
        k, rv = self.kind, self.resource_version
        options: dict[str, Any] = {
            "watch": True, "resource_version": rv, "allow_watch_bookmarks": True,
            "timeout_seconds": self._timeout, "_preload_content": False,
            "_request_timeout": (10, self._timeout + 30),
        }  # fmt: skip
        response: Any
        try:
            if self.namespace is None:
                response = self._api.list_cluster_custom_object(
                    k.group, k.version, k.plural, **options
                )
            else:
                response = self._api.list_namespaced_custom_object(
                    k.group, k.version, self.namespace, k.plural, **options
                )
        except ApiException as exc:
            if exc.status == 410:
                raise GoneError(f"HTTP 410: {status_message(exc)}") from exc
            raise
        self._response = response
        try:
            for event in _events(response):
                if self._stopping.is_set():
                    break
                self._take(event)
        finally:
            self._response = None
            response.release_conn()
        self._report(self.kind.plural, "ended")

    def _take(self, event: JSON) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            message = f"{obj.get('reason')}: {obj.get('message')}"
            if code == 410:
                raise GoneError(message)
            raise RuntimeError(f"watch error event (code {code}): {message}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            obj.setdefault("kind", self.kind.kind)
            self._deliver(WatchEvent(kind=self.kind, type=str(kind), obj=obj))
        if version:  # BOOKMARKs carry only this, and move us on all the same
            self.resource_version = str(version)

    def _deliver(self, event: WatchEvent) -> None:
        self._handler(event)
        if event.type == "DELETED":
            self._known.pop(_key(event.obj), None)
        else:
            self._known[_key(event.obj)] = event.obj

    def _where(self) -> dict[str, str]:
        return {"kind": self.kind.plural, "namespace": self.namespace or "*"}


def _key(obj: JSON) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _events(response: Any) -> Iterator[JSON]:
    """Newline-delimited JSON events from a chunked response, as the chunks arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if pending.strip():
        yield json.loads(pending)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status}: {status_message(exc)}"
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"
