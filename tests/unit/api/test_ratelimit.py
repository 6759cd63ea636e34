"""Token buckets on an injected clock."""

from __future__ import annotations

from analyzer.api.ratelimit import TokenBucketLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_configured_rate() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(per_second=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    wait = limiter.take("a")
    assert wait is not None
    assert abs(wait - 0.5) < 1e-9
    clock.now += 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") is not None


def test_keys_are_independent() -> None:
    limiter = TokenBucketLimiter(per_second=1.0, burst=1, clock=Clock())
    assert limiter.take("a") is None
    assert limiter.take("a") is not None
    assert limiter.take("b") is None


def test_bucket_never_exceeds_burst_after_a_long_idle() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(per_second=10.0, burst=2, clock=clock)
    limiter.take("a")
    clock.now += 3600
    assert [limiter.take("a") is None for _ in range(3)] == [True, True, False]


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(per_second=1.0, burst=1, clock=clock, max_keys=10)
    for i in range(100):
        limiter.take(f"k{i}")
    assert len(limiter._buckets) <= 10


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"
