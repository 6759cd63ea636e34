"""Array operations whose results do not depend on which x86-64 CPU runs them. Pure.

numpy and OpenBLAS choose their kernels by CPU at run time, and the kernels round differently
in the last bits: numpy's array ``exp`` and ``log`` have AVX-512 and AVX2 loops (and the C
library's ``exp``/``log`` below them), its complex multiplication is compiled with and without
fused multiply-add, and ``f @ w`` and ``np.convolve`` (a BLAS dot product for each output)
go to the OpenBLAS kernel of the CPU (Haswell, SkylakeX, Zen, Sandybridge, ...). Replaying
recorded looks on another machine then moved lattice masses and e-values in their last bits
(``tests/unit/judge/test_judge_bit_identity.py``); numpy's ``log``, ``log1p`` and ``log2``
differ between its AVX-512 loops and the others for some inputs too, scalars included. The
functions here replace them on the judge's path: they use only one IEEE operation per numpy
call (multiply, add: correctly rounded, hence the same everywhere) in an order fixed here, and
the C library's scalar ``exp``/``log`` (through scipy.special, whose loops are compiled for
the baseline CPU and not chosen at run time).

What they do not remove: the C library's ``exp``/``log`` themselves (glibc picks a variant
compiled with fused multiply-add on CPUs that have it; about 1 in 1,500 results of ``exp``, and
fewer of ``log``, differ in the last bit from the variant without), and scipy.special's
functions, which call them. So the numbers are the same on every x86-64 machine with FMA
(Haswell and Zen onward) running the same library versions, not on every x86-64 machine
(docs/statistics.md, "Across machines").
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from analyzer.stats import lazy_special as special

FloatArray = npt.NDArray[np.float64]

_FFT_MIN = 64  # both operands longer than this: convolve through the FFT (as before)


def exp(x: npt.ArrayLike) -> FloatArray:
    """``np.exp(x)`` (float64) computed by the C library's scalar ``exp``, element by element:
    scipy's ``inv_boxcox(x, 0)`` is exactly ``exp(x)`` in a plain C loop (about twice numpy's
    SIMD cost; ``math.exp`` element by element costs ten times that)."""
    out: FloatArray = np.asarray(special.inv_boxcox(np.asarray(x, dtype=np.float64), 0.0))
    return out


def log(x: npt.ArrayLike) -> FloatArray:
    """``np.log(x)`` (float64) computed by the C library's scalar ``log``: scipy's
    ``boxcox(x, 0)`` is exactly ``log(x)`` (``-inf`` at 0, NaN below, as numpy's)."""
    out: FloatArray = np.asarray(special.boxcox(np.asarray(x, dtype=np.float64), 0.0))
    return out


def _log2(x: float) -> float:
    if x > 0.0 or math.isnan(x):
        return math.log2(x)
    return -math.inf if x == 0.0 else math.nan  # as numpy's (which warns instead)


_LOG2 = np.frompyfunc(_log2, 1, 1)  # scipy has no log2: element by element, for short arrays


def log2(x: npt.ArrayLike) -> FloatArray:
    """``np.log2(x)`` (float64) by the C library's scalar ``log2`` (``math.log2``), one Python
    call per element: for the few categories of a decision mix."""
    out: FloatArray = np.asarray(_LOG2(np.asarray(x, dtype=np.float64)), dtype=np.float64)
    return out


def log1p(x: npt.ArrayLike) -> FloatArray:
    """``np.log1p(x)`` (float64) by scipy's own ``log1p`` (Cephes: a rational approximation
    near 0, the C library's ``log`` beyond), one loop for every CPU."""
    out: FloatArray = np.asarray(special.log1p(np.asarray(x, dtype=np.float64)))
    return out


def row_dot(f: FloatArray, w: FloatArray) -> FloatArray:
    """``f @ w`` for a 2-D ``f`` and a short ``w``: each row's products added left to right,
    one numpy operation per column (a BLAS kernel would choose its own order)."""
    out: FloatArray = f[:, 0] * w[0]
    for j in range(1, w.size):
        out = out + f[:, j] * w[j]
    return out


def convolve(a: FloatArray, v: FloatArray) -> FloatArray:
    """The full discrete convolution of two 1-D arrays, as ``np.convolve``: directly (the
    shorter one's shifted copies of the longer one, added in a fixed order), or, when both are
    longer than ``_FFT_MIN``, through scipy's real FFT with the complex product written out in
    real operations (numpy's complex multiply contracts to FMA on some CPUs only)."""
    if a.size > _FFT_MIN and v.size > _FFT_MIN:
        return _fft_convolve(a, v)
    long, short = (a, v) if a.size >= v.size else (v, a)
    out = np.zeros(long.size + short.size - 1)
    for j in range(short.size):
        out[j : j + long.size] += long * short[j]
    return out


def _fft_convolve(a: FloatArray, v: FloatArray) -> FloatArray:
    # scipy.fft (imported here: scipy's start-up cost is paid only by long lattices) is
    # pocketfft, compiled for the baseline CPU: no kernel chosen at run time.
    from scipy import fft  # noqa: PLC0415

    n = a.size + v.size - 1
    size = fft.next_fast_len(n, real=True)
    x, y = fft.rfft(a, size), fft.rfft(v, size)
    xr, xi, yr, yi = x.real, x.imag, y.real, y.imag
    product = np.empty_like(x)
    product.real = xr * yr - xi * yi
    product.imag = xr * yi + xi * yr
    out: FloatArray = fft.irfft(product, size)[:n]
    return out
