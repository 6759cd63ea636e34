"""``canary-analyzer fleet …`` against the running API (uvicorn + PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.logging import configure_logging
from tests.integration.api.conftest import Harness, fleet_body, static_token

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _quiet_server() -> None:
    configure_logging("warning", force=True)


def run(api: Harness, role: str, *args: str) -> tuple[int, str, str]:
    env = {"CANARY_ANALYZER_URL": api.url, "CANARY_ANALYZER_TOKEN": static_token(role)}
    result = CliRunner().invoke(main, ["fleet", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_start_show_looks_and_abort_a_fleet(api: Harness, tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(fleet_body()))
    code, out, err = run(api, "operator", "start", str(spec))
    assert code == 0, err
    fleet_id = json.loads(out)["id"]
    code, out, _ = run(api, "viewer", "list")
    assert [f["id"] for f in json.loads(out)["items"]] == [fleet_id]
    assert api.fleets is not None
    api.clock.advance(600)
    api.fleets.tick()
    code, out, _ = run(api, "viewer", "show", fleet_id, "--looks")
    assert code == 0
    assert json.loads(out)["items"][0]["verdict"] == "inconclusive"
    code, out, _ = run(api, "operator", "abort", fleet_id, "--reason", "merchant complaints")
    assert code == 0
    assert json.loads(out)["status"] == "aborted"


def test_refusals_exit_2_with_the_services_message(api: Harness, tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(fleet_body(name="Bad Name")))
    code, _, err = run(api, "operator", "start", str(spec))
    assert code == 2
    assert "422" in err
    code, _, err = run(api, "viewer", "resume", "nope", "--reason", "x")
    assert code == 2
    assert "403" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    code, _, err = run(api, "operator", "start", str(bad))
    assert code == 2
    assert "expected a mapping" in err


def test_approve_a_wave_gated_by_manual_approval(api: Harness, tmp_path: Path) -> None:
    waves = [
        {"percent": 10, "dwell_seconds": 1800, "deadline_seconds": 5400},
        {"percent": 100, "dwell_seconds": 1800, "deadline_seconds": 5400,
         "gates": ["manual-approval"]},
    ]  # fmt: skip
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(fleet_body(waves=waves)))
    code, out, err = run(api, "operator", "start", str(spec))
    assert code == 0, err
    fleet_id = json.loads(out)["id"]
    code, _, err = run(api, "operator", "approve", fleet_id)
    assert code == 2
    assert "403" in err
    code, out, err = run(api, "approver", "approve", fleet_id, "--wave", "2", "--comment", "ok")
    assert code == 0, err
    assert json.loads(out)["approved_wave"] == 2
    code, _, err = run(api, "approver", "approve", fleet_id, "--wave", "1")
    assert code == 2
    assert "409" in err


def test_show_says_what_the_watch_covers_and_why_each_model_went_back(
    api: Harness, tmp_path: Path
) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(fleet_body(watch_seconds=1800)))
    code, out, err = run(api, "operator", "start", str(spec))
    assert code == 0, err
    fleet_id = json.loads(out)["id"]
    assert api.fleets is not None
    for _ in range(8):  # until wave 1 passes: its models are watched during wave 2
        api.clock.advance(600)
        api.fleets.tick()
        if api.fleets.get(fleet_id).state.windows:
            break
    code, out, err = run(api, "viewer", "show", fleet_id)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["watch"]["phase"] == "during_waves"
    assert shown["watch"]["watched_waves"] == [1]
    assert shown["watch"]["watch_seconds"] == 1800
    assert [w["watched"] for w in shown["waves"]] == [True, False]

    code, _, err = run(api, "operator", "abort", fleet_id, "--reason", "merchant complaints")
    assert code == 0, err
    code, out, err = run(api, "viewer", "show", fleet_id, "--rollbacks")
    assert code == 0, err
    why = json.loads(out)
    assert why["watch"]["phase"] == "over"
    assert why["waves"][0]["rolled_back_by"]["abort"] == 3
    assert {(r["model_wave"], r["cause"], r["actor"]) for r in why["rollbacks"]} == {
        (1, "abort", "operator-user"),
        (2, "abort", "operator-user"),
    }
    assert len(why["rollbacks"]) == 30  # wave 1 judged and wave 2 upgraded: all went back
    code, _, err = run(api, "viewer", "show", fleet_id, "--rollbacks", "--looks")
    assert code == 2
    assert "give one" in err
