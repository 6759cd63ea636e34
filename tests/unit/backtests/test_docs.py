"""docs/backtests.md says what the command reads and prints: the manifest example parses, and
the JSON keys it lists are the keys the report has."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from analyzer.backtests.manifest import parse_manifest
from analyzer.backtests.replay import CanaryReplay, Truth, summarize

DOC = (Path(__file__).resolve().parents[3] / "docs" / "backtests.md").read_text(encoding="utf-8")


def test_the_manifest_example_parses_as_documented() -> None:
    block = re.search(r"```yaml\n(canaries:.*?)```", DOC, re.S)
    assert block is not None
    (canary,) = parse_manifest(block.group(1))
    assert canary.id == "fraud-2026-03-04"
    assert canary.truth is Truth.BAD
    assert len(canary.looks) == 60
    assert canary.looks[-1].end - canary.looks[-1].start == timedelta(hours=1)
    assert canary.looks[-1].bake_elapsed == 1.0
    assert canary.looks[0].canary_weight == 0.1


def test_the_documented_json_keys_are_the_report_s() -> None:
    (canary,) = parse_manifest(re.search(r"```yaml\n(canaries:.*?)```", DOC, re.S).group(1))  # type: ignore[union-attr]
    replay = CanaryReplay(canary=canary, profile="p")
    row_keys = set(
        re.findall(r'"([a-z_]+)"', DOC[DOC.index('"canaries": [{') : DOC.index('"summary":')])
    )
    assert row_keys == set(replay.to_json()) | {"canaries"}
    summary_part = DOC[DOC.index('"summary":') : DOC.index("(`decided_at` is 0-based")]
    summary_keys = set(re.findall(r'"([a-z_]+)"', summary_part)) - {"summary"}
    assert summary_keys == set(summarize("p", [replay]).to_json())
