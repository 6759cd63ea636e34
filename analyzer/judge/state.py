"""The judge's sequential state, carried from look to look (database row, backtest loop).

It holds only what validity needs: the last cumulative counts (to detect counter resets and
repeated looks), each component's alpha-spending state or running e-value, frozen tail
thresholds, sticky decisions and the SRM guard. It is an immutable value; ``judge`` returns a new
one. ``to_json``/``from_json`` round-trip exactly (floats are stored as JSON numbers).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analyzer.domain.errors import InvalidInputError
from analyzer.stats.spending import BoundaryState

STATE_VERSION = 1


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _float(x: object) -> float:
    if isinstance(x, str):
        return float(x)
    if isinstance(x, int | float):
        return float(x)
    raise InvalidInputError(f"not a number: {x!r}", field="state")


def _pack(masses: tuple[float, ...]) -> str:
    """Lattice masses as base64 little-endian float64: exact, compact and fast to parse."""
    return base64.b64encode(np.asarray(masses, dtype="<f8").tobytes()).decode("ascii")


def _unpack(text: object) -> tuple[float, ...]:
    if not isinstance(text, str):
        raise InvalidInputError("lattice masses must be a base64 string", field="state")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        values: list[float] = np.frombuffer(raw, dtype="<f8").tolist()
    except ValueError as exc:
        raise InvalidInputError(f"corrupt lattice masses: {exc}", field="state") from None
    return tuple(values)


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricState:
    """Per-metric sequential state. ``decision`` is ``"fail"`` or ``"pass"`` once decided."""

    looks: int = 0
    counts: tuple[float, ...] = ()
    boundaries: tuple[tuple[str, BoundaryState], ...] = ()
    max_log_e: float = 0.0
    tail_bounds: tuple[tuple[float, float], ...] = ()
    decision: str | None = None
    decided_look: int | None = None
    srm_max_log_e: float = 0.0
    srm: bool = False
    # The per-arm horizon the boundaries were computed with: fixed at its first use, because
    # the lattice's information scale is normalised by it (a bake-derived horizon is projected
    # once, then kept; see docs/statistics.md "Bake-aware analyses").
    horizon: float | None = None

    def boundary(self, name: str) -> BoundaryState:
        return dict(self.boundaries).get(name, BoundaryState())

    def to_json(self) -> dict[str, Any]:
        return {
            "looks": self.looks,
            "counts": list(self.counts),
            "boundaries": {
                name: {
                    "info": b.info,
                    "spent": b.spent,
                    "offset": b.offset,
                    "masses": _pack(b.masses),
                    "z_boundary": _num(b.z_boundary),
                    **({"reference": list(b.reference)} if b.reference else {}),
                }
                for name, b in self.boundaries
            },
            "max_log_e": _num(self.max_log_e),
            "tail_bounds": [list(t) for t in self.tail_bounds],
            "decision": self.decision,
            "decided_look": self.decided_look,
            "srm_max_log_e": _num(self.srm_max_log_e),
            "srm": self.srm,
            "horizon": self.horizon,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MetricState:
        bounds = tuple(
            (
                str(name),
                BoundaryState(
                    info=_float(b["info"]),
                    spent=_float(b["spent"]),
                    offset=int(b["offset"]),
                    masses=_unpack(b["masses"]),
                    z_boundary=_float(b["z_boundary"]),
                    reference=tuple(_float(r) for r in b.get("reference", ())),
                ),
            )
            for name, b in dict(d.get("boundaries", {})).items()
        )
        decided = d.get("decided_look")
        return cls(
            looks=int(d.get("looks", 0)),
            counts=tuple(_float(c) for c in d.get("counts", ())),
            boundaries=bounds,
            max_log_e=_float(d.get("max_log_e", 0.0)),
            tail_bounds=tuple((_float(q), _float(b)) for q, b in d.get("tail_bounds", ())),
            decision=d.get("decision"),
            decided_look=None if decided is None else int(decided),
            srm_max_log_e=_float(d.get("srm_max_log_e", 0.0)),
            srm=bool(d.get("srm", False)),
            horizon=None if d.get("horizon") is None else _float(d["horizon"]),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class JudgeState:
    """Sequential state of one analysis (one canary/baseline pair), keyed by metric name.

    ``failed`` holds the reason of the first look whose overall verdict was ``fail``: a fail is
    final, so every later look answers ``fail`` whatever data is missing (``pipeline.judge``).
    """

    metrics: tuple[tuple[str, MetricState], ...] = field(default=())
    failed: str | None = None

    def metric(self, name: str) -> MetricState:
        return dict(self.metrics).get(name, MetricState())

    def with_metric(self, name: str, state: MetricState) -> JudgeState:
        kept = tuple((n, s) for n, s in self.metrics if n != name)
        return replace(self, metrics=(*kept, (name, state)))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "metrics": {name: s.to_json() for name, s in self.metrics},
            "failed": self.failed,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> JudgeState:
        if not isinstance(d, Mapping) or d.get("version") != STATE_VERSION:
            raise InvalidInputError(f"unsupported judge state (want version {STATE_VERSION})")
        metrics = d.get("metrics", {})
        if not isinstance(metrics, Mapping):
            raise InvalidInputError("metrics must be an object", field="state.metrics")
        try:
            parsed = tuple((str(n), MetricState.from_json(s)) for n, s in metrics.items())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"corrupt judge state: {exc!r}", field="state") from None
        failed = d.get("failed")
        if failed is not None and not isinstance(failed, str):
            raise InvalidInputError("failed must be a string", field="state.failed")
        return cls(metrics=parsed, failed=failed)
