"""Pure statistics for the canary judge: effect estimators, mixture e-processes, alpha spending.

numpy/scipy only; no I/O, no clock, no randomness. See ``docs/statistics.md``.
"""

from analyzer.stats.effects import (
    Effect,
    effective_n,
    jensen_shannon,
    ordinal_effect,
    pearson_chi2,
    psi,
    quantile,
    quantile_interval,
    rate_difference,
    rescale_counts,
)
from analyzer.stats.mixture import (
    cs_radius_z,
    log_e_one_sided,
    log_e_sample_ratio,
    log_e_two_sided,
)
from analyzer.stats.spending import BoundaryState, SpendingFunction, boundaries, next_boundary

__all__ = [
    "BoundaryState",
    "Effect",
    "SpendingFunction",
    "boundaries",
    "cs_radius_z",
    "effective_n",
    "jensen_shannon",
    "log_e_one_sided",
    "log_e_sample_ratio",
    "log_e_two_sided",
    "next_boundary",
    "ordinal_effect",
    "pearson_chi2",
    "psi",
    "quantile",
    "quantile_interval",
    "rate_difference",
    "rescale_counts",
]
