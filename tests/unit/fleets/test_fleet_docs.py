"""docs/fleets.md states the defaults and rules the code uses; docs/ledger.md lists the fleet
entries. A change to one without the other fails here."""

from __future__ import annotations

from pathlib import Path

from analyzer.domain.events import EventType
from analyzer.fleets.history import RollbackCause, WatchPhase
from analyzer.fleets.judge import FleetPolicy
from analyzer.fleets.plan import WaveSpec, cut_waves

DOCS = Path(__file__).parents[3] / "docs"


def test_the_documented_defaults_are_the_code_defaults() -> None:
    text = (DOCS / "fleets.md").read_text()
    policy = FleetPolicy()
    shares = f"{policy.model_share} / {policy.pooled_share} / {policy.safety_share}"
    assert f"= {shares}" in text
    assert f"The mixture's scale is **{policy.mixture_scale}**" in text
    assert f"`max_rollback_share` ({policy.max_rollback_share:.0%})".replace("%", " %") in text
    assert f"`tolerated_rollbacks` ({policy.tolerated_rollbacks})" in text
    assert f"(default {policy.alpha})" in text
    assert "Moves run 8 at a time" in text


def test_the_documented_wave_sizes_are_what_the_plan_cuts() -> None:
    text = (DOCS / "fleets.md").read_text()
    plan = [WaveSpec(percent=p, dwell_seconds=1, deadline_seconds=1) for p in (2, 10, 50, 100)]
    sizes = [len(w) for _, w in cut_waves("f", [f"m{i}" for i in range(420)], plan)]
    assert f"gives waves of {sizes[0]}, {sizes[1]}, {sizes[2]} and {sizes[3]}" in text


def test_the_ledger_docs_list_the_fleet_entries() -> None:
    text = (DOCS / "ledger.md").read_text()
    for kind in (
        EventType.FLEET_ROLLOUT_STARTED,
        EventType.FLEET_WAVE_JUDGED,
        EventType.FLEET_ROLLOUT_CHANGED,
    ):
        assert f"`{kind.value}`" in text


def test_the_api_docs_name_every_rollback_cause_and_watch_phase() -> None:
    api = (DOCS / "api.md").read_text()
    for cause in RollbackCause:
        assert f"`{cause.value}`" in api
    for phase in WatchPhase:
        assert f"`{phase.value}`" in api
    ui = (DOCS / "ui.md").read_text()
    assert "`GET /ui/fleets/{id}`" in ui
    assert "*The watch*" in ui
