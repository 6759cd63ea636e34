"""``InMemoryFleetTarget``: a fleet of models kept in a dictionary, for the demo and tests.

It behaves as the ModelMesh target does where a caller can see it: a move returns only once
the model reports ready on the new artifact, a model can be made to fail loading (``broken``),
and ``select`` filters by labels. It records every move, so tests can check what was asked.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from analyzer.domain.errors import FatalIntegrationError, NotFoundError
from analyzer.domain.fleet import ServedModel
from analyzer.domain.model import ModelRef


@dataclass(kw_only=True, slots=True)
class _Model:
    storage_uri: str
    runtime: str | None
    labels: dict[str, str] = field(default_factory=dict)
    history: list[tuple[float, str]] = field(default_factory=list)  # (unix time, storage URI)


class InMemoryFleetTarget:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[ModelRef, _Model] = {}
        self.broken: set[str] = set()  # artifacts (storage URIs) that fail to load
        self.moves: list[tuple[ModelRef, str]] = []

    def add_model(
        self,
        ref: ModelRef,
        *,
        storage_uri: str,
        runtime: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._models[ref] = _Model(
                storage_uri=storage_uri,
                runtime=runtime,
                labels=dict(labels or {}),
                history=[(-math.inf, storage_uri)],
            )

    def select(self, namespace: str, labels: Mapping[str, str]) -> list[str]:
        with self._lock:
            return sorted(
                ref.name
                for ref, model in self._models.items()
                if ref.namespace == namespace
                and all(model.labels.get(k) == v for k, v in labels.items())
            )

    def read(self, ref: ModelRef) -> ServedModel:
        with self._lock:
            model = self._get(ref)
            return ServedModel(storage_uri=model.storage_uri, runtime=model.runtime, ready=True)

    def read_all(self, namespace: str) -> dict[str, ServedModel]:
        with self._lock:
            return {
                ref.name: ServedModel(storage_uri=m.storage_uri, runtime=m.runtime, ready=True)
                for ref, m in self._models.items()
                if ref.namespace == namespace
            }

    def move(self, ref: ModelRef, *, storage_uri: str, runtime: str | None) -> ServedModel:
        with self._lock:
            model = self._get(ref)
            self.moves.append((ref, storage_uri))
            if storage_uri in self.broken:
                raise FatalIntegrationError(f"{ref}: {storage_uri} failed to load")
            if storage_uri != model.storage_uri:
                model.history.append((self._clock(), storage_uri))
            model.storage_uri = storage_uri
            if runtime is not None:
                model.runtime = runtime
            return ServedModel(storage_uri=model.storage_uri, runtime=model.runtime, ready=True)

    def history(self, ref: ModelRef) -> list[tuple[float, str]]:
        """Every artifact ``ref`` was moved to, with when (the first since forever)."""
        with self._lock:
            model = self._models.get(ref)
            return [] if model is None else list(model.history)

    def served_at(self, ref: ModelRef, at: float) -> str | None:
        """The artifact ``ref`` served at unix time ``at`` (``None`` for an unknown model)."""
        with self._lock:
            model = self._models.get(ref)
            if model is None:
                return None
            times = [t for t, _ in model.history]
            return model.history[max(bisect.bisect_right(times, at) - 1, 0)][1]

    def _get(self, ref: ModelRef) -> _Model:
        model = self._models.get(ref)
        if model is None:
            raise NotFoundError(f"model {ref} not found")
        return model
