"""``canary-analyzer rollout …`` against the running API (uvicorn + PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.domain.events import EventType
from analyzer.logging import configure_logging
from tests.integration.api.conftest import Harness, model_ref, static_token

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _quiet_server() -> None:
    # The API runs in this process: keep its info logs out of the CLI's captured stdout.
    configure_logging("warning", force=True)


def run(api: Harness, role: str | None, *args: str) -> tuple[int, str, str]:
    env = {"CANARY_ANALYZER_URL": api.url}
    if role is not None:
        env["CANARY_ANALYZER_TOKEN"] = static_token(role)
    result = CliRunner().invoke(main, ["rollout", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_start_show_abort_through_the_api(api: Harness) -> None:
    ref = model_ref()
    api.target.add_model(ref, stable_revision="fraud-00001", canary_revision="fraud-00002")
    code, out, err = run(
        api, "operator", "start", "--model", str(ref), "--baseline", "fraud-00001",
        "--canary", "fraud-00002", "--profile", "knative",
    )  # fmt: skip
    assert code == 0, err
    rollout_id = json.loads(out)["id"]
    code, out, _ = run(api, "viewer", "show", rollout_id)
    assert code == 0
    assert json.loads(out)["state"] == "pending"
    code, out, _ = run(api, "operator", "abort", rollout_id, "--reason", "paged at 02:13")
    assert code == 0
    assert json.loads(out)["state"] == "aborted"
    aborts = api.ledger.events(rollout_id=rollout_id, event_types=[EventType.ROLLOUT_ABORTED])
    assert [(e.actor, e.data()["reason"]) for e in aborts.entries] == [
        ("operator-user", "paged at 02:13")
    ]
    code, out, _ = run(api, "viewer", "list", "--state", "aborted")
    assert [r["id"] for r in json.loads(out)["rollouts"]] == [rollout_id]


def test_refusals_exit_two_with_the_services_message(api: Harness) -> None:
    code, _, err = run(api, "viewer", "abort", "no-such-rollout", "--reason", "x")
    assert code == 2
    assert err.startswith("error: 40")
    code, _, err = run(api, None, "list")
    assert code == 2
    assert "401" in err


def test_unreachable_service_exits_one() -> None:
    result = CliRunner().invoke(
        main, ["rollout", "--url", "http://127.0.0.1:9", "list"], env={"CANARY_ANALYZER_TOKEN": "t"}
    )
    assert result.exit_code == 1
    assert "cannot reach" in result.stderr
