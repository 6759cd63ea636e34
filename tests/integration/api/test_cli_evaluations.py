"""``canary-analyzer evaluation …``: CI records results through the running API (PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.domain.events import EventType
from analyzer.logging import configure_logging
from tests.integration.api.conftest import TENANT_TOKEN, Harness, static_token

pytestmark = pytest.mark.postgres

COMMIT = "f" * 40


@pytest.fixture(autouse=True)
def _quiet_server() -> None:
    configure_logging("warning", force=True)


def run(api: Harness, token: str | None, *args: str) -> tuple[int, str, str]:
    env = {"CANARY_ANALYZER_URL": api.url}
    if token is not None:
        env["CANARY_ANALYZER_TOKEN"] = token
    result = CliRunner().invoke(main, ["evaluation", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_ci_records_a_passing_golden_set_and_lists_it(api: Harness) -> None:
    code, out, err = run(
        api, static_token("operator"), "record", "--model", "risk-prod/credit",
        "--model-version", "17", "--suite", "golden-set", "--passed",
        "--metric", "auc=0.91", "--metric", "ks=4.2e-1",
        "--report-url", "https://ci.bank.example/runs/7", "--commit", COMMIT,
    )  # fmt: skip
    assert code == 0, err
    recorded = json.loads(out)
    entry = api.ledger.entry(recorded["seq"])
    assert entry is not None
    assert entry.event_type == EventType.EVALUATION_RECORDED.value
    assert entry.actor == "operator-user"
    assert entry.data()["metrics"] == {"auc": 0.91, "ks": 0.42}
    assert entry.data()["passed"] is True
    assert entry.data()["commit"] == COMMIT

    code, out, err = run(
        api, static_token("operator"), "record", "--model", "risk-prod/credit",
        "--model-version", "17", "--suite", "load-test", "--failed",
    )  # fmt: skip
    assert code == 0, err
    assert api.ledger.entry(json.loads(out)["seq"]).data()["passed"] is False  # type: ignore[union-attr]

    code, out, err = run(
        api, static_token("viewer"), "list", "--model", "risk-prod/credit",
        "--model-version", "17",
    )  # fmt: skip
    assert code == 0, err
    assert [e["suite"] for e in json.loads(out)["evaluations"]] == ["load-test", "golden-set"]


def test_refusals_exit_2_with_the_services_message(api: Harness) -> None:
    base = ["record", "--model", "analytics/churn", "--model-version", "17", "--suite", "gs"]
    code, _, err = run(api, static_token("viewer"), *base, "--passed")
    assert code == 2
    assert "403" in err
    assert "record_evaluation" in err
    code, _, err = run(api, TENANT_TOKEN, *base, "--passed")
    assert code == 2
    assert "analytics" in err
    code, _, err = run(api, static_token("operator"), *base, "--passed", "--commit", "abc")
    assert code == 2
    assert "422" in err
    assert "commit" in err
    assert api.ledger.head()[0] == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "say --passed or --failed"),
        (("--passed", "--metric", "auc"), "--metric"),
        (("--passed", "--metric", "auc=nan"), "finite"),
        (("--passed", "--metric", "auc=inf"), "finite"),
    ],
)
def test_bad_usage_exits_2_before_calling(
    api: Harness, extra: tuple[str, ...], message: str
) -> None:
    code, _, err = run(
        api, static_token("operator"), "record", "--model", "risk-prod/credit",
        "--model-version", "17", "--suite", "golden-set", *extra,
    )  # fmt: skip
    assert code == 2
    assert message in err
    assert api.ledger.head()[0] == 0


def test_an_unreachable_service_exits_3() -> None:
    result = CliRunner().invoke(
        main,
        ["evaluation", "--url", "http://127.0.0.1:9", "record", "--model", "a/b",
         "--model-version", "1", "--suite", "s", "--passed"],
    )  # fmt: skip
    assert result.exit_code == 3
    assert "cannot reach" in result.stderr
