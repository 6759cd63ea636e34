"""The fleet page and its JSON tell a model-risk officer why each model went back (its own wave,
the watch after its wave, an abort), which waves are still watched, and until when — on real
fleets of in-memory models with synthetic counts, driven look by look by the engine."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType
from analyzer.fleets.spec import FleetSpec
from analyzer.ledger.store import Ledger
from analyzer.wiring import FleetWaveGates, LedgerApprovals
from gates.manual_approval import ManualApprovalGate
from gates.policy import MANUAL_APPROVAL
from tests.integration.fleets.support import (
    MemoryFleet,
    fleet_spec,
    run_to_the_end,
    run_until,
    start_a_fleet_the_watch_catches,
)
from tests.integration.ui.conftest import Site, text_of

pytestmark = pytest.mark.postgres

MODELS = [f"merchant-{i:04d}" for i in range(100)]
WAVES = (10, 50, 100)  # 10 % of 100 models: enough traffic for the first wave to pass


def _row(html: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert found, f"no row {attribute}={value}"
    return found.group(1)


def _cell(row: str, cause: str) -> str:
    found = re.search(rf'data-cause="{cause}">(.*?)</td>', row, re.S)
    assert found, f"no {cause} cell"
    return text_of(found.group(1))


def _fleet(site: Site, fleet_id: str) -> dict[str, Any]:
    answer = site.get(f"/api/v1/fleets/{fleet_id}", "viewer")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_model_the_watch_rolled_back_is_shown_with_its_cause(
    pg_engine: Engine, make_site: Callable[..., Site]
) -> None:
    fleet, fleet_id, quiet = start_a_fleet_the_watch_catches(pg_engine, MODELS)
    site = make_site(seed=False, fleet_engine=fleet.engine)
    fresh = text_of(site.get(f"/ui/fleets/{fleet_id}", "viewer").text)
    assert "No wave has passed yet." in fresh
    run_until(fleet, lambda: bool(fleet.engine.get(fleet_id).state.windows))
    watching = _fleet(site, fleet_id)
    assert watching["watch"]["phase"] == "during_waves"
    assert watching["watch"]["watched_waves"] == [1]
    assert [w["watched"] for w in watching["waves"]] == [True, False, False]
    page = site.get(f"/ui/fleets/{fleet_id}", "viewer")
    assert page.status_code == 200
    assert "Watched now: wave 1." in text_of(page.text)
    assert "3600 s after its last wave passes" in text_of(page.text)
    listing = site.get("/ui/fleets", "viewer").text
    assert '<td data-watched="1">wave 1</td>' in listing

    run_until(fleet, lambda: fleet.engine.get(fleet_id).state.watch_until is not None)
    after = _fleet(site, fleet_id)
    assert after["watch"]["phase"] == "after_last_wave"
    assert after["watch"]["watching_until"] == after["watching_until"]
    until = after["watching_until"]
    assert until is not None
    text = text_of(site.get(f"/ui/fleets/{fleet_id}", "viewer").text)
    assert f"Every wave passed. Watched now: waves 1, 2, 3, until {until}." in text

    run_to_the_end(fleet, fleet_id)
    done = _fleet(site, fleet_id)
    assert done["status"] == "completed"
    assert done["watch"] == {
        "phase": "over", "watched_waves": [], "watching_until": None, "watch_seconds": 3600.0,
    }  # fmt: skip
    assert [w["rolled_back_by"]["watch"] for w in done["waves"]] == [1, 0, 0]
    assert sum(w["rolled_back_by"]["own_wave"] for w in done["waves"]) == 0
    [model] = [m for m in done["models"] if m["model"] == quiet]
    rollback = model["rollback"]
    assert rollback["cause"] == "watch"
    assert rollback["wave"] > 1  # decided after its wave (wave 1) had passed
    assert all(m["rollback"] is None for m in done["models"] if m["model"] != quiet)
    # the look that decided it is a ledger entry saying the same
    entry = site.ledger.entry(rollback["look"])
    assert entry is not None
    assert entry.event_type == EventType.FLEET_WAVE_JUDGED.value
    assert any(quiet in w["rollbacks"] and w["wave"] == 0 for w in entry.data()["watch"])
    looks = site.get(f"/api/v1/fleets/{fleet_id}/looks", "viewer").json()["items"]
    [deciding] = [lk for lk in looks if quiet in lk["rollbacks"]]
    assert deciding["at"] == rollback["at"]
    assert deciding["own_rollbacks"] == []
    assert [w["rollbacks"] for w in deciding["watch"] if w["wave"] == 1] == [[quiet]]

    page = site.get(f"/ui/fleets/{fleet_id}", "viewer")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "The watch is over: the fleet is completed." in text
    assert "1 model rolled back by the watch after its wave had passed." in text
    assert _cell(_row(page.text, "data-wave", "1"), "watch") == "1"
    assert _cell(_row(page.text, "data-wave", "1"), "own_wave") == "0"
    assert _cell(_row(page.text, "data-model", quiet), "watch") == (
        f"the watch, during wave {rollback['wave']}"
    )
    assert f'href="/ui/events/{rollback["entry"]}"' in page.text
    assert "<script" not in page.text


def _gated(spec: FleetSpec) -> FleetSpec:
    second = replace(spec.plan[1], gates=(MANUAL_APPROVAL,))
    return replace(spec, plan=(spec.plan[0], second, *spec.plan[2:]))


def test_a_fleet_whose_next_wave_waits_for_approval_shows_the_watch_meanwhile(
    pg_engine: Engine, make_site: Callable[..., Site]
) -> None:
    # the manual-approval gate as the service wires it: it reads approvals from the ledger
    gates = FleetWaveGates(
        {MANUAL_APPROVAL: ManualApprovalGate(LedgerApprovals(Ledger(pg_engine)))}
    )
    fleet = MemoryFleet(pg_engine, MODELS, harmful=set(), gates=gates)
    site = make_site(seed=False, fleet_engine=fleet.engine)
    started = fleet.engine.start(_gated(fleet_spec(MODELS, percents=WAVES)), initiator="alice")
    run_until(fleet, lambda: fleet.engine.get(started.id).state.gated)

    shown = _fleet(site, started.id)
    assert shown["waiting_for_gates"]
    assert shown["watch"]["phase"] == "during_waves"
    assert shown["watch"]["watched_waves"] == [1]
    page = site.get(f"/ui/fleets/{started.id}", "viewer")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "wave 2 waits for its gates" in text
    assert "required approvals" in text
    assert "Watched now: wave 1." in text
    assert "No model rolled back by the watch." in text


def test_an_aborted_fleet_shows_every_model_sent_back_by_the_abort(
    pg_engine: Engine, make_site: Callable[..., Site]
) -> None:
    fleet = MemoryFleet(pg_engine, MODELS, harmful=set())
    site = make_site(seed=False, fleet_engine=fleet.engine)
    spec = fleet_spec(MODELS, percents=WAVES)
    started = fleet.engine.start(spec, initiator="alice")
    fleet.clock.advance(900)
    fleet.engine.tick()
    fleet.engine.abort(started.id, actor="carol", reason="merchant complaints")

    shown = _fleet(site, started.id)
    first = fleet.waves(spec)[0]
    assert shown["waves"][0]["rolled_back_by"]["abort"] == len(first)
    rollbacks = [m["rollback"] for m in shown["models"] if m["rollback"] is not None]
    assert len(rollbacks) == len(first)
    assert {(r["cause"], r["actor"], r["reason"]) for r in rollbacks} == {
        ("abort", "carol", "aborted by carol: merchant complaints")
    }
    page = site.get(f"/ui/fleets/{started.id}", "viewer")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "The watch is over: the fleet is aborted." in text
    assert _cell(_row(page.text, "data-wave", "1"), "abort") == str(len(first))
    assert _cell(_row(page.text, "data-model", first[0]), "abort") == "the abort"
