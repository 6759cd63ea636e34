"""Wave plans: a fixed random order cut by cumulative percentages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.domain.errors import InvalidInputError
from analyzer.fleets.plan import WaveSpec, cut_waves, fleet_order

PLAN = [WaveSpec(percent=p, dwell_seconds=600, deadline_seconds=3600) for p in (2, 10, 50, 100)]
MODELS = [f"merchant-{i:04d}" for i in range(420)]


def test_the_reference_fleet_cuts_into_the_documented_waves() -> None:
    waves = cut_waves("anomaly-v2", MODELS, PLAN)
    assert [len(models) for _, models in waves] == [9, 33, 168, 210]
    assert [spec.percent for spec, _ in waves] == [2, 10, 50, 100]
    assert sorted(m for _, models in waves for m in models) == sorted(MODELS)


def test_the_order_is_random_but_fixed_by_the_fleet_name() -> None:
    first = fleet_order("anomaly-v2", MODELS)
    assert first == fleet_order("anomaly-v2", list(reversed(MODELS)))
    assert first != tuple(sorted(MODELS))
    assert first != fleet_order("anomaly-v3", MODELS)


@given(st.integers(min_value=1, max_value=300), st.lists(st.floats(1, 99), max_size=5))
def test_every_model_moves_exactly_once_and_no_wave_is_empty(n: int, cuts: list[float]) -> None:
    percents = [*sorted(set(cuts)), 100.0]
    plan = [WaveSpec(percent=p, dwell_seconds=1, deadline_seconds=1) for p in percents]
    models = [f"m-{i}" for i in range(n)]
    waves = cut_waves("f", models, plan)
    moved = [m for _, wave in waves for m in wave]
    assert sorted(moved) == sorted(models)
    assert all(wave for _, wave in waves)
    assert len(waves) <= len(plan)


def test_bad_plans_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidInputError) as err:
        cut_waves("f", MODELS, [PLAN[1], PLAN[0], PLAN[3]])
    assert err.value.field == "waves.1.percent"
    with pytest.raises(InvalidInputError, match="100"):
        cut_waves("f", MODELS, PLAN[:2])
    with pytest.raises(InvalidInputError, match="no models"):
        cut_waves("f", [], PLAN)
    with pytest.raises(InvalidInputError, match="twice"):
        cut_waves("f", ["a", "a"], PLAN)
    with pytest.raises(InvalidInputError, match="deadline"):
        WaveSpec(percent=5, dwell_seconds=10, deadline_seconds=5)
