"""docs/fleets.md's table of the pooled requests a wave needs to pass is what the judge does."""

from __future__ import annotations

import math

import pytest

from analyzer.fleets.judge import FleetPolicy
from analyzer.stats.fleet import did_rate_effect
from analyzer.stats.mixture import log_e_one_sided


def _passes(n: float, rate: float, tolerance: float) -> bool:
    eff = did_rate_effect(
        after_events=[rate * n], after_total=[n], before_events=[rate * n], before_total=[n],
        control_change=0.0, control_var=0.0, margin=tolerance,
    )  # fmt: skip
    policy = FleetPolicy()
    log_e = float(log_e_one_sided(-eff.z, eff.neff, policy.mixture_scale)[0])
    return log_e >= math.log(1.0 / policy.pass_alpha)


@pytest.mark.parametrize(
    ("rate", "tolerance", "documented"),
    [(0.005, 0.01, 860), (0.015, 0.01, 2700), (0.03, 0.01, 5500), (0.015, 0.005, 12000)],
)
def test_the_documented_wave_sizes_are_about_where_a_wave_starts_to_pass(
    rate: float, tolerance: float, documented: int
) -> None:
    assert _passes(documented * 1.06, rate, tolerance)
    assert not _passes(documented * 0.9, rate, tolerance)
