"""Per-token token buckets for the analysis and audit endpoints.

Audit data answers "which model decided what, when": a stolen or over-eager token sweeping it is
a model-extraction risk, so audit reads get a small bucket; the Argo webhook gets a larger one.
The clock is injected (seconds, monotonic), so tests step time instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MonotonicClock = Callable[[], float]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """``per_second`` refill, ``burst`` capacity, one bucket per key; thread-safe."""

    def __init__(
        self,
        *,
        per_second: float,
        burst: int,
        clock: MonotonicClock = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Take one token for ``key``: ``None`` if allowed, else seconds until one is available."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._evict_full(now)
                bucket = self._buckets[key] = _Bucket(tokens=self._burst, updated=now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self._rate

    def _evict_full(self, now: float) -> None:
        # Buckets that have refilled completely carry no information; drop them first.
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self._rate >= self._burst
        ]
        for key in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(seconds)))
