"""Gates built from settings (config file) and asked through the engine's gate checker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic import command

from analyzer.config import load_settings
from analyzer.db import alembic_config, make_engine
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import Rollout, RolloutState, StepPlan
from analyzer.ledger.store import Ledger
from analyzer.rollouts.ports import GateCheck
from analyzer.wiring import PolicyGateChecker, build_gates
from gates.policy import CHANGE_WINDOW, MANUAL_APPROVAL, SERVICENOW_CHANGE
from gates.shadow import SHADOW
from tests.fakes.servicenow import Choice, DateTime, FakeServiceNow, Ref

MODEL = ModelRef(namespace="risk-prod", name="credit-decision")
WEDNESDAY = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
FRIDAY_EVENING = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)  # 16:30 in Europe/London


@pytest.fixture
def snow() -> Iterator[FakeServiceNow]:
    with FakeServiceNow() as fake:
        fake.add_table("change_request")
        fake.add_table("sysapproval_approver")
        sys_id = fake.add_record(
            "change_request", number="CHG0031337", state=Choice("-1", "Implement"),
            approval=Choice("approved", "Approved"),
            start_date=DateTime("2026-11-25 08:00:00"), end_date=DateTime("2026-11-28 18:00:00"),
            cmdb_ci=Ref("cmdb_ci_appl", "a" * 32, "credit-decision"),
            u_model_version="17",  # the MLflow version the model-risk team approved
        )  # fmt: skip
        fake.add_record(
            "sysapproval_approver", sysapproval=Ref("change_request", sys_id, "CHG0031337"),
            approver=Ref("sys_user", "b" * 32, "Maria Risk-Owner"),
            state=Choice("approved", "Approved"), sys_updated_on=DateTime("2026-11-24 09:00:00"),
        )  # fmt: skip
        yield fake


def settings_file(tmp_path: Path, snow: FakeServiceNow) -> Path:
    config = {
        "data_dir": str(tmp_path),
        "servicenow": {
            "instance_url": snow.url, "username": "gate.bot", "password": "bot-password",
        },
        "gates": {
            "change_window": {
                "timezone": "Europe/London",
                "weekly": [{"start_day": "friday", "start_time": "15:00",
                            "end_day": "monday", "end_time": "08:00"}],
            },
            "policy": {"tiers": {"regulated": {"requirements": [
                {"gate": "servicenow-change", "from_weight": 100},
                {"gate": "manual-approval", "from_weight": 100},
                {"gate": "change-window", "from_weight": 10},
            ]}}},
        },
    }  # fmt: skip
    path = tmp_path / "canary-analyzer.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rollout(model_version: str | None = "17") -> Rollout:
    return Rollout(
        id="r-1", model=MODEL, tier=Tier.REGULATED, baseline_revision="credit-decision-00007",
        canary_revision="credit-decision-00008", profile="knative", plan=StepPlan.default(),
        state=RolloutState.PROGRESSING, step_index=2, paused=False, initiator="alice",
        created_at=WEDNESDAY, updated_at=WEDNESDAY, change_request="CHG0031337",
        model_version=model_version,
    )  # fmt: skip


def configured_checker(
    tmp_path: Path, snow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch
) -> tuple[PolicyGateChecker, Ledger, list[object]]:
    """The gate checker serve would build from the settings file, on a migrated SQLite file."""
    for key in [k for k in __import__("os").environ if k.startswith("CANARY_ANALYZER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CANARY_ANALYZER_CONFIG_FILE", str(settings_file(tmp_path, snow)))
    settings = load_settings()
    url = settings.effective_database_url()
    command.upgrade(alembic_config(url), "head")
    ledger = Ledger(make_engine(url), clock=lambda: WEDNESDAY - timedelta(hours=1))
    closables: list[object] = []
    gates = build_gates(settings, ledger, closables)  # type: ignore[arg-type]
    return PolicyGateChecker(settings.gates.policy, gates), ledger, closables


def approve(ledger: Ledger) -> None:
    ledger.record(LedgerEvent(
        type=EventType.APPROVAL_GIVEN, actor="bob", model=MODEL, rollout_id="r-1",
        data={"step": 3, "roles": ["approver"], "comment": "MRM-118"},
    ))  # fmt: skip


def servicenow_decision(check: GateCheck) -> dict[str, Any]:
    decisions = {d["gate"]: d for d in check.evidence["decisions"]}
    decision: dict[str, Any] = decisions[SERVICENOW_CHANGE]
    return decision


def test_configured_gates_decide_a_regulated_promotion(
    tmp_path: Path, snow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker, ledger, closables = configured_checker(tmp_path, snow, monkeypatch)
    required = checker.check(rollout(), target_step=3, now=WEDNESDAY).evidence["required"]
    assert set(required) == {MANUAL_APPROVAL, CHANGE_WINDOW, SERVICENOW_CHANGE}

    no_approval = checker.check(rollout(), target_step=3, now=WEDNESDAY)
    assert not no_approval.open
    assert "manual-approval" in no_approval.reason
    assert "servicenow-change" not in no_approval.reason  # the CR itself is fine

    approve(ledger)
    approved = checker.check(rollout(), target_step=3, now=WEDNESDAY)
    assert approved.open, approved.reason
    frozen = checker.check(rollout(), target_step=3, now=FRIDAY_EVENING)
    assert not frozen.open
    assert "change-window" in frozen.reason
    decisions = {d["gate"]: d for d in frozen.evidence["decisions"]}
    assert decisions[SERVICENOW_CHANGE]["evidence"]["change_request"] == "CHG0031337"
    for item in closables:
        item.close()  # type: ignore[attr-defined]


def test_the_change_request_must_name_the_rollouts_model_version(
    tmp_path: Path, snow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker, ledger, closables = configured_checker(tmp_path, snow, monkeypatch)
    approve(ledger)  # the manual approval is in place: only the version decides
    assert checker.check(rollout("17"), target_step=3, now=WEDNESDAY).open

    other = checker.check(rollout("18"), target_step=3, now=WEDNESDAY)
    assert not other.open
    assert servicenow_decision(other)["reason"] == (
        "change request CHG0031337 is for version 17, not 18"
    )
    assert other.reason.startswith("servicenow-change: ")
    for item in closables:
        item.close()  # type: ignore[attr-defined]


def test_a_rollout_without_model_version_is_closed_even_if_the_cr_names_its_revision(
    tmp_path: Path, snow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The revision name must never stand in for the registry version, even when a change
    # request happens to carry it.
    snow.tables["change_request"][0]["u_model_version"] = "credit-decision-00008"
    checker, ledger, closables = configured_checker(tmp_path, snow, monkeypatch)
    approve(ledger)
    check = checker.check(rollout(None), target_step=3, now=WEDNESDAY)
    assert not check.open
    expected = (
        "the rollout names no model version; start it with model_version to match change "
        "request field u_model_version"
    )
    assert servicenow_decision(check)["reason"] == expected
    assert check.reason == f"servicenow-change: {expected}"
    for item in closables:
        item.close()  # type: ignore[attr-defined]


def test_a_required_gate_that_is_not_configured_stays_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("CANARY_ANALYZER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CANARY_ANALYZER_DATA_DIR", str(tmp_path))
    settings = load_settings()
    url = settings.effective_database_url()
    command.upgrade(alembic_config(url), "head")
    gates = build_gates(settings, Ledger(make_engine(url)))
    # the gates that read only the ledger need no configuration (shadow: docs/strategies.md)
    assert set(gates) == {MANUAL_APPROVAL, SHADOW}
    check = PolicyGateChecker(settings.gates.policy, gates).check(
        rollout(), target_step=3, now=WEDNESDAY
    )
    assert not check.open
    assert "servicenow-change is required but not configured" in check.reason


def test_model_change_windows_alone_configure_the_change_window_gate(
    tmp_path: Path, sqlite_url: str
) -> None:
    from analyzer.config import Settings

    command.upgrade(alembic_config(sqlite_url), "head")
    settings = Settings.model_validate({"gates": {"model_change_windows": [{
        "models": ["risk-prod/*"],
        "calendar": {"timezone": "Europe/London", "month_end": [{"last_days": 2}]},
    }]}})  # fmt: skip
    gates = build_gates(settings, Ledger(make_engine(sqlite_url)), [])
    checker = PolicyGateChecker(settings.gates.policy, gates)
    month_end = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    hot_path = replace(rollout(), tier=Tier.HOT_PATH)  # its default policy: the window always
    frozen = checker.check(hot_path, target_step=3, now=month_end)
    decisions = {d["gate"]: d for d in frozen.evidence["decisions"]}
    assert decisions[CHANGE_WINDOW]["open"] is False
    assert "month-end close" in decisions[CHANGE_WINDOW]["reason"]
