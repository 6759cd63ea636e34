"""Lan-DeMets alpha spending for the omnibus (radial) test of an unordered mix.

The whitened difference of two category mixes is, under the null, a ``dof``-dimensional
Brownian motion ``W`` in information time (``dof = K - 1`` for ``K`` categories); Pearson's X**2
at information ``s`` is ``|W|**2 / s``. A change of the mix in *any* direction makes ``|W|``
grow, so the omnibus group-sequential test fails when ``R = |W|`` crosses a boundary.

``R`` is a Bessel process of dimension ``dof``: it is Markov on its own, and given ``R_s = r``,
``R_t**2 / (t - s)`` is noncentral chi-square with ``dof`` degrees of freedom and noncentrality
``r**2 / (t - s)``. So the same recipe as :mod:`analyzer.stats.spending` works on a
one-dimensional lattice of the radius: carry the null mass of ``R`` that has not crossed yet,
propagate it to the new look with the exact Bessel transition (cell by cell, through the
noncentral chi-square CDF), and cut it where the newly spent alpha lies above. Any number and
timing of looks stays valid; with ``dof = 1`` it is the two-sided Gaussian design.

Cells are ``[j h, (j + 1) h)`` on the radius (``h = RADIAL_STEP``); the state's ``offset`` is the
index of its first cell, and the mass of a cell is moved as if it sat at the cell's centre. The
initial state (``info == 0``) is a point mass at the origin.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from analyzer.stats.spending import BoundaryState, SpendingFunction

FloatArray = npt.NDArray[np.float64]

RADIAL_STEP = 0.02  # lattice step of R, the same resolution as the Gaussian lattice
_REACH_SDS = 7.0  # the transition of one cell is computed within 7 increment s.d. (+ the drift)
_TRIM = 1e-14  # lattice mass below this is dropped to keep the carried state small


def _centres(state: BoundaryState) -> FloatArray:
    if state.info <= 0.0:
        return np.zeros(1)
    cells = np.arange(state.offset, state.offset + len(state.masses), dtype=np.float64)
    centres: FloatArray = (cells + 0.5) * RADIAL_STEP
    return centres


_ASYMPTOTIC_TERMS = 6


def _log_ive(nu: float, x: FloatArray) -> FloatArray:
    """``log(I_nu(x) exp(-x))``: Hankel's large-argument expansion where it is accurate to
    about 1e-9 (``x >= 40 + 2 nu**2``, six terms), scipy's ``ive`` below that (70 times slower).
    """
    mu = 4.0 * nu * nu
    large = x >= 40.0 + 0.5 * mu
    out = np.empty_like(x)
    xl = x[large]
    series = np.ones_like(xl)
    term = np.ones_like(xl)
    for k in range(1, _ASYMPTOTIC_TERMS + 1):
        term = term * -(mu - (2 * k - 1) ** 2) / (k * 8.0 * xl)
        series = series + term
    out[large] = -0.5 * np.log(2.0 * math.pi * xl) + np.log(series)
    small = ~large
    if small.any():
        out[small] = np.log(special.ive(nu, x[small]))
    return out


def _cell_probabilities(
    centres: FloatArray, cells: npt.NDArray[np.int64], delta: float, dof: int
) -> FloatArray:
    """P(R_new in cell k | R_old = centre) for each source (row) and window cell (column).

    From the origin (the first look) the exact chi CDF. From r > 0, Simpson's rule on the exact
    Bessel transition density, with ``nu = dof / 2 - 1``,

        p(rho | r) = (rho / delta) (rho / r)**nu exp(-(rho**2 + r**2) / (2 delta))
                     * I_nu(r rho / delta),

    in logs with the exponentially scaled Bessel function: the noncentral chi-square CDF costs
    time in proportion to the noncentrality, this does not.
    Cells at negative radius get nothing; rows are renormalised by the caller.
    """
    lower = np.maximum(cells, 0) * RADIAL_STEP
    upper = np.maximum(cells + 1, 0) * RADIAL_STEP
    if centres.size == 1 and centres[0] == 0.0:
        origin: FloatArray = special.chdtr(dof, upper**2 / delta) - special.chdtr(
            dof, lower**2 / delta
        )
        return origin
    nu = dof / 2.0 - 1.0
    r = centres[:, None]

    def density(rho: FloatArray) -> FloatArray:
        rho = np.maximum(rho, 1e-12 * RADIAL_STEP)
        x = r * rho / delta
        with np.errstate(divide="ignore"):
            log_p = (
                np.log(rho / delta)
                + nu * np.log(rho / r)
                - (rho - r) ** 2 / (2.0 * delta)
                + _log_ive(nu, x)
            )
        out: FloatArray = np.exp(log_p)
        return out

    # density on the half-cell grid of each row's window; Simpson's rule on each cell shares
    # its ends with the neighbours (two evaluations per cell); negative radii are zeroed below
    first = cells[:, :1] * RADIAL_STEP
    halves = first + np.arange(2 * cells.shape[1] + 1)[None, :] * (RADIAL_STEP / 2.0)
    f = density(halves)
    simpson = (f[:, 0:-1:2] + 4.0 * f[:, 1::2] + f[:, 2::2]) / 6.0
    out: FloatArray = np.where(cells >= 0, simpson * RADIAL_STEP, 0.0)
    return out


def _propagate(state: BoundaryState, info: float, dof: int) -> tuple[int, FloatArray]:
    """Null mass of R at the new look (not yet cut), as (first cell index, masses)."""
    delta = info - state.info
    centres = _centres(state)
    masses = np.asarray(state.masses, dtype=np.float64)
    # A Bessel process drifts outwards by about (dof - 1) * delta / (2 r) and, from the origin,
    # reaches sqrt(dof * delta): the reach covers both on top of the Gaussian spread.
    reach = (_REACH_SDS + math.sqrt(dof)) * math.sqrt(delta)
    band = math.ceil(reach / RADIAL_STEP) + 1
    first = max(int(np.floor(centres[0] / RADIAL_STEP)) - band, 0)
    last = int(np.floor(centres[-1] / RADIAL_STEP)) + band
    home = np.floor(centres / RADIAL_STEP).astype(np.int64)
    # cells k reachable from each source cell: a (sources, 2 * band + 1) window, clipped at 0
    cells = home[:, None] + np.arange(-band, band + 1)[None, :]
    moved = _cell_probabilities(centres, cells, delta, dof) * masses[:, None]
    # the window may clip mass beyond its ends (deep tails only): keep the total exact by
    # renormalising each source's row, so no null mass is lost or invented
    row_total = moved.sum(axis=1, keepdims=True)
    moved = np.where(row_total > 0, moved * (masses[:, None] / np.maximum(row_total, 1e-300)), 0.0)
    valid = cells >= 0
    out: FloatArray = np.bincount(
        (cells[valid] - first).ravel(), weights=moved[valid].ravel(), minlength=last - first + 1
    ).astype(np.float64)
    return first, out


def _trimmed(offset: int, masses: FloatArray) -> tuple[int, tuple[float, ...]]:
    keep = np.nonzero(masses > _TRIM)[0]
    if keep.size == 0:
        return offset, (0.0,)
    lo, hi = int(keep[0]), int(keep[-1])
    return offset + lo, tuple(float(m) for m in masses[lo : hi + 1])


def next_radial_boundary(
    state: BoundaryState,
    *,
    info: float,
    fraction: float,
    alpha: float,
    spending: SpendingFunction,
    dof: int,
) -> BoundaryState:
    """Advance to a look at information time ``info`` and information fraction ``fraction``.

    The returned state's ``z_boundary`` is the critical value for ``sqrt(X**2)`` (the norm of the
    standardized statistic) at this look, ``inf`` when no alpha is left to spend. A look without
    new information changes nothing; after the horizon (nothing left to spend, ever) the lattice
    is no longer carried forward.
    """
    if dof < 1:
        raise ValueError(f"the omnibus test needs at least two categories (dof >= 1), not {dof}")
    if info <= state.info:
        return state
    if state.spent >= alpha * (1.0 - 1e-12) and state.info > 0.0:
        # everything is spent: later looks cannot cross, and the lattice is no longer needed
        return BoundaryState(info=info, spent=state.spent, offset=0, masses=(0.0,))
    offset, masses = _propagate(state, info, dof)
    increment = spending.spent(alpha, fraction) - state.spent
    if increment <= 0.0:
        lo, kept = _trimmed(offset, masses)
        return BoundaryState(info=info, spent=state.spent, offset=lo, masses=kept)
    tail = np.cumsum(masses[::-1])[::-1]  # tail[j] = mass at or above cell j
    above = np.append(tail[1:], 0.0)
    cells = np.nonzero(tail >= increment)[0]
    j = int(cells[-1]) if cells.size else 0
    inside = min(max((increment - above[j]) / masses[j], 0.0), 1.0) if masses[j] > 0 else 0.0
    r_boundary = (offset + j + 1.0 - inside) * RADIAL_STEP
    masses = masses.copy()
    masses[j] *= 1.0 - inside
    masses[j + 1 :] = 0.0
    lo, kept = _trimmed(offset, masses)
    return BoundaryState(
        info=info,
        spent=state.spent + increment,
        offset=lo,
        masses=kept,
        z_boundary=float(r_boundary / math.sqrt(info)),
    )


def radial_boundaries(
    infos: list[float],
    fractions: list[float],
    alpha: float,
    spending: SpendingFunction,
    dof: int,
) -> list[float]:
    """Critical values of ``sqrt(X**2)`` for a whole look schedule (benchmarks and tests)."""
    state = BoundaryState()
    out: list[float] = []
    for info, fraction in zip(infos, fractions, strict=True):
        state = next_radial_boundary(
            state, info=info, fraction=fraction, alpha=alpha, spending=spending, dof=dof
        )
        out.append(state.z_boundary)
    return out
