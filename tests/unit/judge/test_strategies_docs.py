"""docs/strategies.md's paired judge example gives the verdict the page states."""

from __future__ import annotations

import json
import re
from pathlib import Path

from analyzer.judge.io import judge_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "strategies.md"


def block(tag: str) -> str:
    text = DOC.read_text()
    match = re.search(rf"<!-- docs-test: {tag} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, f"no docs-test block {tag!r} in {DOC}"
    return match.group(1)


def test_the_paired_example_fails_for_the_reason_the_page_gives() -> None:
    out = judge_document(json.loads(block("judge")))
    assert isinstance(out, dict)
    assert out["verdict"] == "fail"
    (metric,) = out["metrics"]
    assert metric["estimate"]["disagreement_rate"] == 0.0145
    assert (metric["estimate"]["adverse"], metric["estimate"]["reverse"]) == (480, 40)
    assert metric["estimate"]["adverse_shift"] == 0.011
    # inside the disagreement margin; the adverse shift is what fails it
    components = metric["statistic"]["components"]
    assert components["disagreement"]["z"] < 0 < components["adverse_shift"]["z"]
    text = DOC.read_text()
    assert "Verdict: `fail`" in text
    assert "1.45 % of 40,000 requests" in text


def test_the_documented_shadow_profile_loads_with_its_paired_settings() -> None:
    from analyzer.domain.verdict import MetricKind
    from analyzer.profiles import parse_profile

    loaded = parse_profile(block("profile"), source="docs/strategies.md")
    kinds = {m.name: m.kind for m in loaded.profile.metrics}
    assert kinds == {
        "shadow_decisions": MetricKind.PAIRED,
        "latency": MetricKind.HISTOGRAM,
        "errors": MetricKind.PROPORTION,
    }
    paired = loaded.profile.metrics[0]
    assert paired.extra == {"adverse": ("approve", "decline"), "adverse_tolerance": 0.005}
    query = loaded.queries["shadow_decisions"]
    assert (query.incumbent_label, query.category_label) == ("incumbent", "challenger")


def test_the_documented_argo_blue_green_names_the_shipped_templates_and_their_args() -> None:
    import yaml

    strategy = yaml.safe_load(block("argo-bluegreen"))["strategy"]["blueGreen"]
    shipped = {
        doc["metadata"]["name"]: doc["spec"]
        for doc in yaml.safe_load_all(
            (DOC.parents[1] / "deploy" / "argo" / "analysistemplate-bluegreen.yaml").read_text()
        )
        if doc
    }
    for phase in ("prePromotionAnalysis", "postPromotionAnalysis"):
        (ref,) = strategy[phase]["templates"]
        spec = shipped[ref["templateName"]]
        required = {a["name"] for a in spec["args"] if "value" not in a and "valueFrom" not in a}
        given = {a["name"] for a in strategy[phase]["args"]}
        assert required <= given, (phase, required - given)
        assert given <= {a["name"] for a in spec["args"]}, (phase, given)
