"""``canary-analyzer rollout …`` against the running API (uvicorn + PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_start_names_the_model_version_and_digest(api: Harness) -> None:
    ref = model_ref()
    api.target.add_model(ref, stable_revision="fraud-00001", canary_revision="fraud-00002")
    digest = "sha256:" + "c0ffee" * 10 + "beef"
    code, out, err = run(
        api, "operator", "start", "--model", str(ref), "--baseline", "fraud-00001",
        "--canary", "fraud-00002", "--profile", "knative", "--tier", "regulated",
        "--change-request", "CHG0031337", "--model-version", "3.2.1",
        "--artifact-digest", digest,
    )  # fmt: skip
    assert code == 0, err
    started = json.loads(out)
    assert (started["model_version"], started["artifact_digest"]) == ("3.2.1", digest)
    code, out, _ = run(api, "viewer", "show", started["id"])
    assert code == 0
    assert (json.loads(out)["model_version"], json.loads(out)["artifact_digest"]) == (
        "3.2.1", digest,
    )  # fmt: skip
    code, out, _ = run(api, "viewer", "list")
    assert [r["model_version"] for r in json.loads(out)["rollouts"]] == ["3.2.1"]
    registered = api.ledger.events(
        rollout_id=started["id"], event_types=[EventType.REVISION_REGISTERED]
    ).entries
    assert [(e.data()["model_version"], e.data()["artifact_digest"]) for e in registered] == [
        ("3.2.1", digest)
    ]


def test_start_with_a_bad_digest_exits_two_naming_the_field(api: Harness) -> None:
    code, _, err = run(
        api, "operator", "start", "--model", "risk-prod/fraud", "--baseline", "fraud-00001",
        "--canary", "fraud-00002", "--profile", "knative", "--artifact-digest", "sha256:abc",
    )  # fmt: skip
    assert code == 2
    assert err.startswith("error: 422: artifact_digest: ")


def test_refusals_exit_two_with_the_services_message(api: Harness) -> None:
    code, _, err = run(api, "viewer", "abort", "no-such-rollout", "--reason", "x")
    assert code == 2
    assert err.startswith("error: 40")
    code, _, err = run(api, None, "list")
    assert code == 2
    assert "401" in err


def test_unreachable_service_exits_three() -> None:
    result = CliRunner().invoke(
        main, ["rollout", "--url", "http://127.0.0.1:9", "list"], env={"CANARY_ANALYZER_TOKEN": "t"}
    )
    assert result.exit_code == 3
    assert "cannot reach" in result.stderr


def test_approve_takes_a_step_and_says_which_step_it_approved(api: Harness) -> None:
    ref = model_ref()
    api.target.add_model(ref, stable_revision="fraud-00001", canary_revision="fraud-00002")
    code, out, err = run(
        api, "operator", "start", "--model", str(ref), "--baseline", "fraud-00001",
        "--canary", "fraud-00002", "--profile", "knative", "--tier", "regulated",
    )  # fmt: skip
    assert code == 0, err
    rollout_id = json.loads(out)["id"]
    code, out, err = run(api, "approver", "approve", rollout_id, "--comment", "CAB ok")
    assert code == 0, err
    assert (json.loads(out)["approved_step"], json.loads(out)["approved_weight"]) == (3, 100)
    code, out, err = run(api, "approver", "approve", rollout_id, "--step", "1")
    assert code != 0
    assert "never be counted" in out + err
    code, out, err = run(api, "approver", "approve", rollout_id, "--step", "3")
    assert code == 0, err


def test_url_and_token_are_accepted_after_the_subcommand(api: Harness) -> None:
    token = static_token("viewer")
    after = CliRunner().invoke(main, ["rollout", "list", "--url", api.url, "--token", token])
    assert after.exit_code == 0, after.stderr
    assert json.loads(after.stdout) is not None
    # Given in both places, the one after the subcommand wins (here: the reachable one).
    both = CliRunner().invoke(
        main,
        ["rollout", "--url", "http://127.0.0.1:9", "--token", "wrong", "list",
         "--url", api.url, "--token", token],
    )  # fmt: skip
    assert both.exit_code == 0, both.stderr
    # And a wrong token after the subcommand is the one sent: refused, 2.
    refused = CliRunner().invoke(
        main, ["rollout", "--token", token, "list", "--url", api.url, "--token", "wrong"]
    )
    assert refused.exit_code == 2
    assert "401" in refused.stderr


def test_start_sends_a_sigstore_bundle_file(api: Harness, tmp_path: Path) -> None:
    from tests.unit.gates.test_gate_sigstore import BUNDLE_TEXT, WHEEL_DIGEST

    ref = model_ref()
    api.target.add_model(ref, stable_revision="fraud-00001", canary_revision="fraud-00002")
    bundle = tmp_path / "model.sigstore.json"
    bundle.write_text(BUNDLE_TEXT)
    code, out, err = run(
        api, "operator", "start", "--model", str(ref), "--baseline", "fraud-00001",
        "--canary", "fraud-00002", "--profile", "knative", "--artifact-digest", WHEEL_DIGEST,
        "--sigstore-bundle", str(bundle),
    )  # fmt: skip
    assert code == 0, err
    [registered] = api.ledger.events(
        rollout_id=json.loads(out)["id"], event_types=[EventType.REVISION_REGISTERED]
    ).entries
    assert registered.data()["sigstore_bundle"] == json.loads(BUNDLE_TEXT)
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    code, _, err = run(
        api, "operator", "start", "--model", str(ref), "--baseline", "fraud-00001",
        "--canary", "fraud-00003", "--profile", "knative", "--sigstore-bundle", str(junk),
    )  # fmt: skip
    assert code == 2
    assert err.startswith("error: --sigstore-bundle: not JSON")


def test_start_with_a_strategy_and_its_refusals(api: Harness) -> None:
    ref = model_ref()
    api.target.add_model(ref, stable_revision="fraud-00001", canary_revision="fraud-00002")
    code, out, err = run(
        api, "operator", "start", "--model", str(ref), "--baseline", "fraud-00001",
        "--canary", "fraud-00002", "--profile", "knative", "--strategy", "blue_green",
    )  # fmt: skip
    assert code == 0, err
    started = json.loads(out)
    assert started["strategy"] == "blue_green"
    assert [s["weight"] for s in started["plan"]["steps"]] == [100]  # the strategy's default plan
    code, _, err = run(
        api, "operator", "start", "--model", "risk-prod/other", "--baseline", "fraud-00001",
        "--canary", "fraud-00002", "--profile", "knative", "--strategy", "pinned",
        "--tier", "regulated",
    )  # fmt: skip
    assert code == 2
    assert "422: a regulated model is rolled out as a canary" in err
    code, _, err = run(
        api, "operator", "start", "--model", str(ref), "--baseline", "a", "--canary", "b",
        "--profile", "knative", "--strategy", "rainbow",
    )  # fmt: skip
    assert code == 2
    assert "rainbow" in err
