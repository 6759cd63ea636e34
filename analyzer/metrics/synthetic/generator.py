"""Seeded per-tick evidence: the pure core of the synthetic source.

Time is cut into ticks of ``tick_seconds`` from an ``origin``; tick ``k`` covers
``(origin + k·tick, origin + (k+1)·tick]``. Every random stream is keyed by
``(seed, metric, revision, stream)`` through a stable hash, and draws are made tick by tick from
tick 0, so the counts of a tick never depend on how far ahead a caller looked: cumulative
evidence is deterministic and non-decreasing in time.

Requests of a revision per tick are Poisson with mean ``rate · tick · weight(t)``; the same
traffic feeds every metric of that revision (a histogram's total equals the proportion's total).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]

# Knative queue-proxy's latency buckets (ms), trimmed to the range a model server lives in.
DEFAULT_BUCKETS_MS: tuple[float, ...] = (
    5,
    10,
    20,
    40,
    60,
    80,
    100,
    150,
    200,
    300,
    500,
    1000,
    2000,
    5000,
    math.inf,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class RevisionBehaviour:
    """How one synthetic revision behaves; a canary's regressions are differences from baseline.

    ``weight`` is its traffic share; ``weight_schedule`` (elapsed seconds, weight) pairs override
    it from each time on, e.g. a 10 → 25 → 50 step plan. Latency is lognormal with
    ``latency_median_ms · (1 + latency_shift)`` and ``latency_sigma``; a ``tail_fraction`` of
    requests is ``tail_factor`` times slower. ``event_rates`` overrides ``error_rate`` for named
    proportion metrics (e.g. ``false_positives``); ``decision_mix`` feeds categorical metrics.
    """

    weight: float = 0.5
    weight_schedule: tuple[tuple[float, float], ...] = ()
    latency_median_ms: float = 80.0
    latency_sigma: float = 0.5
    latency_shift: float = 0.0
    tail_fraction: float = 0.0
    tail_factor: float = 5.0
    error_rate: float = 0.002
    event_rates: Mapping[str, float] = field(default_factory=dict)
    decision_mix: tuple[float, ...] = (0.90, 0.07, 0.03)
    # As a shadow challenger: the share of mirrored requests it decides differently from the
    # incumbent (spread evenly over the other categories), for ``paired`` metrics.
    shadow_disagreement: float = 0.0
    sample_mean: float = 0.40
    sample_sd: float = 0.02

    def weight_at(self, elapsed: float) -> float:
        weight = self.weight
        for since, value in self.weight_schedule:
            if elapsed >= since:
                weight = value
        return weight


def stream(seed: int, *keys: str) -> np.random.Generator:
    """An independent, reproducible random stream for ``keys`` (stable across processes)."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def traffic(
    seed: int, revision: str, behaviour: RevisionBehaviour, *, ticks: int, tick: float, rate: float
) -> IntArray:
    """Requests per tick for ticks ``0 .. ticks-1``."""
    elapsed = (np.arange(ticks) + 1) * tick
    weights = np.full(ticks, behaviour.weight, dtype=float)
    for since, value in behaviour.weight_schedule:  # later steps override earlier ones
        weights[elapsed >= since] = value
    return stream(seed, "traffic", revision).poisson(rate * tick * weights).astype(np.int64)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def latency_cdf(behaviour: RevisionBehaviour, value_ms: float) -> float:
    """P(latency ≤ value_ms) for the revision's lognormal mixture."""
    if math.isinf(value_ms):
        return 1.0
    median = behaviour.latency_median_ms * (1.0 + behaviour.latency_shift)
    z_main = (math.log(value_ms) - math.log(median)) / behaviour.latency_sigma
    z_tail = (
        math.log(value_ms) - math.log(median * behaviour.tail_factor)
    ) / behaviour.latency_sigma
    f = behaviour.tail_fraction
    return (1.0 - f) * _normal_cdf(z_main) + f * _normal_cdf(z_tail)


def latency_quantile(behaviour: RevisionBehaviour, q: float) -> float:
    """The ``q`` quantile (ms) of the latency distribution, by bisection on the CDF."""
    lo, hi = 1e-6, 1e7
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if latency_cdf(behaviour, mid) < q else (lo, mid)
    return math.sqrt(lo * hi)


def bucket_probabilities(behaviour: RevisionBehaviour, bounds_ms: tuple[float, ...]) -> list[float]:
    cdf = [latency_cdf(behaviour, b) for b in bounds_ms]
    return [max(0.0, c - p) for c, p in zip(cdf, [0.0, *cdf[:-1]], strict=True)]


def multinomial_per_tick(
    seed: int, metric: str, revision: str, requests: IntArray, probabilities: list[float]
) -> IntArray:
    """Per-tick counts in each cell (ticks × cells)."""
    p = np.asarray(probabilities, dtype=float)
    p = p / p.sum()
    rng = stream(seed, "multinomial", metric, revision)
    return rng.multinomial(requests, p).astype(np.int64)


def paired_probabilities(incumbent_mix: tuple[float, ...], disagreement: float) -> list[float]:
    """Cells of the (incumbent row, challenger column) table, flattened row by row: the
    incumbent decides by its mix; the challenger agrees with probability ``1 - disagreement`` and
    otherwise picks one of the other categories evenly."""
    k = len(incumbent_mix)
    total = sum(incumbent_mix)
    return [
        (m / total) * ((1.0 - disagreement) if i == j else disagreement / (k - 1))
        for i, m in enumerate(incumbent_mix)
        for j in range(k)
    ]


def events_per_tick(
    seed: int, metric: str, revision: str, requests: IntArray, probability: float
) -> IntArray:
    rng = stream(seed, "binomial", metric, revision)
    return rng.binomial(requests, probability).astype(np.int64)


def samples_per_step(
    seed: int, metric: str, revision: str, behaviour: RevisionBehaviour, steps: int
) -> NDArray[np.float64]:
    rng = stream(seed, "samples", metric, revision)
    return rng.normal(behaviour.sample_mean, behaviour.sample_sd, size=steps).astype(np.float64)
