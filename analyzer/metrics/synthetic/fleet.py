"""``SyntheticFleetSource``: seeded request and error counts for a fleet of models (demo, tests).

Time is cut into ticks (60 s by default), drawn in blocks of 64 ticks from a generator seeded by
(seed, model, block), so a tick's counts never depend on the window that asks. Each model's
requests per tick are Poisson around its own traffic (log-normal across models), its errors
binomial at the rate of what it served at that tick. Which
artifact a model served at a tick comes from ``serving``, the model's history of moves (the demo
asks the in-memory fleet target); its error rate from ``rate_of`` (a model's base rate, or what a
harmful artifact does to it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from analyzer.domain.fleet import FleetRateQuery, RateWindows

Serving = Callable[[str], Sequence[tuple[float, str]]]  # model -> [(unix time, storage URI)]
RateOf = Callable[[str, str, float], float]  # (model, storage URI, base rate) -> error rate
_MAX_BLOCKS = 20_000  # kept draws (64 ticks of one model, ~1.5 KiB with the key): ~30 MB at most


class SyntheticFleetSource:
    def __init__(
        self,
        *,
        seed: int,
        models: Sequence[str],
        serving: Serving,
        rate_of: RateOf,
        requests_per_tick: float = 10.0,
        tick_seconds: float = 60.0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self._seed = seed
        self._index = {m: i for i, m in enumerate(models)}
        self._traffic = requests_per_tick * rng.lognormal(0.0, 0.8, size=len(models))
        self._base = rng.uniform(0.003, 0.03, size=len(models))
        self._serving = serving
        self._rate_of = rate_of
        self._tick = tick_seconds
        # A block's draws depend on (model, block) and the rates it was drawn at only, and every
        # look asks for the same blocks again: the draws are kept, keyed by those rates, so a
        # look costs a lookup per block instead of a new generator (same numbers either way).
        self._blocks: dict[tuple[int, int, bytes], tuple[np.ndarray, np.ndarray]] = {}

    def base_rate(self, model: str) -> float:
        return float(self._base[self._index[model]])

    def traffic(self, model: str) -> float:
        """The model's mean requests per tick."""
        return float(self._traffic[self._index[model]])

    def _rates(
        self, model: str, i: int, ticks: range, history: Sequence[tuple[float, str]]
    ) -> np.ndarray:
        """The error rate at the middle of each tick, from the model's move history."""
        base = float(self._base[i])
        mids = (np.arange(ticks.start, ticks.stop) + 0.5) * self._tick
        if not history:
            return np.full(len(ticks), base)
        times = np.array([t for t, _ in history])
        rate_of_move = np.array([self._rate_of(model, uri, base) for _, uri in history])
        which = np.searchsorted(times, mids, side="right") - 1
        out: np.ndarray = np.where(which >= 0, rate_of_move[np.maximum(which, 0)], base)
        return out

    def read(
        self,
        queries: Sequence[FleetRateQuery],
        *,
        namespace: str,
        models: Sequence[str],
        before_end: datetime,
        after_start: datetime,
        at: datetime,
    ) -> dict[str, dict[str, RateWindows]]:
        """Every query reads the same error counter (the demo has one kind of error)."""
        del namespace
        width = at.timestamp() - after_start.timestamp()
        after = self._ticks(after_start.timestamp(), at.timestamp())
        before = self._ticks(before_end.timestamp() - width, before_end.timestamp())
        out: dict[str, RateWindows] = {}
        for model in models:
            i = self._index.get(model)
            if i is None:
                continue
            history = self._serving(model)
            a_err, a_req = self._counts(i, model, after, history)
            b_err, b_req = self._counts(i, model, before, history)
            out[model] = RateWindows(
                after_events=a_err, after_total=a_req, before_events=b_err, before_total=b_req
            )
        return {q.name: out for q in queries}

    def _ticks(self, start: float, end: float) -> range:
        return range(math.ceil(start / self._tick), math.floor(end / self._tick))

    def _counts(
        self, i: int, model: str, ticks: range, history: Sequence[tuple[float, str]]
    ) -> tuple[float, float]:
        # Fixed blocks of 64 ticks, so a tick's counts never depend on the window asking.
        errors = requests = 0.0
        if not ticks:
            return errors, requests
        for block in range(ticks.start // 64, (ticks.stop - 1) // 64 + 1):
            lo, hi = max(block * 64, ticks.start), min(block * 64 + 64, ticks.stop)
            e, r = self._block(i, model, block, range(lo, hi), history)
            errors, requests = errors + e, requests + r
        return errors, requests

    def _block(
        self,
        i: int,
        model: str,
        block: int,
        ticks: range,
        history: Sequence[tuple[float, str]],
    ) -> tuple[float, float]:
        whole = range(block * 64, block * 64 + 64)
        rates = np.clip(self._rates(model, i, whole, history), 0.0, 1.0)
        key = (i, block, rates.tobytes())
        drawn = self._blocks.get(key)
        if drawn is None:
            rng = np.random.default_rng([self._seed, i, block])
            requests = rng.poisson(self._traffic[i], size=64)
            # Drawn in tick order: a later move (which changes later ticks' rates) never
            # changes the draws of earlier ticks.
            drawn = (rng.binomial(requests, rates), requests)
            if len(self._blocks) >= _MAX_BLOCKS:
                self._blocks.clear()
            self._blocks[key] = drawn
        errors, requests = drawn
        sl = slice(ticks.start - block * 64, ticks.stop - block * 64)
        return float(errors[sl].sum()), float(requests[sl].sum())
