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

import functools
import math

import numpy as np
import numpy.typing as npt

from analyzer.stats import lazy_special as special
from analyzer.stats import portable
from analyzer.stats.spending import BoundaryState, SpendingFunction, cut_lattice

FloatArray = npt.NDArray[np.float64]

RADIAL_STEP = 0.02  # lattice step of R, the same resolution as the Gaussian lattice
_REACH_SDS = 7.0  # the transition of one cell is computed within 7 increment s.d. (+ the drift)


def _centres(state: BoundaryState) -> FloatArray:
    if state.info <= 0.0:
        return np.zeros(1)
    cells = np.arange(state.offset, state.offset + len(state.masses), dtype=np.float64)
    centres: FloatArray = (cells + 0.5) * RADIAL_STEP
    return centres


# log(ive) is tabulated against t = log(x): it is linear in t at both ends (``nu t + const``
# near 0, ``-t/2 - log(2 pi)/2`` far out), so linear interpolation is accurate everywhere
_LOG_X_RANGE = (-30.0, 25.0)  # x from 1e-13 to 7e10; beyond, the end values are clamped
_LOG_X_STEP = 0.002  # interpolation error below 1e-6 (tests compare with scipy)
_ASYMPTOTIC_TERMS = 6


def _large_argument(nu: float) -> float:
    """Where Hankel's expansion (six terms) is accurate to about 1e-9."""
    return 40.0 + 2.0 * nu * nu


@functools.lru_cache(maxsize=8)
def _log_ive_table(nu: float) -> tuple[FloatArray, FloatArray]:
    """``G(t) = log(I_nu(x) exp(-x)) + (nu + 1) t`` with ``x = exp(t)``, every ``_LOG_X_STEP``
    over ``_LOG_X_RANGE``, built once per dimension (read-only): scipy's ``ive`` below the
    large-argument limit (it costs about 70 times an interpolation, which is why the table
    exists), Hankel's expansion above. Adding ``(nu + 1) t`` makes ``G`` the log of the smooth
    factor of the transition density up to a per-source constant (``_cell_probabilities``); it
    stays linear in ``t`` at both ends, so interpolation stays accurate.
    """
    t = np.arange(_LOG_X_RANGE[0], _LOG_X_RANGE[1] + 2 * _LOG_X_STEP, _LOG_X_STEP)
    x = portable.exp(t)
    out: FloatArray = np.empty_like(x)
    large = x >= _large_argument(nu)
    with np.errstate(divide="ignore"):
        out[~large] = portable.log(special.ive(nu, x[~large]))
    mu = 4.0 * nu * nu
    xl = x[large]
    series = np.ones_like(xl)
    term = np.ones_like(xl)
    for k in range(1, _ASYMPTOTIC_TERMS + 1):
        term = term * -(mu - (2 * k - 1) ** 2) / (k * 8.0 * xl)
        series = series + term
    out[large] = -0.5 * portable.log(2.0 * math.pi * xl) + portable.log(series)
    out += (nu + 1.0) * t
    slope = np.append(np.diff(out), 0.0)
    out.setflags(write=False)
    slope.setflags(write=False)
    return out, slope


def _table_g(nu: float, log_x: FloatArray) -> FloatArray:
    """``G(log x)`` of :func:`_log_ive_table`, interpolated linearly."""
    table, slope = _log_ive_table(nu)
    pos = (log_x - _LOG_X_RANGE[0]) * (1.0 / _LOG_X_STEP)
    np.clip(pos, 0.0, table.size - 2.0, out=pos)
    cell = pos.astype(np.int64)
    pos -= cell
    pos *= slope[cell]
    pos += table[cell]
    return pos


def _log_ive(nu: float, log_x: FloatArray) -> FloatArray:
    """``log(I_nu(x) exp(-x))`` from ``log x``."""
    out: FloatArray = _table_g(nu, log_x) - (nu + 1.0) * log_x
    return out


def _gaussian_cell_weights(band: int, delta: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Weights ``(a, b, c)`` with ``P(cell m) = a s(m-1) + b s(m) + c s(m+1)``.

    The transition density from ``r`` is a Gaussian ``N(r, delta)`` times a smooth factor ``s``
    (the Bessel drift and the change of volume). Interpolating ``s`` quadratically through the
    midpoints of cells ``m - 1``, ``m`` and ``m + 1`` and integrating it against the Gaussian
    over cell ``m`` exactly gives weights that depend only on the offset ``m`` of the cell from
    the source (the lattice is uniform), not on ``r``: one evaluation of ``s`` per cell, and a
    Gaussian narrower than a cell is still integrated exactly.
    """
    h = RADIAL_STEP
    sd = math.sqrt(delta)
    m = np.arange(-band, band + 1, dtype=np.float64)
    lo, hi = (m - 0.5) * h, (m + 0.5) * h
    pdf_lo = portable.exp(-(lo**2) / (2.0 * delta)) / math.sqrt(2.0 * math.pi * delta)
    pdf_hi = portable.exp(-(hi**2) / (2.0 * delta)) / math.sqrt(2.0 * math.pi * delta)
    # moments of the Gaussian over each cell: int u^k phi(u) du, u = rho - r
    m0 = special.ndtr(hi / sd) - special.ndtr(lo / sd)
    u1 = delta * (pdf_lo - pdf_hi)
    u2 = delta * m0 + delta * (lo * pdf_lo - hi * pdf_hi)
    # ... about the cell's midpoint (v = u - m h)
    centre = m * h
    m1 = u1 - centre * m0
    m2 = u2 - 2.0 * centre * u1 + centre**2 * m0
    a = -m1 / (2.0 * h) + m2 / (2.0 * h * h)
    b = m0 - m2 / (h * h)
    c = m1 / (2.0 * h) + m2 / (2.0 * h * h)
    return a, b, c


def _cell_probabilities(
    centres: FloatArray, cells: npt.NDArray[np.int64], delta: float, dof: int
) -> FloatArray:
    """P(R_new in cell k | R_old = centre) for each source (row) and window cell (column).

    From the origin (the first look) the exact chi CDF. From r > 0, the exact Bessel transition
    density, with ``nu = dof / 2 - 1``,

        p(rho | r) = (rho / delta) (rho / r)**nu exp(-(rho**2 + r**2) / (2 delta))
                     * I_nu(r rho / delta)
                   = N(rho; r, delta) * s(rho),
        s(rho) = sqrt(2 pi / delta) rho (rho / r)**nu * ive(nu, r rho / delta),

    integrated over each cell with the Gaussian weights of :func:`_gaussian_cell_weights`
    (``s`` from tabulated ``log ive``: the noncentral chi-square CDF costs time in proportion
    to the noncentrality, this does not). Rows are contiguous cells, so ``s`` is evaluated once
    per (row, cell). Cells at negative radius get nothing; rows are renormalised by the caller.
    """
    if centres.size == 1 and centres[0] == 0.0:
        lower = np.maximum(cells, 0) * RADIAL_STEP
        upper = np.maximum(cells + 1, 0) * RADIAL_STEP
        origin: FloatArray = special.chdtr(dof, upper**2 / delta) - special.chdtr(
            dof, lower**2 / delta
        )
        return origin
    nu = dof / 2.0 - 1.0
    band = (cells.shape[1] - 1) // 2
    # Rows are contiguous cells, so the midpoints of cells home - band - 1 .. home + band + 1
    # of every row (one extra each side) are windows sliding over one vector: log(rho) and
    # log(x) = log(r) + log(rho) - log(delta) cost one evaluation per cell, not per entry.
    start = int(cells[0, 0]) - 1
    width = cells.shape[1] + 2
    midpoints = (
        np.maximum(np.arange(start, start + centres.size + width - 1), 0) + 0.5
    ) * RADIAL_STEP
    log_rho = np.lib.stride_tricks.sliding_window_view(portable.log(midpoints), width)
    # log s = G(log x) + C(r), with C(r) = log(2 pi / delta) / 2 + (nu + 1) log(delta)
    # - (2 nu + 1) log(r): the constant cancels in the caller's renormalisation of each row, so
    # s is computed relative to its value at rho = r (which keeps exp() in range)
    log_r = portable.log(centres)
    to_log_x = log_r - math.log(delta)
    at_centre = _table_g(nu, log_r + to_log_x)
    smooth = portable.exp(_table_g(nu, log_rho + to_log_x[:, None]) - at_centre[:, None])
    # the cell below 0 has no midpoint: extrapolate s quadratically from cells 0, 1 and 2
    near = np.nonzero(cells[:, 0] <= 0)[0]
    if near.size:
        col = -(start + 1) - near  # column of cell -1 in each of those rows
        ahead = smooth[near, col + 1], smooth[near, col + 2], smooth[near, col + 3]
        smooth[near, col] = 3.0 * ahead[0] - 3.0 * ahead[1] + ahead[2]
    a, b, c = _gaussian_cell_weights(band, delta)
    probability = a * smooth[:, :-2]
    probability += b * smooth[:, 1:-1]
    probability += c * smooth[:, 2:]
    np.maximum(probability, 0.0, out=probability)
    # Rows are sorted: only the first ones reach the origin. There, cells at negative radius
    # get nothing, and the first cells get Simpson's rule on the density itself, because s
    # changes on the scale of sqrt(delta) next to the origin (the exp(-x) of small x).
    reaching = max(min(_NEAR_ORIGIN_CELLS - int(cells[0, 0]), centres.size), 0)
    if reaching:
        window = cells[:reaching]
        probability[:reaching][window < 0] = 0.0
        rows, cols = np.nonzero((window >= 0) & (window < _NEAR_ORIGIN_CELLS))
        # on the same per-row scale as the rest: divided by exp(C(r) + G at rho = r)
        scale = (
            0.5 * math.log(2.0 * math.pi / delta)
            + (nu + 1.0) * math.log(delta)
            - (2.0 * nu + 1.0) * log_r[rows]
            + at_centre[rows]
        )
        exact = _simpson_cells(centres[rows], window[rows, cols], delta, nu)
        probability[rows, cols] = exact * portable.exp(-scale)
    return probability


_NEAR_ORIGIN_CELLS = 10  # cells [0, 0.2) of the radius
_PANELS = 4


def _simpson_cells(
    r: FloatArray, cells: npt.NDArray[np.int64], delta: float, nu: float
) -> FloatArray:
    """P(R_new in cell | R_old = r) for (source, cell) pairs, by Simpson's rule on the exact
    density with ``_PANELS`` panels per cell."""
    nodes = 2 * _PANELS + 1
    step = RADIAL_STEP / (nodes - 1)
    rho = cells[:, None] * RADIAL_STEP + np.arange(nodes)[None, :] * step
    rho = np.maximum(rho, 1e-9 * RADIAL_STEP)
    rr = r[:, None]
    log_p = (
        portable.log(rho / delta)
        + nu * portable.log(rho / rr)
        - (rho - rr) ** 2 / (2.0 * delta)
        + _log_ive(nu, portable.log(rr * rho / delta))
    )
    f = portable.exp(log_p)
    weights = np.ones(nodes)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    out: FloatArray = portable.row_dot(f, weights * (step / 3.0))
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
    moved = _cell_probabilities(centres, cells, delta, dof)
    # the window may clip mass beyond its ends (deep tails only): keep the total exact by
    # renormalising each source's row, so no null mass is lost or invented (this also
    # absorbs the per-row constant _cell_probabilities leaves out)
    moved *= (masses / np.maximum(moved.sum(axis=1), 1e-300))[:, None]
    # rows are contiguous cells: entry (i, j) lands in cell cells[0, 0] + i + j
    index = np.add.outer(np.arange(centres.size), np.arange(cells.shape[1]))
    spread = np.bincount(
        index.ravel(), weights=moved.ravel(), minlength=last - int(cells[0, 0]) + 1
    )
    out: FloatArray = spread[first - int(cells[0, 0]) :].astype(np.float64)
    return first, out


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
    return cut_lattice(
        state,
        info=info,
        offset=offset,
        masses=masses,
        increment=increment,
        step=RADIAL_STEP,
        cell_top=1.0,
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
