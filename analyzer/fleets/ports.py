"""What the fleet engine needs from the outside, as small Protocols.

Wiring builds the concrete ones: :class:`~analyzer.metrics.prometheus.fleet.PrometheusFleetSource`
and :class:`~analyzer.targets.modelmesh.ModelMeshTarget` in a cluster, the synthetic source and
:class:`~analyzer.targets.memory.fleet.InMemoryFleetTarget` for the demo and tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from analyzer.domain.fleet import FleetRateQuery, RateWindows, ServedModel
from analyzer.domain.model import ModelRef


class FleetSource(Protocol):
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
        """Per metric and model: counts in ``[after_start, at]`` and in the mirror window of
        the same length ending at ``before_end``. One query per metric for all ``models``.
        A model without series is left out. Raises the integration errors of the source."""
        ...


class FleetTarget(Protocol):
    """Moves one model of a fleet at a time between versions (a model moves whole: ModelMesh
    has no traffic split). Every call is synchronous and idempotent."""

    def select(self, namespace: str, labels: Mapping[str, str]) -> list[str]:
        """The names of the InferenceServices in ``namespace`` carrying all ``labels``."""
        ...

    def read(self, ref: ModelRef) -> ServedModel:
        """What the model serves now (no side effects). ``NotFoundError`` if it is not there."""
        ...

    def read_all(self, namespace: str) -> dict[str, ServedModel]:
        """What every model in ``namespace`` serves now, by name, in one call (a fleet's start
        reads hundreds of models: one list, not one request each). No side effects."""
        ...

    def move(self, ref: ModelRef, *, storage_uri: str, runtime: str | None) -> ServedModel:
        """Point the model at ``storage_uri`` (and ``runtime`` when given) and return once the
        serving system reports it loaded and ready, or raise (``RetryableError`` when it did
        not get there in time, ``FatalIntegrationError`` when it failed to load)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveGateRequest:
    """May wave ``wave`` (0-based) of a fleet rollout move now?"""

    fleet_id: str
    namespace: str
    name: str
    version: str
    initiator: str
    change_request: str | None
    wave: int
    percent: float
    gates: tuple[str, ...]
    now: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveGateCheck:
    open: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


class FleetGateChecker(Protocol):
    def check(self, request: WaveGateRequest) -> WaveGateCheck:
        """Are all of the wave's gates open? Never raises: undecidable is closed."""
        ...


class NoWaveGates:
    """Without configured gates: a wave that names none is open, one that names any is
    closed (fail closed: a gate asked for and not there never opens)."""

    def check(self, request: WaveGateRequest) -> WaveGateCheck:
        if not request.gates:
            return WaveGateCheck(open=True, reason="no gates required")
        return WaveGateCheck(
            open=False,
            reason=f"gates {', '.join(request.gates)} are not configured on this server",
        )
