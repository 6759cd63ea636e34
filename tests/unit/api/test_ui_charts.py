"""The chart builders on real judge output (``judge_document``) and on edge cases. Pure."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analyzer.api.ui.charts import (
    NA,
    TIPS_UP_TO,
    Chart,
    DataTable,
    Look,
    Marker,
    MetricAtLook,
    Shape,
    evidence_chart,
    fmt,
    fmt_interval,
    look_of,
    metric_chart,
    metric_picture,
    score_chart,
    sequence_chart,
    traffic_chart,
    wilson,
)
from analyzer.api.ui.evidence import analysis_evidence
from analyzer.api.ui.pictures import LookCache, LookChartsCache, pictures_of
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


# --- long rollouts: beyond TIPS_UP_TO looks the per-look marks are one path per kind ---------


def long_bake(n: int) -> list[Look]:
    """``n`` looks: every 7th inconclusive, every 50th failing, each with an error-rate
    interval that narrows with the look."""
    looks = []
    for k in range(1, n + 1):
        verdict = "inconclusive" if k % 7 == 0 else "fail" if k % 50 == 0 else "pass"
        half = 0.002 / k**0.5
        metric = MetricAtLook(verdict=verdict, e_value=1.0 + k / 100, threshold=60.0,
                              interval=(0.0001 - half, 0.0001 + half), tolerance=0.001,
                              kind="proportion")  # fmt: skip
        looks.append(Look(number=k, seq=1000 + k, recorded_at=T0 + timedelta(minutes=k),
                          verdict=verdict, score=0.0 if verdict != "pass" else 100.0,
                          metrics={"error_rate": metric}))  # fmt: skip
    return looks


def segments(path: Shape) -> list[tuple[float, float, float]]:
    """(x, y from, y to) of each ``M x,y V y`` (or ``v dy``) segment of a dense path."""
    found = []
    for x, y, op, to in re.findall(r"M([\d.]+),([\d.]+)([Vv])(-?[\d.]+)", dict(path.attrs)["d"]):
        y0 = float(y)
        found.append((float(x), y0, float(to) if op == "V" else y0 + float(to)))
    return found


def test_a_long_score_chart_draws_every_look_once_in_a_path_per_kind() -> None:
    looks = long_bake(TIPS_UP_TO + 80)
    chart = score_chart(looks, "s")
    assert chart is not None
    paths = [s for s in chart.shapes if s.tag == "path"]
    assert not [s for s in chart.shapes if s.tag == "rect"]  # no element per look
    drawn: dict[int, str] = {}
    for path in paths:
        numbers = [int(n) for n in dict(path.data)["data-looks"].split()]
        assert len(numbers) == len(segments(path))  # one stroke per look listed
        drawn |= dict.fromkeys(numbers, path.cls)
        for number_, (_, top, bottom) in zip(numbers, segments(path), strict=True):
            look = looks[number_ - 1]
            if look.score_text == NA:
                assert abs(top - bottom) == 6  # the grey n/a mark, never a bar of 0
            else:  # a bar as tall as the score (0..100 over the plot's height)
                assert (top - bottom) / 96 == pytest.approx((look.score or 0) / 100, abs=0.02)
    assert drawn == {lk.number: "dense na" if lk.score_text == NA
                     else f"dense bar verdict-{lk.verdict}" for lk in looks}  # fmt: skip
    assert len(chart.table.rows) == len(looks)  # the table keeps every number


def test_a_long_confidence_sequence_draws_each_interval_as_a_stroke() -> None:
    looks = long_bake(300)
    chart = sequence_chart(looks, "error_rate", "q")
    assert chart is not None
    paths = [s for s in chart.shapes if s.tag == "path"]
    assert {p.cls for p in paths} == {"dense whisker verdict-pass", "dense whisker verdict-fail",
                                      "dense whisker verdict-inconclusive"}  # fmt: skip
    lengths = {}
    for path in paths:
        numbers = [int(n) for n in dict(path.data)["data-looks"].split()]
        for number_, (_, y0, y1) in zip(numbers, segments(path), strict=True):
            lengths[number_] = abs(y1 - y0)
    assert sorted(lengths) == list(range(1, 301))
    assert lengths[4] > lengths[100] > lengths[300]  # the intervals narrow as drawn
    assert chart.table.rows[99] == ("100", "fail", fmt_interval(looks[99].metrics[
        "error_rate"].interval, 100))  # fmt: skip


def test_a_long_traffic_chart_draws_the_verdicts_as_dots_and_keeps_the_other_marks() -> None:
    looks = long_bake(200)
    markers = [Marker(seq=lk.seq, at=lk.recorded_at, kind=f"verdict-{lk.verdict}", label="",
                      actor="e") for lk in looks]  # fmt: skip
    markers.append(Marker(seq=5000, at=T0 + timedelta(minutes=201), kind="promoted",
                          label="promoted", actor="e"))  # fmt: skip
    chart = traffic_chart([], markers, start=T0, end=T0 + timedelta(minutes=202), key="t")
    dots = [s for s in chart.shapes if s.tag == "path"]
    seqs = sorted(int(n) for p in dots for n in dict(p.data)["data-seqs"].split())
    assert seqs == [lk.seq for lk in looks]
    assert all(dict(p.attrs)["d"].count("h0") == len(dict(p.data)["data-seqs"].split())
               for p in dots)  # fmt: skip
    outcome = [s for s in chart.shapes if s.tag == "circle" and "marker-promoted" in s.cls]
    assert len(outcome) == 1  # the outcome keeps its own mark, link and tooltip
    assert outcome[0].href == "/ui/events/5000"


def analysis_entry(seq: int, verdict: str) -> EntryRecord:
    data = {"result": {"verdict": verdict, "score": 100.0, "metrics": []}}
    return EntryRecord(
        seq=seq, recorded_at=T0 + timedelta(minutes=seq), event_type="analysis_recorded",
        schema_version=1, actor="a", model="ns/m", rollout_id="r", revision="c",
        payload=json.dumps({"data": data}), prev_hash="0" * 64, hash=f"{seq:064d}",
    )  # fmt: skip


def test_the_looks_charts_are_kept_until_a_look_is_added_or_rewritten() -> None:
    entries = [analysis_entry(s, "pass") for s in (1, 2, 3)]
    charts = LookChartsCache()
    first = pictures_of(entries, start=T0, end=T0 + timedelta(hours=1), charts_cache=charts)
    again = pictures_of(entries, start=T0, end=T0 + timedelta(hours=1), charts_cache=charts)
    assert again.score is first.score  # the same looks: the same chart (and its markup)
    assert figure(again.score) is figure(first.score)  # type: ignore[arg-type]
    more = pictures_of([*entries, analysis_entry(4, "pass")], start=T0,
                       end=T0 + timedelta(hours=1), charts_cache=charts)  # fmt: skip
    assert more.score is not first.score
    assert more.looks == 4
    rewritten = [*entries[:2], analysis_entry(3, "fail")]
    changed = pictures_of(rewritten, start=T0, end=T0 + timedelta(hours=1), charts_cache=charts)
    assert changed.score is not None
    assert changed.score.table.rows[-1] == ("3", "fail", "100")


def test_a_figure_is_written_again_for_an_equal_chart_that_is_another_object() -> None:
    chart = score_chart(long_bake(3), "s")
    assert chart is not None
    twin = replace(chart)
    assert twin == chart
    assert twin is not chart
    assert str(figure(twin)) == str(figure(chart))
    assert figure(chart) is figure(chart)
