"""An Argo blueGreen Rollout's status read as a split: the active Service serves everything."""

from __future__ import annotations

from typing import Any

from analyzer.targets.argo import parse_rollout_status


def rollout(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "namespace": "risk-prod", "generation": 2},
        "spec": {"strategy": {"blueGreen": {"activeService": "a", "previewService": "p"}}},
        "status": {"observedGeneration": "2", **status},
    }


def test_preview_serves_nothing_the_cut_serves_everything_abort_points_back() -> None:
    preview = parse_rollout_status(rollout(
        stableRS="old", currentPodHash="new",
        blueGreen={"activeSelector": "old", "previewSelector": "new"},
    ))  # fmt: skip
    assert (preview.stable_hash, preview.canary_hash, preview.canary_weight) == ("old", "new", 0)
    assert preview.weight_source == "active-service"
    cut = parse_rollout_status(rollout(
        stableRS="old", currentPodHash="new", blueGreen={"activeSelector": "new"},
    ))  # fmt: skip
    assert (cut.canary_weight, cut.stable_weight) == (100, 0)
    aborted = parse_rollout_status(rollout(
        stableRS="old", currentPodHash="new", abort=True, blueGreen={"activeSelector": "old"},
    ))  # fmt: skip
    assert (aborted.canary_weight, aborted.aborted) == (0, True)
    done = parse_rollout_status(rollout(
        stableRS="new", currentPodHash="new", blueGreen={"activeSelector": "new"},
    ))  # fmt: skip
    assert (done.stable_hash, done.canary_hash, done.canary_weight) == ("new", None, 0)
