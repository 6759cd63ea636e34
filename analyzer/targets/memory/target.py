"""``InMemoryTarget``: a thread-safe traffic target that keeps the split in a dictionary.

It exists for ``canary-analyzer demo`` and for tests of the rollout engine, so it mimics the
observable behaviour of a real target (abort keeps the canary revision at 0 %, promote makes the
canary stable) and can inject latency and failures the way a real cluster would produce them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from analyzer.domain.errors import FatalIntegrationError, NotFoundError, RetryableError
from analyzer.domain.model import ModelRef
from analyzer.targets.base import MirrorState, RevisionShare, TrafficState, check_weight


@dataclass(kw_only=True, slots=True)
class _Split:
    stable: str
    canary: str | None
    weight: int


class InMemoryTarget:
    """A :class:`~analyzer.targets.base.TrafficTarget` backed by memory.

    ``latency`` (seconds) is slept before every call through the injected ``sleep``;
    :meth:`fail_next` makes the next N calls raise :class:`RetryableError` *before* changing
    anything, so a failed call never leaves a half-applied weight behind.
    """

    def __init__(
        self, *, latency: float = 0.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._lock = threading.Lock()
        self._splits: dict[ModelRef, _Split] = {}
        self._latency = latency
        self._sleep = sleep
        self._failures_left = 0
        # model -> (mirrored revision, percent): the in-memory mesh's request mirror
        self._mirrors: dict[ModelRef, tuple[str, int]] = {}
        self.calls: list[tuple[str, ModelRef, int | None]] = []

    def add_model(
        self,
        ref: ModelRef,
        *,
        stable_revision: str,
        canary_revision: str | None = None,
        weight: int = 0,
    ) -> None:
        """Register (or replace) a model serving ``stable_revision`` beside an optional canary."""
        check_weight(weight)
        with self._lock:
            self._splits[ref] = _Split(
                stable=stable_revision,
                canary=canary_revision,
                weight=weight if canary_revision else 0,
            )

    def register_rollout(
        self, ref: ModelRef, *, stable_revision: str, canary_revision: str
    ) -> None:
        """A rollout's model: registered if unknown, its canary deployed at 0 % if new."""
        with self._lock:
            split = self._splits.get(ref)
            if split is None:
                self._splits[ref] = _Split(stable=stable_revision, canary=canary_revision, weight=0)
            elif canary_revision not in (split.canary, split.stable):
                split.canary, split.weight = canary_revision, 0

    def deploy_canary(self, ref: ModelRef, revision: str) -> None:
        """Deploy a new canary revision at 0 %, as a platform team's new spec would."""
        with self._lock:
            split = self._get(ref)
            split.canary, split.weight = revision, 0

    def fail_next(self, count: int) -> None:
        """Make the next ``count`` calls raise :class:`RetryableError` without side effects."""
        with self._lock:
            self._failures_left = count

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        check_weight(weight)
        with self._enter("set_weight", ref, weight):
            split = self._get(ref)
            if split.canary is None:
                if weight == 0:
                    return self._state(split)
                raise FatalIntegrationError(f"{ref} has no canary revision to send {weight} % to")
            split.weight = weight
            return self._state(split)

    def read_weight(self, ref: ModelRef) -> TrafficState:
        with self._enter("read_weight", ref, None):
            return self._state(self._get(ref))

    def share_of(self, ref: ModelRef, revision: str) -> int | None:
        """The percent of ``ref``'s traffic ``revision`` serves now, ``None`` for a model or
        revision this target does not route. A peek for the embedded synthetic source: not a
        target call (not recorded in ``calls``, no latency, no injected failure consumed)."""
        with self._lock:
            split = self._splits.get(ref)
            if split is None:
                return None
            if revision == split.canary:
                return split.weight
            if revision == split.stable:
                return 100 - split.weight if split.canary is not None else 100
            return None

    def promote(self, ref: ModelRef) -> TrafficState:
        with self._enter("promote", ref, None):
            split = self._get(ref)
            if split.canary is not None:
                split.stable, split.canary, split.weight = split.canary, None, 0
            return self._state(split)

    def abort(self, ref: ModelRef) -> TrafficState:
        with self._enter("abort", ref, 0):
            split = self._get(ref)
            split.weight = 0
            return self._state(split)

    # -- the request mirror of a shadow run (``MirrorTarget``) ---------------------------------
    def start_mirror(self, ref: ModelRef, revision: str, percent: int) -> MirrorState:
        check_weight(percent)
        with self._enter("start_mirror", ref, percent):
            split = self._get(ref)
            self._mirrors[ref] = (revision, percent)
            return self._mirror(ref, split)

    def stop_mirror(self, ref: ModelRef) -> MirrorState:
        with self._enter("stop_mirror", ref, 0):
            split = self._get(ref)
            self._mirrors.pop(ref, None)
            return self._mirror(ref, split)

    def read_mirror(self, ref: ModelRef) -> MirrorState:
        with self._enter("read_mirror", ref, None):
            return self._mirror(ref, self._get(ref))

    def mirrored(self, ref: ModelRef) -> tuple[str, int] | None:
        """The mirror now (revision, percent), a peek like :meth:`share_of`."""
        with self._lock:
            return self._mirrors.get(ref)

    def _mirror(self, ref: ModelRef, split: _Split) -> MirrorState:
        revision, percent = self._mirrors.get(ref, (None, 0))
        return MirrorState(
            serving_revision=split.stable, mirror_revision=revision, mirror_percent=percent
        )

    @contextmanager
    def _enter(self, op: str, ref: ModelRef, weight: int | None) -> Iterator[None]:
        """Hold the lock for one call, record it, and consume an injected failure first."""
        if self._latency:
            self._sleep(self._latency)
        with self._lock:
            self.calls.append((op, ref, weight))
            if self._failures_left > 0:
                self._failures_left -= 1
                raise RetryableError(f"injected failure in {op} for {ref}")
            yield

    def _get(self, ref: ModelRef) -> _Split:
        split = self._splits.get(ref)
        if split is None:
            raise NotFoundError(f"model {ref} is not registered with the in-memory target")
        return split

    @staticmethod
    def _state(split: _Split) -> TrafficState:
        shares = [RevisionShare(revision=split.stable, percent=100 - split.weight)]
        if split.canary is not None:
            shares.append(RevisionShare(revision=split.canary, percent=split.weight))
        return TrafficState(
            stable_revision=split.stable,
            canary_revision=split.canary,
            canary_weight=split.weight,
            requested_weight=split.weight if split.canary else None,
            settled=True,
            shares=tuple(shares),
        )
