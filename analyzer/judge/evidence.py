"""What a kind-specific stage hands the shared sequential stage: components plus report numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.domain.result import JsonValue
from analyzer.domain.verdict import Direction
from analyzer.judge.sequential import Component


@dataclass(frozen=True, kw_only=True, slots=True)
class Omnibus:
    """Pearson X**2 of the 2 x K table with its degrees of freedom (unordered categories).

    ``dof`` counts the categories seen so far (minus one), for the e-process; ``categories`` is
    the declared K, fixed for the whole analysis, which the alpha-spending lattice needs (a
    category not seen yet only makes the fixed-dimension boundary conservative).
    """

    chi2: float
    dof: int
    neff: float
    categories: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Evidence:
    components: tuple[Component, ...]
    n_baseline: int
    n_canary: int
    summary: str  # one clause for the reason, e.g. "canary 0.90% vs baseline 0.04%"
    harm: str  # what the test looks for, e.g. "harm beyond +0.1 pp" or "a change of the mix"
    estimate: dict[str, JsonValue] = field(default_factory=dict)
    descriptive: dict[str, JsonValue] = field(default_factory=dict)
    complete: bool = True
    tail_bounds: tuple[tuple[float, float], ...] = ()
    omnibus: Omnibus | None = None


def orientations(direction: Direction) -> tuple[tuple[str, int, float], ...]:
    """(suffix, sign, weight share) per harmful direction; ``either`` splits alpha in two."""
    if direction is Direction.INCREASE:
        return (("", 1, 1.0),)
    if direction is Direction.DECREASE:
        return (("", -1, 1.0),)
    return (("+", 1, 0.5), ("-", -1, 0.5))


def pct(x: float) -> str:
    return f"{100 * x:.3g}%"
