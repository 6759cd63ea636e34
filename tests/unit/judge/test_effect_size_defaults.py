"""Effect-size settings: unnamed thresholds take the measure's Kayenta defaults, everywhere."""

from __future__ import annotations

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.judge.io import judge_document
from analyzer.judge.samples import effect_size_with_defaults
from analyzer.profiles import parse_profile

BASE = [0.40, 0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48, 0.49]


def test_cles_alone_means_kayentas_half_not_the_mean_ratio_one() -> None:
    cles = effect_size_with_defaults("cles")
    assert (cles.allowed_increase, cles.critical_decrease) == (0.5, 0.5)
    ratio = effect_size_with_defaults("mean_ratio", allowed_increase=1.2)
    assert (ratio.allowed_increase, ratio.allowed_decrease) == (1.2, 1.0)
    with pytest.raises(InvalidInputError, match="measure must be one of"):
        effect_size_with_defaults("median")


def test_profiles_fill_unset_thresholds_per_measure() -> None:
    loaded = parse_profile(
        "name: p\nmetrics:\n  - name: cpu\n    kind: samples\n"
        "    effect_size: {measure: cles, critical_increase: 0.9}\n"
        "    query: {expr: 'cpu{revision=\"{revision}\"}'}\n"
    )
    effect = loaded.profile.metrics[0].effect_size
    assert effect is not None
    assert (effect.allowed_increase, effect.critical_increase) == (0.5, 0.9)


def test_judge_input_with_an_unknown_measure_names_the_field() -> None:
    doc = {"metrics": [{"name": "cpu", "kind": "samples", "effect_size": {"measure": "median"},
                        "baseline": BASE, "canary": BASE}]}  # fmt: skip
    with pytest.raises(InvalidInputError, match=r"metrics\[0\]\.effect_size\.measure"):
        judge_document(doc)
