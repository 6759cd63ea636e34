"""``TrafficObserver``: watches the configured kinds and namespaces and records what they serve.

One :class:`~analyzer.targets.kube_watch.ObjectWatch` per (kind, namespace) — or per kind over
all namespaces — feeds events through the pure translators of
:mod:`analyzer.targets.observed` into :class:`ObservedTrafficRecorder`. A failed recording
(database down) raises out of the handler, so the watch retries from the event before it and
nothing is skipped. Metrics go to the registry it is given (the API's ``/metrics``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from kubernetes import client as k8s
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from analyzer.ledger.store import Clock, utc_now
from analyzer.observer.recorder import ObservedTrafficRecorder, Outcome, Recorded
from analyzer.targets.kube_watch import (
    KINDS,
    ObjectWatch,
    WatchBackoff,
    WatchedKind,
    WatchEvent,
)
from analyzer.targets.observed import ObservedSplit, observe

log = structlog.get_logger(__name__)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class ObserverMetrics:
    """The observer's Prometheus series (on the API's registry in ``serve``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "canary_analyzer_observer_events_total",
            "Watch events (and relisted objects) the traffic observer handled, by kind and type.",
            ["kind", "type"], registry=registry,
        )  # fmt: skip
        self.outcomes = Counter(
            "canary_analyzer_observer_observations_total",
            "Observations by outcome: recorded (a traffic_changed entry), unchanged (split "
            "already in the ledger), replayed (resourceVersion already recorded), no_split.",
            ["kind", "outcome"], registry=registry,
        )  # fmt: skip
        self.entries = Counter(
            "canary_analyzer_observer_entries_total",
            "Ledger entries the observer appended, by event type.",
            ["event_type"], registry=registry,
        )  # fmt: skip
        self.lag = Histogram(
            "canary_analyzer_observer_lag_seconds",
            "From the change (the owning field manager's managedFields time, 1 s precision) to "
            "the committed ledger entry.",
            buckets=_LAG_BUCKETS, registry=registry,
        )  # fmt: skip
        self.watch = Counter(
            "canary_analyzer_observer_watch_total",
            "Watch lifecycle by kind: relist, gone (410, relisted), error (retried with "
            "backoff), ended (stream timeout, resumed).",
            ["kind", "what"], registry=registry,
        )  # fmt: skip
        self.failures = Counter(
            "canary_analyzer_observer_record_failures_total",
            "Observations that could not be recorded (the watch retries them).",
            ["kind"], registry=registry,
        )  # fmt: skip
        self.last_event = Gauge(
            "canary_analyzer_observer_last_event_timestamp_seconds",
            "When the observer last handled an event or bookmark-free relist (Unix time).",
            registry=registry,
        )


class TrafficObserver:
    """Starts and stops the watches; each event becomes at most one ledger entry."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        recorder: ObservedTrafficRecorder,
        *,
        kinds: Sequence[str] = ("inferenceservices", "rollouts"),
        namespaces: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        clock: Clock = utc_now,
        timeout_seconds: int = 300,
        backoff: WatchBackoff | None = None,
        on_recorded: Callable[[ObservedSplit, Recorded], None] | None = None,
    ) -> None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"cannot observe {unknown}; known kinds: {sorted(KINDS)}")
        self._recorder = recorder
        self._clock = clock
        self._metrics = ObserverMetrics(registry or CollectorRegistry())
        self._on_recorded = on_recorded
        self._lock = threading.Lock()  # one recording at a time per process keeps order simple
        scopes: list[str | None] = list(namespaces) or [None]  # None: all namespaces
        targets: list[tuple[WatchedKind, str | None]] = [
            (KINDS[k], ns) for k in kinds for ns in scopes
        ]
        self.watches = [
            ObjectWatch(
                api_client,
                kind,
                self.handle,
                namespace=ns,
                timeout_seconds=timeout_seconds,
                backoff=backoff,
                report=self._report,
            )
            for kind, ns in targets
        ]

    @property
    def metrics(self) -> ObserverMetrics:
        return self._metrics

    def start(self) -> TrafficObserver:
        for watch in self.watches:
            watch.start()
        log.info(
            "observer.started",
            watches=[f"{w.kind.plural}/{w.namespace or '*'}" for w in self.watches],
        )
        return self

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()
        log.info("observer.stopped")

    def close(self) -> None:
        self.stop()

    def wait_synced(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in self.watches)

    def handle(self, event: WatchEvent) -> None:
        """Record one event (raises on failure: the watch retries it)."""
        received = self._clock()
        plural = event.kind.plural
        self._metrics.events.labels(kind=plural, type=event.type).inc()
        self._metrics.last_event.set(time.time())
        seen = observe(event.kind.kind, event.obj, deleted=event.type == "DELETED")
        try:
            with self._lock:
                result = self._recorder.record(seen, received_at=received)
        except Exception:
            self._metrics.failures.labels(kind=plural).inc()
            log.exception("observer.record_failed", kind=plural, model=seen.model)
            raise
        self._metrics.outcomes.labels(kind=plural, outcome=result.outcome.value).inc()
        for entry in result.entries:
            self._metrics.entries.labels(event_type=entry.event_type).inc()
        if result.outcome is Outcome.RECORDED:
            self._observe_lag(seen, result)
            log.info(
                "observer.traffic_recorded", model=seen.model, kind=seen.kind,
                split=seen.split_map(), owner=seen.owner, resource_version=seen.resource_version,
            )  # fmt: skip
        if self._on_recorded is not None:
            self._on_recorded(seen, result)

    def _observe_lag(self, seen: ObservedSplit, result: Recorded) -> None:
        if seen.changed_at is None or not result.entries:
            return
        committed: datetime = result.entries[-1].recorded_at
        self._metrics.lag.observe(max(0.0, (committed - seen.changed_at).total_seconds()))

    def _report(self, plural: str, what: str) -> None:
        self._metrics.watch.labels(kind=plural, what=what).inc()
