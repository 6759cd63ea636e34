"""The chart builders on real judge output (``judge_document``) and on edge cases. Pure."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analyzer.api.ui.charts import (
    NA,
    Chart,
    DataTable,
    Look,
    Shape,
    evidence_chart,
    fmt,
    look_of,
    metric_chart,
    metric_picture,
    score_chart,
    wilson,
)
from analyzer.api.ui.evidence import analysis_evidence
from analyzer.api.ui.pictures import LookCache
from analyzer.api.ui.svg import figure
from analyzer.judge.io import judge_document
from analyzer.ledger.chain import EntryRecord

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)


def judged() -> dict[str, Any]:
    rng = random.Random(7)
    return judge_document({
        "alpha": 0.05,
        "metrics": [
            {"name": "error_rate", "kind": "proportion", "tolerance": 0.001, "critical": True,
             "baseline": {"events": 400, "total": 90000}, "canary": {"events": 60, "total": 10000}},
            {"name": "latency", "kind": "histogram", "tolerance": 0.1,
             "bounds": [5, 10, 20, 50, 100, "+Inf"], "baseline": [1000, 5000, 2000, 500, 100, 10],
             "canary": [100, 520, 210, 60, 10, 2]},
            {"name": "decision", "kind": "categorical", "categories": ["approve", "decline"],
             "baseline": [9000, 1000], "canary": [880, 120]},
            {"name": "score", "kind": "samples",
             "baseline": [rng.gauss(0.5, 0.1) for _ in range(200)],
             "canary": [rng.gauss(0.5, 0.1) for _ in range(100)]},
            {"name": "p99", "kind": "threshold", "bound": {"max": 120}, "canary": 100},
        ],
    })  # fmt: skip


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in result["metrics"]}


def test_histogram_picture_draws_the_judges_quantiles_and_tolerance_band() -> None:
    metric = by_name(judged())["latency"]
    picture = metric_picture(metric)
    assert [r.label for r in picture.rows] == ["p50", "p90", "p99"]
    for row in picture.rows:
        recorded = metric["estimate"][row.label]
        assert row.baseline.estimate == recorded["baseline"]
        assert row.canary.ci == tuple(recorded["canary_ci"])
        assert row.allowed == (recorded["baseline"], pytest.approx(recorded["baseline"] * 1.1))
    assert picture.tolerance == "canary ≤ baseline × 1.1"
    assert picture.boundary == f"e-value ≥ {fmt(metric['statistic']['threshold'])} fails"
    chart = metric_chart(metric, "x")
    assert chart is not None
    estimates = sorted(float(dict(s.data)["data-estimate"]) for s in chart.shapes
                       if s.tag == "circle")  # fmt: skip
    expected = [
        metric["estimate"][q][a] for q in ("p50", "p90", "p99") for a in ("baseline", "canary")
    ]
    assert estimates == sorted(expected)


def test_rate_picture_has_wilson_intervals_per_arm_and_the_confidence_sequence() -> None:
    metric = by_name(judged())["error_rate"]
    (row,) = metric_picture(metric).rows
    assert row.baseline.ci == wilson(400, 90000)
    assert row.canary.estimate == 0.006
    lo, hi = metric["estimate"]["intervals"]["rate"]
    diff = fmt(100 * metric["estimate"]["diff"])
    assert row.comparison == f"difference {diff} pp [{fmt(100 * lo)}, {fmt(100 * hi)}]"
    low, high = wilson(60, 10000) or (0, 0)
    assert low < 0.006 < high


def test_evidence_rows_cover_every_kind_and_score_of_an_inconclusive_analysis_is_na() -> None:
    result = judged()
    assert result["verdict"] == "inconclusive"
    assert result["score"] == 0.0  # what the judge records ...
    evidence = analysis_evidence({"result": result})
    assert evidence is not None
    assert evidence.score == NA  # ... is shown as "n/a", never as a score of 0
    assert [r.metric for r in evidence.rows if r.first] == ["error_rate", "latency", "decision",
                                                           "score", "p99"]  # fmt: skip
    assert {r.kind for r in evidence.rows} == {"proportion", "histogram", "categorical",
                                               "samples", "threshold"}  # fmt: skip
    assert len(evidence.charts) == 5
    critical = [r.metric for r in evidence.rows if r.critical]
    assert critical == ["error_rate"]


def test_score_chart_marks_inconclusive_looks_na_and_never_draws_them_as_zero() -> None:
    looks = [
        Look(number=1, seq=10, recorded_at=T0, verdict="inconclusive", score=0.0),
        Look(number=2, seq=11, recorded_at=T0 + timedelta(minutes=1), verdict="pass", score=100.0),
        Look(number=3, seq=12, recorded_at=T0 + timedelta(minutes=2), verdict="fail", score=0.0),
    ]
    chart = score_chart(looks, "s")
    assert chart is not None
    drawn = {dict(s.data)["data-look"]: (s.cls, dict(s.data)["data-score"])
             for s in chart.shapes if s.data}  # fmt: skip
    assert drawn == {
        "1": ("na", NA),
        "2": ("bar verdict-pass", "100"),
        "3": ("bar verdict-fail", "0"),
    }
    assert chart.table.rows == (("1", "inconclusive", NA), ("2", "pass", "100"), ("3", "fail", "0"))


def test_looks_without_a_verdict_or_e_values_draw_nothing_instead_of_guessing() -> None:
    assert look_of(1, 5, T0, {"unexpected": True}) is None
    look = look_of(1, 5, T0, {"result": {"verdict": "pass", "metrics": [{"name": "m"}]}})
    assert look is not None
    assert evidence_chart([look], "e") is None
    assert metric_chart({"name": "m", "kind": "histogram", "estimate": {}}, "m") is None


def test_shapes_are_only_svg_elements_of_the_allowed_kinds() -> None:
    with pytest.raises(ValueError, match="not a chart element"):
        Shape("script", "x", ())


def test_recorded_text_in_a_chart_is_escaped_and_names_are_allowlisted() -> None:
    hostile = '<script>alert("x")</script>&\''
    chart = Chart(
        key=hostile, kind="k", title=hostile, desc=hostile, width=10, height=10,
        shapes=(Shape("text", hostile, (("x", "1"),), data=(("data-metric", hostile),),
                      text=hostile, tip=hostile, href=hostile),),
        table=DataTable(caption=hostile, columns=(hostile,), rows=((hostile,),)),
        verdict=hostile,
    )  # fmt: skip
    markup = str(figure(chart))
    assert "<script" not in markup
    assert hostile not in markup
    assert markup.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;") >= 12
    for name in ("onclick", "style", "x y"):
        bad = Shape("rect", "c", ((name, "1"),))
        with pytest.raises(ValueError, match="not a chart attribute"):
            figure(replace(chart, shapes=(bad,)))


def test_look_cache_decodes_a_rewritten_payload_afresh() -> None:
    data = {"result": {"verdict": "pass", "score": 100.0, "metrics": []}}
    entry = EntryRecord(
        seq=7, recorded_at=T0, event_type="analysis_recorded", schema_version=1, actor="a",
        model="ns/m", rollout_id="r", revision="c", payload=json.dumps({"data": data}),
        prev_hash="0" * 64, hash="1" * 64,
    )  # fmt: skip
    cache = LookCache(size=2)
    first = cache.get(entry)
    assert first.parts is not None
    assert first.parts.verdict == "pass"
    assert cache.get(entry) is first  # unchanged entry: from the cache
    data["result"]["verdict"] = "fail"
    rewritten = replace(entry, payload=json.dumps({"data": data}))
    assert cache.get(rewritten).parts.verdict == "fail"  # type: ignore[union-attr]
