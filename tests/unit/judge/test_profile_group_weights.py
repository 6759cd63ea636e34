"""A profile's group_weights reach the score, as Kayenta's classifier.groupWeights do.

The cases are Kayenta's own scorer cases (ScorerSuite, "Two Groups, Three Metrics" and its
equal-weight variant), played through the judge with threshold metrics whose pass or fail is
certain: the same results score differently with different weights, exactly as Kayenta's.
"""

from __future__ import annotations

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.observation import ThresholdObservation
from analyzer.judge import judge
from analyzer.profiles import parse_profile

PASSING = ThresholdObservation(canary=0.1, baseline=0.1)
FAILING = ThresholdObservation(canary=5.0, baseline=0.1)


def profile_text(weights: str, groups: tuple[str, str, str]) -> str:
    metrics = "".join(
        f"  - name: m{i}\n    kind: threshold\n    group: {group}\n    bound: {{max: 1}}\n"
        f"    query: {{expr: 'x{{r=\"{{revision}}\"}}'}}\n"
        for i, group in enumerate(groups)
    )
    return f"name: weights\n{weights}metrics:\n{metrics}"


@pytest.mark.parametrize(
    ("weights", "groups", "failing", "expected"),
    [
        # ScorerSuite: Two Groups, Three Metrics -> 75.0
        (
            "group_weights: {group-1: 75, group-2: 25}\n",
            ("group-1", "group-1", "group-2"),
            {2},
            75.0,
        ),
        # ScorerSuite: Two Groups, Three Metrics (Equal Weight) -> 25.0
        (
            "group_weights: {group-1: 50, group-2: 50}\n",
            ("group-1", "group-1", "group-2"),
            {1, 2},
            25.0,
        ),
        # the first case without weights: the groups share 100 equally -> 50.0
        ("", ("group-1", "group-1", "group-2"), {2}, 50.0),
        # a weighted group beside unweighted ones: the rest is shared (70 + 30 * 0 = 70)
        ("group_weights: {group-1: 70}\n", ("group-1", "group-2", "group-2"), {1, 2}, 70.0),
    ],
)
def test_group_weights_change_the_score_as_kayentas_do(
    weights: str, groups: tuple[str, str, str], failing: set[int], expected: float
) -> None:
    loaded = parse_profile(profile_text(weights, groups))
    observations = {f"m{i}": FAILING if i in failing else PASSING for i in range(3)}
    result, _ = judge(loaded.profile, observations)
    assert result.score == pytest.approx(expected)


@pytest.mark.parametrize(
    ("weights", "field"),
    [
        ("group_weights: {a: 60, b: 50}\n", "group_weights"),
        ("group_weights: {a: -1}\n", "group_weights.a"),
    ],
)
def test_bad_group_weights_are_refused_at_load(weights: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_profile(profile_text(weights, ("a", "a", "b")))
    assert caught.value.field == field
