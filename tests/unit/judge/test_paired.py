"""The paired (shadow) kind: incumbent and challenger decisions on the same requests."""

from __future__ import annotations

from typing import Any

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.judge.io import backtest_replay, judge_document

CATS = ["approve", "decline", "review"]


def table(n: int, disagree: float, adverse_share: float = 0.5) -> list[list[int]]:
    """``n`` requests, ``disagree`` of them decided differently, ``adverse_share`` of those
    approve→decline and the rest decline→approve."""
    d = round(n * disagree)
    adverse = round(d * adverse_share)
    agree = n - d
    return [
        [round(agree * 0.8), adverse, 0],
        [d - adverse, agree - round(agree * 0.8) - round(agree * 0.05), 0],
        [0, 0, round(agree * 0.05)],
    ]


def metric(pairs: list[list[int]] | None = None, **settings: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": "decisions", "kind": "paired", "categories": CATS,
                         "tolerance": 0.02, **settings}  # fmt: skip
    if pairs is not None:
        m["pairs"] = pairs
    return m


def verdict(*metrics: dict[str, Any]) -> dict[str, Any]:
    out = judge_document({"alpha": 0.05, "metrics": list(metrics)})
    assert isinstance(out, dict)
    return out


def test_agreement_well_inside_the_margin_passes() -> None:
    out = verdict(metric(table(40_000, 0.01)))
    assert out["verdict"] == "pass"
    m = out["metrics"][0]
    assert m["estimate"]["disagreement_rate"] == pytest.approx(0.01)
    assert m["n"] == {"baseline": 40_000, "canary": 40_000}
    assert m["statistic"]["pairs"]["approve"]["decline"] == 200


def test_disagreement_beyond_the_margin_fails() -> None:
    out = verdict(metric(table(20_000, 0.05)))
    assert out["verdict"] == "fail"
    assert out["metrics"][0]["classification"] == "high"
    assert "disagreement beyond 2%" in out["metrics"][0]["reason"]


def test_an_adverse_one_way_shift_fails_even_inside_the_disagreement_margin() -> None:
    # 1.5 % disagree (inside 2 %) but every one of them approve→decline: the challenger
    # declines applications the incumbent approved, and never the reverse
    one_way = table(40_000, 0.015, adverse_share=1.0)
    adverse = {"from": "approve", "to": "decline", "tolerance": 0.005}
    out = verdict(metric(one_way, adverse=adverse))
    assert out["verdict"] == "fail"
    m = out["metrics"][0]
    assert (m["estimate"]["adverse"], m["estimate"]["reverse"]) == (600, 0)
    assert "net approve→decline shift beyond 0.5%" in m["reason"]
    balanced = verdict(metric(table(40_000, 0.015), adverse=adverse))
    assert balanced["verdict"] == "pass"  # the same disagreement, both ways: no shift


def test_few_pairs_are_inconclusive_never_a_pass() -> None:
    assert verdict(metric(table(200, 0.0)))["verdict"] == "inconclusive"
    assert verdict(metric([[0, 0, 0], [0, 0, 0], [0, 0, 0]]))["verdict"] == "inconclusive"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tolerance": None}, "metrics[0].tolerance"),
        ({"tolerance": 0}, "metrics[0].tolerance"),
        ({"categories": None}, "metrics[0].categories"),
        ({"adverse": {"from": "approve", "to": "reject"}}, "metrics[0].adverse.to"),
        ({"adverse": {"from": "approve", "to": "approve"}}, "metrics[0].adverse"),
        ({"adverse": {"from": "approve", "to": "decline", "tolerance": 2}},
         "metrics[0].adverse.tolerance"),
        ({"pairs": [[1, 2], [3, 4]]}, "metrics[0].pairs"),
        ({"pairs": [[1, 2, 3], [3, 4, 5], [1, 1, -1]]}, "metrics[0].pairs[2][2]"),
    ],
)  # fmt: skip
def test_bad_paired_input_names_the_field(changes: dict[str, Any], field: str) -> None:
    m = metric(table(100, 0.0))
    for key, value in changes.items():
        if value is None:
            m.pop(key)
        else:
            m[key] = value
    with pytest.raises(InvalidInputError) as caught:
        verdict(m)
    assert caught.value.field == field


def test_looks_are_cumulative_and_a_counter_reset_is_an_error() -> None:
    looks = [{"pairs": table(n, 0.05)} for n in (2_000, 4_000, 3_000)]
    out = backtest_replay({"metrics": [{**metric(), "looks": looks}]})
    assert out["looks"][-1]["verdict"] in ("fail", "error")
    healthy = [{"pairs": table(n, 0.005)} for n in range(5_000, 100_001, 5_000)]
    replay = backtest_replay({"metrics": [{**metric(), "looks": healthy}]})
    assert replay["verdict"] == "pass"
    assert replay["decided_at"] is not None
