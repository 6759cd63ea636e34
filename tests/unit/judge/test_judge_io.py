"""The public judge JSON: parsing errors name their field; backtests carry state."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.result import MetricResult
from analyzer.domain.verdict import Classification, MetricKind, Verdict
from analyzer.judge.aggregate import overall_verdict
from analyzer.judge.io import backtest_replay, judge_document, parse_document

DOC: dict[str, Any] = {
    "alpha": 0.05,
    "metrics": [
        {"name": "latency", "kind": "histogram", "direction": "increase", "tolerance": 0.10,
         "bounds": [0.005, 0.01, 0.025, 0.05, 0.1, "+Inf"],
         "baseline": [5200, 3100, 900, 120, 30, 5], "canary": [510, 330, 95, 20, 6, 1]},
        {"name": "errors", "kind": "proportion", "direction": "increase", "tolerance": 0.001,
         "baseline": {"events": 40, "total": 100000}, "canary": {"events": 9, "total": 10000}},
        {"name": "decisions", "kind": "categorical", "categories": ["approve", "decline", "review"],
         "baseline": [90000, 7000, 3000], "canary": [8950, 720, 330]},
        {"name": "p99_slo", "kind": "threshold", "bound": {"max": 0.008}, "canary": 0.0065},
    ],
}  # fmt: skip


def test_design_example_produces_the_public_shape() -> None:
    out = judge_document(DOC)
    assert out["verdict"] in {"pass", "fail", "inconclusive", "error"}
    assert 0 <= out["score"] <= 100
    for m in out["metrics"]:
        assert {"name", "verdict", "classification", "reason", "estimate", "statistic", "n"} <= set(
            m
        )
        assert m["verdict"] is not None
        assert set(m["n"]) == {"baseline", "canary"}
    names = [m["name"] for m in out["metrics"]]
    assert names == ["latency", "errors", "decisions", "p99_slo"]


def test_parsed_histogram_bounds_end_with_infinity() -> None:
    profile, obs = parse_document(DOC)
    assert profile.metrics[0].tolerance == 0.10
    assert math.isinf(obs["latency"].bounds[-1])  # type: ignore[union-attr]


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["metrics", 1, "canary"], KeyError, "metrics[1].canary"),
        (["metrics", 1, "baseline", "events"], -3, "metrics[1].baseline.events"),
        (["metrics", 0, "canary"], [1, 2, 3], "metrics[0].canary"),
        (["metrics", 0, "bounds"], [0.01, 0.005, 0.025, 0.05, 0.1, "+Inf"], "metrics[0].bounds"),
        (["metrics", 2, "kind"], "bogus", "metrics[2].kind"),
        (["metrics", 2, "baseline"], [1, 2.5, 3], "metrics[2].baseline[1]"),
        (["metrics", 3, "bound"], KeyError, "metrics[3]"),
        (["metrics", 1, "tolerance"], -0.1, "metrics[1].tolerance"),
        (["alpha"], 1.5, "alpha"),
        (["metrics", 1, "spending"], "hsd:fast", "metrics[1].spending"),
        (["metrics", 1, "baseline", "total"], float("nan"), "metrics[1].baseline.total"),
        (["metrics", 0, "bounds"], [0.005, 0.01, 0.025, 0.05, 0.1, 0.2], "metrics[0].bounds"),
        (["metrics", 1, "baseline", "events"], 200_000, "metrics[1].baseline"),
    ],
)
def test_invalid_input_names_the_field(path: list[Any], value: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        judge_document(_broken(path, value))
    assert info.value.field is not None
    assert info.value.field.startswith(field)


def test_duplicate_metric_names_are_rejected() -> None:
    doc = copy.deepcopy(DOC)
    doc["metrics"][1]["name"] = "latency"
    with pytest.raises(InvalidInputError, match=r"metrics\[1\]\.name"):
        judge_document(doc)


def test_missing_marker_gives_nodata_and_no_pass() -> None:
    doc = {"metrics": [{"name": "e", "kind": "proportion", "missing": {"reason": "no series"}}]}
    out = judge_document(doc)
    assert out["verdict"] == "error"
    assert out["metrics"][0]["classification"] == "nodata"


def test_threshold_nan_is_nodata() -> None:
    doc = {
        "metrics": [{"name": "t", "kind": "threshold", "bound": {"max": 1}, "canary": float("nan")}]
    }
    out = judge_document(doc)
    assert out["metrics"][0]["classification"] == "nodata"
    assert out["verdict"] == "error"


def _replay(canary_events: list[int], horizon: int | None = None) -> dict[str, Any]:
    looks = [
        {
            "baseline": {"events": 2 * k, "total": 2000 * k},
            "canary": {"events": e, "total": 2000 * k},
        }
        for k, e in enumerate(canary_events, start=1)
    ]
    metric: dict[str, Any] = {"name": "errors", "kind": "proportion", "looks": looks}
    if horizon:
        metric["horizon"] = horizon
    return {"alpha": 0.05, "metrics": [metric]}


def test_backtest_detects_a_regression_and_reports_when() -> None:
    out = backtest_replay(_replay([2, 10, 30, 60, 90]))
    assert out["verdict"] == "fail"
    assert out["decided_at"] is not None
    assert [look["verdict"] for look in out["looks"]][out["decided_at"]] == "fail"
    assert len(out["looks"]) == 5


def test_backtest_healthy_canary_passes_at_its_horizon() -> None:
    out = backtest_replay(_replay([2, 4, 6, 8, 10], horizon=10_000))
    assert out["verdict"] == "pass"
    assert out["decided_at"] == 4


def test_backtest_counter_reset_is_an_error_look() -> None:
    doc = _replay([2, 4, 6])
    doc["metrics"][0]["looks"][2]["canary"]["total"] = 10
    doc["metrics"][0]["looks"][2]["canary"]["events"] = 1
    out = backtest_replay(doc)
    assert out["looks"][2]["verdict"] == "error"


def test_backtest_needs_looks_of_equal_length() -> None:
    doc = _replay([2, 4])
    doc["metrics"].append(
        {"name": "t", "kind": "threshold", "bound": {"max": 1}, "looks": [{"canary": 0.5}]}
    )
    with pytest.raises(InvalidInputError, match="looks"):
        backtest_replay(doc)


def _r(
    name: str,
    verdict: Verdict,
    *,
    critical: bool = False,
    cls: Classification = Classification.PASS,
) -> MetricResult:
    return MetricResult(
        name=name,
        kind=MetricKind.PROPORTION,
        verdict=verdict,
        classification=cls,
        reason="",
        critical=critical,
    )


def test_aggregation_order_of_rules() -> None:
    must = {"a": True, "b": True, "c": False}
    crit_fail = [_r("a", Verdict.FAIL, critical=True), _r("b", Verdict.ERROR)]
    assert overall_verdict(crit_fail, must, [])[0] is Verdict.FAIL
    assert overall_verdict([_r("a", Verdict.PASS)], must, ["a"])[0] is Verdict.ERROR
    err_beats_fail = [_r("a", Verdict.FAIL), _r("b", Verdict.ERROR)]
    assert overall_verdict(err_beats_fail, must, [])[0] is Verdict.ERROR
    optional = [_r("a", Verdict.PASS), _r("c", Verdict.INCONCLUSIVE, cls=Classification.NODATA)]
    assert overall_verdict(optional, must, [])[0] is Verdict.PASS
    assert (
        overall_verdict([_r("a", Verdict.PASS), _r("b", Verdict.INCONCLUSIVE)], must, [])[0]
        is Verdict.INCONCLUSIVE
    )


def test_profile_fields_used_by_the_judge_exist() -> None:
    spec = MetricSpec(
        name="x",
        kind=MetricKind.PROPORTION,
        canary_weight=0.1,
        spending="pocock",
        mixture_scale=0.1,
    )
    assert AnalysisProfile(name="p", metrics=(spec,), canary_weight=0.2).canary_weight == 0.2
