"""Lan-DeMets alpha spending with boundaries computed for the looks that actually happen.

A group-sequential test with a known horizon spends its alpha as a function ``alpha(t)`` of the
information fraction ``t`` (Lan & DeMets 1983). At each look the boundary ``c_k`` is chosen so
that the probability, under the null, of crossing *for the first time* at this look equals the
alpha newly spent. That probability needs the distribution of the statistic given that it has
not crossed before, which we carry from look to look as a sub-probability mass on a lattice of
the score ``W = Z * sqrt(s)`` (a Brownian motion in information time ``s``). Nothing is planned
in advance: any number and timing of looks stays valid, because each look only spends what the
spending function allows at its own (data-independent) information fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from analyzer.stats import lazy_special as special
from analyzer.stats import portable

GRID_STEP = 0.02  # lattice step of W; boundary error is O(step**2)
_KERNEL_SDS = 8.0  # the Gaussian increment kernel is truncated at 8 standard deviations
_TRIM = 1e-14  # lattice mass below this is dropped to keep the carried state small


class SpendingFamily(StrEnum):
    OBRIEN_FLEMING = "obrien-fleming"
    POCOCK = "pocock"
    HWANG_SHIH_DECANI = "hsd"


@dataclass(frozen=True, kw_only=True, slots=True)
class SpendingFunction:
    """``alpha(t)``: cumulative type-I error allowed by information fraction ``t`` in [0, 1].

    ``gamma`` is the Hwang-Shih-DeCani shape: negative values spend late (O'Brien-Fleming-like),
    positive values spend early (Pocock-like), zero spends linearly.
    """

    family: SpendingFamily = SpendingFamily.HWANG_SHIH_DECANI
    gamma: float = 0.0

    @classmethod
    def parse(cls, text: str) -> SpendingFunction:
        """Parse ``obrien-fleming``, ``pocock`` or ``hsd:<gamma>``."""
        name, _, arg = text.partition(":")
        family = SpendingFamily(name)
        if family is SpendingFamily.HWANG_SHIH_DECANI:
            gamma = float(arg) if arg else 0.0
            if not math.isfinite(gamma):
                raise ValueError(f"gamma must be finite, not {arg}")
            return cls(family=family, gamma=gamma)
        return cls(family=family)

    def describe(self) -> str:
        if self.family is SpendingFamily.HWANG_SHIH_DECANI:
            return f"hsd:{self.gamma:g}"
        return self.family.value

    def spent(self, alpha: float, t: float) -> float:
        t = min(max(t, 0.0), 1.0)
        if t <= 0.0:
            return 0.0
        if self.family is SpendingFamily.OBRIEN_FLEMING:
            # 2 * P(Z > z_{alpha/2} / sqrt(t)); ndtr/ndtri, not scipy.stats (a 0.3 s import)
            return float(2.0 * special.ndtr(special.ndtri(alpha / 2.0) / math.sqrt(t)))
        if self.family is SpendingFamily.POCOCK:
            return alpha * math.log1p((math.e - 1.0) * t)
        if abs(self.gamma) < 1e-9:
            return alpha * t
        return alpha * (-math.expm1(-self.gamma * t)) / (-math.expm1(-self.gamma))


@dataclass(frozen=True, kw_only=True, slots=True)
class BoundaryState:
    """What the next look needs: the not-yet-crossed null mass of W on the lattice.

    ``masses[j]`` sits at ``W = (offset + j) * GRID_STEP``. ``info`` is the information time of
    the last look, ``spent`` the alpha already spent, ``z_boundary`` the last boundary used.
    ``reference`` holds what a lattice needs from its last look besides ``info`` (the exact
    count lattice of :mod:`analyzer.stats.exact` keeps the requests per arm there); empty for
    the Gaussian and radial lattices.
    """

    info: float = 0.0
    spent: float = 0.0
    offset: int = 0
    masses: tuple[float, ...] = (1.0,)
    z_boundary: float = math.inf
    reference: tuple[float, ...] = ()


def _kernel(variance: float) -> tuple[int, np.ndarray]:
    sd = math.sqrt(variance)
    half = math.ceil(_KERNEL_SDS * sd / GRID_STEP) + 1
    edges = (np.arange(-half, half + 2) - 0.5) * GRID_STEP / sd
    return half, np.diff(special.ndtr(edges))


def _propagate(state: BoundaryState, info: float) -> tuple[int, np.ndarray]:
    half, kernel = _kernel(info - state.info)
    masses = np.asarray(state.masses, dtype=np.float64)
    return state.offset - half, convolve_masses(masses, kernel)


def convolve_masses(masses: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The lattice's masses moved by a transition kernel, clipped at 0 (the FFT that long
    operands go through leaves tiny negative round-off). The same bits on every CPU
    (:func:`analyzer.stats.portable.convolve`; ``np.convolve`` is a BLAS dot per output)."""
    spread: np.ndarray = np.maximum(portable.convolve(masses, kernel), 0.0)
    return spread


def trimmed(offset: int, masses: np.ndarray) -> tuple[int, tuple[float, ...]]:
    keep = np.nonzero(masses > _TRIM)[0]
    if keep.size == 0:
        return offset, (0.0,)
    lo, hi = int(keep[0]), int(keep[-1])
    return offset + lo, tuple(float(m) for m in masses[lo : hi + 1])


def next_boundary(
    state: BoundaryState, *, info: float, fraction: float, alpha: float, spending: SpendingFunction
) -> BoundaryState:
    """Advance to a look at information time ``info`` and information fraction ``fraction``.

    Returns the new state; its ``z_boundary`` is the critical value for ``Z`` at this look
    (``inf`` when no alpha is left to spend). A look without new information changes nothing.
    """
    if info <= state.info:
        return state
    offset, masses = _propagate(state, info)
    increment = spending.spent(alpha, fraction) - state.spent
    return cut_lattice(
        state,
        info=info,
        offset=offset,
        masses=masses,
        increment=increment,
        step=GRID_STEP,
        cell_top=0.5,
    )


def cut_lattice(
    state: BoundaryState,
    *,
    info: float,
    offset: int,
    masses: np.ndarray,
    increment: float,
    step: float,
    cell_top: float,
) -> BoundaryState:
    """Spend ``increment`` of alpha at the top of the propagated null lattice: find where that
    much mass lies above, drop it (the paths that crossed) and put the boundary there.

    Shared by the Gaussian lattice here and the radial one (``radial.py``): cell ``j`` reaches up
    to ``(offset + j + cell_top) * step`` on the statistic's scale (0.5 for cells centred on the
    grid, 1.0 for cells ``[j h, (j + 1) h)``); the boundary is cut inside a cell by linear
    interpolation of its mass. No increment (the spending function did not grow) cuts nothing.
    """
    if increment <= 0.0:
        lo, kept = trimmed(offset, masses)
        return BoundaryState(info=info, spent=state.spent, offset=lo, masses=kept)
    tail = np.cumsum(masses[::-1])[::-1]  # tail[j] = mass at or above cell j
    above = np.append(tail[1:], 0.0)
    cells = np.nonzero(tail >= increment)[0]
    j = int(cells[-1]) if cells.size else 0
    inside = min(max((increment - above[j]) / masses[j], 0.0), 1.0) if masses[j] > 0 else 0.0
    boundary = (offset + j + cell_top - inside) * step
    masses = masses.copy()
    masses[j] *= 1.0 - inside
    masses[j + 1 :] = 0.0
    lo, kept = trimmed(offset, masses)
    return BoundaryState(
        info=info,
        spent=state.spent + increment,
        offset=lo,
        masses=kept,
        z_boundary=float(boundary / math.sqrt(info)),
    )


def boundaries(
    infos: list[float], fractions: list[float], alpha: float, spending: SpendingFunction
) -> list[float]:
    """Critical values of ``Z`` for a whole look schedule (for benchmarks and tests)."""
    state = BoundaryState()
    out: list[float] = []
    for info, fraction in zip(infos, fractions, strict=True):
        state = next_boundary(state, info=info, fraction=fraction, alpha=alpha, spending=spending)
        out.append(state.z_boundary)
    return out
