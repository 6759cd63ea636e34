"""Kayenta's optional outlier removal for ``samples`` metrics (``outliers.strategy: remove``).

Kayenta's judge drops NaNs, then, per side, points strictly outside IQR fences with "reduced
sensitivity": the lower fence is ``min(P1, Q1 - k * IQR)`` and the upper ``max(P99, Q3 + k *
IQR)`` (R-7 percentiles, numpy's default), so nothing inside the 1st-99th percentile range is
ever cut; ``k`` (``outlierFactor``) defaults to 3. Kayenta made it opt-in in 2019 after it
discarded the signal of sparse series (every non-zero value of a mostly-zero error count lay
outside the fences: kayenta#420, #633); it stays opt-in here, and the result reports how many
points each side lost.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

DEFAULT_FACTOR = 3.0


def fences(values: NDArray[np.float64], factor: float) -> tuple[float, float]:
    """The reduced-sensitivity IQR fences of ``values`` (non-empty, finite)."""
    p1, q1, q3, p99 = np.percentile(values, [1.0, 25.0, 75.0, 99.0])
    iqr = q3 - q1
    return float(min(p1, q1 - factor * iqr)), float(max(p99, q3 + factor * iqr))


def remove_outliers(values: NDArray[np.float64], factor: float) -> NDArray[np.float64]:
    """``values`` without the points strictly outside their fences (order kept)."""
    if values.size == 0:
        return values
    low, high = fences(values, factor)
    return values[(values >= low) & (values <= high)]
