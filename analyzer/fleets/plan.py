"""Wave plans: which models move in which wave, and how long each wave is watched (pure).

Models are put in a random order fixed by the fleet's name (a hash, so the order is the same on
every replica and after a restart), then the plan's cumulative percentages cut that order into
waves: ``2 -> 10 -> 50 -> 100`` over 420 models gives waves of 9, 33, 168 and 210 models. The
random order matters for the statistics: the models still waiting are the concurrent controls
of the wave being judged, and only a random split makes them comparable (a wave of the busiest
merchants first would compare busy models against quiet ones).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.domain.errors import InvalidInputError


@dataclass(frozen=True, kw_only=True, slots=True)
class WaveSpec:
    """One wave: the cumulative share of the fleet upgraded once it has moved, how long it is
    watched before it may pass (``dwell_seconds``), when it must end (``deadline_seconds``,
    after which the fleet holds if the wave has not passed), and the promotion gates (by name:
    ``change_window``, ``servicenow``, …) that must be open before it moves."""

    percent: float
    dwell_seconds: float
    deadline_seconds: float
    gates: tuple[str, ...] = ()  # promotion gates that must be open before this wave moves

    def __post_init__(self) -> None:
        if not 0.0 < self.percent <= 100.0:
            raise InvalidInputError("a wave's percent must be in (0, 100]", field="percent")
        if not self.dwell_seconds > 0:
            raise InvalidInputError("dwell_seconds must be positive", field="dwell_seconds")
        if self.deadline_seconds < self.dwell_seconds:
            raise InvalidInputError(
                "deadline_seconds must be at least dwell_seconds", field="deadline_seconds"
            )


def check_plan(waves: Sequence[WaveSpec]) -> tuple[WaveSpec, ...]:
    """A plan's waves must grow strictly and end at 100 %."""
    if not waves:
        raise InvalidInputError("a wave plan needs at least one wave", field="waves")
    for i, (a, b) in enumerate(itertools.pairwise(waves)):
        if b.percent <= a.percent:
            raise InvalidInputError(
                f"wave {i + 1} ({b.percent} %) must exceed wave {i} ({a.percent} %)",
                field=f"waves.{i + 1}.percent",
            )
    if waves[-1].percent != 100.0:
        raise InvalidInputError("the last wave must reach 100 %", field="waves")
    return tuple(waves)


def fleet_order(fleet: str, models: Sequence[str]) -> tuple[str, ...]:
    """The models in the fleet's fixed random order."""
    if len(set(models)) != len(models):
        raise InvalidInputError("a model appears twice in the fleet", field="models")

    def key(model: str) -> bytes:
        return hashlib.sha256(f"{fleet}\0{model}".encode()).digest()

    return tuple(sorted(models, key=key))


def cut_waves(
    fleet: str, models: Sequence[str], plan: Sequence[WaveSpec]
) -> tuple[tuple[WaveSpec, tuple[str, ...]], ...]:
    """Each wave's spec and models. No wave is empty: a tiny percentage still moves one model,
    and a wave that would add no model (more waves than models) is dropped."""
    order = fleet_order(fleet, models)
    n = len(order)
    if n == 0:
        raise InvalidInputError("the fleet selects no models", field="models")
    out: list[tuple[WaveSpec, tuple[str, ...]]] = []
    done = 0
    for spec in check_plan(plan):
        upto = min(n, max(done + 1, math.ceil(spec.percent * n / 100.0 - 1e-9)))
        if upto > done:
            out.append((spec, order[done:upto]))
            done = upto
    return tuple(out)
