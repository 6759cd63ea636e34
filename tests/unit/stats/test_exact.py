"""The exact conditional alpha-spending test for rare-event counts (analyzer/stats/exact.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analyzer.stats.exact import harm_share, next_count_boundary
from analyzer.stats.spending import BoundaryState, SpendingFunction

HSD = SpendingFunction.parse("hsd:2.5")
LINEAR = SpendingFunction.parse("hsd:0")


def _look(
    state: BoundaryState,
    harm: int,
    other: int,
    requests: tuple[float, float],
    fraction: float,
    alpha: float = 0.05,
    spending: SpendingFunction = HSD,
) -> BoundaryState:
    return next_count_boundary(
        state,
        harm_events=harm,
        other_events=other,
        harm_requests=requests[0],
        other_requests=requests[1],
        fraction=fraction,
        alpha=alpha,
        spending=spending,
    )


def test_one_look_at_the_horizon_is_the_exact_one_sided_binomial_test() -> None:
    for events in (5, 16, 40, 200):
        state = _look(BoundaryState(), 0, events, (1000.0, 1000.0), 1.0)
        crit = int(state.z_boundary)
        # the smallest count whose upper tail is at most alpha
        assert stats.binom.sf(crit - 1, events, 0.5) <= 0.05 < stats.binom.sf(crit - 2, events, 0.5)
        assert state.spent == pytest.approx(stats.binom.sf(crit - 1, events, 0.5), rel=1e-9)


def test_unequal_traffic_sets_the_null_share_of_events() -> None:
    # the canary got a tenth of the requests: under the null it gets a tenth of the events
    state = _look(BoundaryState(), 0, 50, (100.0, 900.0), 1.0)
    crit = int(state.z_boundary)
    assert stats.binom.sf(crit - 1, 50, 0.1) <= 0.05 < stats.binom.sf(crit - 2, 50, 0.1)


def test_the_crossing_probability_of_a_whole_schedule_is_what_it_spent() -> None:
    """Enumerate every split of three looks' events: the null probability of ever reaching a
    boundary equals the alpha the lattice says it spent, and stays under alpha(t) look by look,
    with unequal shares per look (the split of traffic changed between looks)."""
    looks = [  # (new events, harm-arm requests gained, other-arm requests gained, fraction)
        (6, 500.0, 500.0, 0.3),
        (9, 200.0, 800.0, 0.6),
        (12, 500.0, 500.0, 1.0),
    ]
    alpha = 0.2  # large, so that every look can spend something
    state = BoundaryState()
    crits, shares, spent = [], [], []
    events, n_h, n_o = 0, 0.0, 0.0
    for new, dh, do, fraction in looks:
        events, n_h, n_o = events + new, n_h + dh, n_o + do
        # the lattice only needs totals, whatever the split: pass all events as "other"
        state = _look(state, 0, events, (n_h, n_o), fraction, alpha, LINEAR)
        crits.append(state.z_boundary)
        shares.append(dh / (dh + do))
        spent.append(state.spent)
        assert state.spent <= LINEAR.spent(alpha, fraction) + 1e-12
    crossing = 0.0
    for split in itertools.product(*(range(new + 1) for new, *_ in looks)):
        p = math.prod(
            stats.binom.pmf(x, new, share)
            for x, (new, *_), share in zip(split, looks, shares, strict=True)
        )
        cumulative = np.cumsum(split)
        if any(x >= c for x, c in zip(cumulative, crits, strict=True)):
            crossing += p
    assert any(math.isfinite(c) for c in crits)
    assert crossing == pytest.approx(spent[-1], rel=1e-9)


def test_looks_without_new_events_keep_the_boundary_and_a_repeated_look_changes_nothing() -> None:
    first = _look(BoundaryState(), 3, 17, (2000.0, 2000.0), 0.5)
    again = _look(first, 3, 17, (2000.0, 2000.0), 0.5)
    assert again == first
    # more traffic, no new events: more alpha may be spent, the boundary never rises
    later = _look(first, 3, 17, (2400.0, 2400.0), 0.6)
    assert later.z_boundary <= first.z_boundary
    assert later.spent >= first.spent


def test_falling_counts_are_refused() -> None:
    first = _look(BoundaryState(), 3, 17, (2000.0, 2000.0), 0.5)
    with pytest.raises(ValueError, match="fell"):
        _look(first, 2, 17, (2000.0, 2000.0), 0.5)
    with pytest.raises(ValueError, match="fell"):
        _look(first, 3, 17, (1999.0, 2000.0), 0.5)


def test_early_looks_with_a_handful_of_events_cannot_fail_and_carry_their_alpha() -> None:
    # two events at 2 % of the horizon: even two canary errors have null probability 1/4
    state = _look(BoundaryState(), 2, 0, (200.0, 200.0), 0.02)
    assert state.z_boundary == math.inf
    assert state.spent == 0.0
    # the unspent alpha is there later
    late = _look(state, 14, 2, (4000.0, 4000.0), 0.4)
    assert late.z_boundary <= 14
    assert late.spent <= HSD.spent(0.05, 0.4)


def test_large_counts_stay_small_and_agree_with_the_normal_approximation() -> None:
    events = 200_000  # a 5 % error rate over two million requests per arm
    state = _look(BoundaryState(), 0, events, (2e6, 2e6), 1.0)
    assert len(state.masses) < 60 * math.sqrt(events)  # trimmed to the null's bulk
    normal = events / 2 + stats.norm.isf(0.05) * math.sqrt(events) / 2
    assert abs(state.z_boundary - normal) < 3


def test_the_harm_share_is_the_request_share_floored_upwards() -> None:
    assert harm_share(200.0, 200.0, 0.3) == 0.5
    assert harm_share(100.0, 900.0, 0.3) == pytest.approx(0.1)
    assert harm_share(0.0, 0.0, 0.3) == 0.3  # no requests in the increment: the cumulative one
    # events on an arm that shows no new requests are not evidence: the floor is upwards
    assert 0.0 < harm_share(0.0, 100.0, 0.3) < 0.01


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30), st.integers(0, 30), st.floats(0.0, 500.0), st.floats(0.0, 500.0)
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["pocock", "hsd:2.5", "hsd:-2", "obrien-fleming"]),
)
def test_any_schedule_keeps_the_spent_alpha_under_the_spending_function(
    looks: list[tuple[int, int, float, float]], spending: str
) -> None:
    """Whatever events and traffic arrive, the null mass cut so far never exceeds alpha(t),
    and what is carried plus what was cut is all the null mass."""
    sf = SpendingFunction.parse(spending)
    state = BoundaryState()
    harm = other = 0
    n_h = n_o = 1.0
    for k, (dh, do, rh, ro) in enumerate(looks, start=1):
        harm, other, n_h, n_o = harm + dh, other + do, n_h + rh, n_o + ro
        fraction = k / len(looks)
        state = _look(state, harm, other, (n_h, n_o), fraction, 0.05, sf)
        assert state.spent <= sf.spent(0.05, fraction) + 1e-12
        assert sum(state.masses) + state.spent == pytest.approx(1.0, abs=1e-9)
