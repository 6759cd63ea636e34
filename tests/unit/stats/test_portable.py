"""The CPU-independent replacements compute what numpy computed, in an order fixed by them.

Their independence of the CPU itself is tested by replaying the judge under other numpy and
OpenBLAS kernels (``tests/unit/judge/test_judge_bit_identity.py``); here, what each one returns.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.stats import portable


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_exp_and_log_are_the_c_librarys_element_by_element() -> None:
    x = np.linspace(-745.0, 709.0, 10_001)
    assert all(_same(v, math.exp(t)) for v, t in zip(portable.exp(x), x, strict=True))
    y = np.geomspace(1e-300, 1e300, 10_001)
    assert all(_same(v, math.log(t)) for v, t in zip(portable.log(y), y, strict=True))
    assert all(_same(v, math.log2(t)) for v, t in zip(portable.log2(y), y, strict=True))
    assert all(
        _same(v, math.log1p(t)) or abs(v / math.log1p(t) - 1) < 3e-16
        for v, t in zip(portable.log1p(y), y, strict=True)
    )
    # numpy's own loops agree to the last bit or so (they are what the judge used before)
    np.testing.assert_allclose(portable.exp(x), np.exp(x), rtol=4e-16)
    np.testing.assert_allclose(portable.log(y), np.log(y), rtol=4e-16)
    np.testing.assert_allclose(portable.log2(y), np.log2(y), rtol=4e-16)
    np.testing.assert_allclose(portable.log1p(y), np.log1p(y), rtol=4e-16)


def test_exp_and_log_keep_numpys_values_where_math_raises() -> None:
    with np.errstate(over="ignore", invalid="ignore"):  # numpy warns there too
        big = portable.exp(np.array([1000.0, -math.inf, math.nan]))
        out = portable.log(np.array([0.0, -0.0, -1.0, math.inf, math.nan]))
        out2 = portable.log2(np.array([0.0, -0.0, -1.0, math.inf, math.nan]))
    assert big.tolist()[:2] == [math.inf, 0.0]
    assert math.isnan(big[2])
    assert out[:2].tolist() == [-math.inf, -math.inf]
    assert math.isnan(out[2])
    assert out[3] == math.inf
    assert math.isnan(out[4])
    assert out2[:2].tolist() == [-math.inf, -math.inf]
    assert math.isnan(out2[2])
    assert out2[3] == math.inf
    assert float(portable.log1p(-1.0)) == -math.inf
    matrix = portable.log(np.full((3, 4), math.e))
    assert matrix.shape == (3, 4)
    assert matrix.dtype == np.float64
    assert (matrix == 1.0).all()
    assert portable.exp(0.0).shape == ()
    assert float(portable.exp(0.0)) == 1.0


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=60), st.integers(min_value=1, max_value=12))
def test_row_dot_adds_each_rows_products_left_to_right(rows: int, cols: int) -> None:
    rng = np.random.default_rng(rows * 100 + cols)
    f, w = rng.random((rows, cols)), rng.random(cols)
    out = portable.row_dot(f, w)
    for i in range(rows):
        total = f[i, 0] * w[0]
        for j in range(1, cols):
            total = total + f[i, j] * w[j]
        assert out[i] == total
    np.testing.assert_allclose(out, f @ w, rtol=1e-14)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (5, 200), (300, 7), (64, 64), (65, 65), (900, 400)])
def test_convolve_is_np_convolve_to_rounding(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    a, v = rng.random(n), rng.random(m)
    out = portable.convolve(a, v)
    assert out.shape == (n + m - 1,)
    np.testing.assert_allclose(out, np.convolve(a, v), rtol=1e-12, atol=1e-13 * out.max())


def test_short_convolution_is_shifted_copies_added_in_order() -> None:
    a, v = np.array([0.1, 0.7, 0.2]), np.array([1 / 3, 1 / 7])
    p, q = 1 / 3, 1 / 7
    out = portable.convolve(a, v)
    assert out.tolist() == [0.1 * p, 0.7 * p + 0.1 * q, 0.2 * p + 0.7 * q, 0.2 * q]
    assert portable.convolve(v, a).tolist() == out.tolist()  # the longer one is shifted
