"""Prometheus metrics of the API, on an injected registry (never the process-global one).

Latency is labelled by the *route template* (``/api/v1/rollouts/{rollout_id}``), never the raw
path, so ids cannot explode the series count; unmatched paths share the label ``<unmatched>``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analyzer.domain.events import EventType, LedgerEvent
from analyzer.ledger.checkpoint import Checkpoint
from analyzer.ledger.watch import ChainStatus

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.chain_intact = Gauge(
            "canary_analyzer_ledger_chain_intact",
            "1 when this process's last verification of the ledger's hash chain found it "
            "intact, 0 when broken (sticky until restart) or not checked yet (then the "
            "checked timestamp is 0).",
            registry=registry,
        )
        self.chain_verified_seq = Gauge(
            "canary_analyzer_ledger_chain_verified_seq",
            "The ledger entry up to which this process has verified the chain.",
            registry=registry,
        )
        self.chain_checked_at = Gauge(
            "canary_analyzer_ledger_chain_checked_timestamp_seconds",
            "When this process last verified the ledger's chain (Unix time).",
            registry=registry,
        )
        self.checkpoints_enabled = Gauge(
            "canary_analyzer_ledger_checkpoints_enabled",
            "1 when this process signs ledger head checkpoints (a signing key is configured).",
            registry=registry,
        )
        self.checkpoint_seq = Gauge(
            "canary_analyzer_ledger_checkpoint_seq",
            "The head seq of the last signed checkpoint this process wrote.",
            registry=registry,
        )
        self.checkpoint_written_at = Gauge(
            "canary_analyzer_ledger_checkpoint_timestamp_seconds",
            "When this process last wrote a signed head checkpoint (Unix time; 0: not yet).",
            registry=registry,
        )
        self.request_seconds = Histogram(
            "canary_analyzer_http_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.verdicts = Counter(
            "canary_analyzer_verdicts_total",
            "Verdicts of fresh analysis looks: per metric kind, and kind=overall for the analysis.",
            ["kind", "verdict"],
            registry=registry,
        )
        self.active_rollouts = Gauge(
            "canary_analyzer_rollouts",
            "Rollouts by state (and paused), refreshed on every scrape.",
            ["state", "paused"],
            registry=registry,
        )
        self.integration_errors = Counter(
            "canary_analyzer_integration_errors_total",
            "Failures of external systems seen by this process (API and rollout scheduler): "
            "source, target, gate or database.",
            ["integration"],
            registry=registry,
        )
        self.ledger_appends = Counter(
            "canary_analyzer_ledger_appends_total",
            "Ledger entries appended by this process (API actions and rollout ticks), by type.",
            ["event_type"],
            registry=registry,
        )

        self.ledger_head = Gauge(
            "canary_analyzer_ledger_head_seq",
            "Sequence number of the ledger's last entry (database-wide, all replicas), refreshed "
            "on every scrape: rate() of it is the append rate, no increase while rollouts are "
            "active means appends stalled.",
            registry=registry,
        )

    def chain_checked(self, status: ChainStatus) -> None:
        """The serving process's latest ledger verification (``ChainWatch``)."""
        self.chain_intact.set(1 if status.intact else 0)
        self.chain_verified_seq.set(status.verified_seq)
        self.chain_checked_at.set(status.checked_at.timestamp())

    def checkpoint_written(self, checkpoint: Checkpoint) -> None:
        """A signed head checkpoint this process wrote (``HeadCheckpointer``)."""
        self.checkpoint_seq.set(checkpoint.seq)
        self.checkpoint_written_at.set(checkpoint.signed_at.timestamp())

    def record_analysis(self, result: Mapping[str, Any]) -> None:
        self.verdicts.labels(kind="overall", verdict=str(result.get("verdict"))).inc()
        for metric in result.get("metrics", ()):
            self.verdicts.labels(
                kind=str(metric.get("kind")), verdict=str(metric.get("verdict"))
            ).inc()
            if metric.get("verdict") == "error":
                self.integration_errors.labels(integration="source").inc()

    def recorded(self, events: Sequence[LedgerEvent]) -> None:
        """What a rollout tick committed (``TickObserver``): its appends, its look's verdicts,
        and the target and gate failures it met (the scheduler has no other way to /metrics)."""
        for event in events:
            self.ledger_appends.labels(event_type=event.type.value).inc()
            data = event.data
            result = data.get("result")
            if event.type is EventType.ANALYSIS_RECORDED and isinstance(result, Mapping):
                self.record_analysis(result)
            elif event.type is EventType.TARGET_ERROR:
                self.integration_errors.labels(integration="target").inc()
            elif event.type is EventType.GATE_CHECKED:
                for _ in gate_errors(data):
                    self.integration_errors.labels(integration="gate").inc()

    def set_rollout_counts(self, counts: Iterable[tuple[str, bool, int]]) -> None:
        self.active_rollouts.clear()
        for state, paused, count in counts:
            self.active_rollouts.labels(state=state, paused=str(paused).lower()).set(count)


class MetricsMiddleware:
    """Times every HTTP request and labels it with the matched route's template."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # When the request arrived, before any queueing for a worker thread: answer deadlines
        # (POST /api/v1/analyses) count from here.
        scope.setdefault("state", {})["received_monotonic"] = time.monotonic()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            self.metrics.request_seconds.labels(
                route=template, method=scope.get("method", ""), status=str(status)
            ).observe(time.perf_counter() - started)


def gate_errors(data: Mapping[str, Any]) -> list[str]:
    """The gates of a ``gate_checked`` entry that closed because they could not decide (their
    evidence names an error), as the engine records them under ``evidence.decisions``."""
    evidence = data.get("evidence")
    decisions = evidence.get("decisions", []) if isinstance(evidence, Mapping) else []
    return [
        str(d.get("gate"))
        for d in decisions
        if isinstance(d, Mapping)
        and not d.get("open")
        and isinstance(d.get("evidence"), Mapping)
        and "error" in d["evidence"]
    ]
