"""The ServiceNow change gate against a fake Table API over HTTP on 127.0.0.1.

One test per reason the gate closes, plus the open path with basic auth and both OAuth2 grants.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from gates.base import GateDecision
from gates.servicenow import (
    BasicCredentials,
    OAuth2Credentials,
    ServiceNowChangeGate,
    ServiceNowGateConfig,
    ServiceNowTableClient,
    read_secret_file,
)
from gates.servicenow.auth import Credentials
from tests.fakes.servicenow import Choice, DateTime, FakeServiceNow, Fault, Ref, error_body
from tests.unit.gates.helpers import context

NUMBER = "CHG0031337"
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
BASIC = BasicCredentials(username="gate.bot", password=SecretStr("bot-password"))


def add_change(fake: FakeServiceNow, **overrides: object) -> str:
    fields: dict[str, object] = {
        "number": NUMBER,
        "state": Choice("-1", "Implement"),
        "approval": Choice("approved", "Approved"),
        "start_date": DateTime("2026-11-25 13:00:00"),
        "end_date": DateTime("2026-11-25 17:00:00"),
        "cmdb_ci": Ref("cmdb_ci_appl", "a" * 32, "pd-scorer"),
        "u_model_version": "3.2.0",
        "short_description": "Promote pd-scorer 3.2.0",
    }
    fields.update(overrides)
    sys_id = fake.add_record("change_request", **fields)  # type: ignore[arg-type]
    fake.add_record(
        "sysapproval_approver",
        sysapproval=Ref("change_request", sys_id, NUMBER),
        approver=Ref("sys_user", "b" * 32, "Maria Risk-Owner"),
        state=Choice("approved", "Approved"),
        sys_updated_on=DateTime("2026-11-24 09:00:00"),
    )
    return sys_id


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    with FakeServiceNow() as instance:
        instance.add_table("change_request")
        instance.add_table("sysapproval_approver")
        yield instance


def check(
    fake: FakeServiceNow,
    *,
    credentials: Credentials = BASIC,
    config: ServiceNowGateConfig | None = None,
    timeout: float = 2.0,
    **ctx: object,
) -> GateDecision:
    with ServiceNowTableClient(fake.url, credentials, timeout_seconds=timeout) as client:
        gate = ServiceNowChangeGate(client, config)
        return gate.check(context(now=NOW, **ctx))


# -- open -------------------------------------------------------------------------------------
def test_approved_change_in_its_window_opens_with_evidence(fake: FakeServiceNow) -> None:
    sys_id = add_change(fake)
    decision = check(fake)
    assert decision.open, decision.reason
    assert decision.evidence == {
        "change_request": NUMBER,
        "sys_id": sys_id,
        "state": "-1",
        "state_display": "Implement",
        "approval": "approved",
        "planned_start": "2026-11-25 13:00:00",
        "planned_end": "2026-11-25 17:00:00",
        "cmdb_ci": "pd-scorer",
        "u_model_version": "3.2.0",
        "approvers": ["Maria Risk-Owner"],
        "approver_records": [
            {"name": "Maria Risk-Owner", "sys_id": "b" * 32, "approved_at": "2026-11-24 09:00:00"}
        ],
    }


def test_gate_sends_the_table_api_query_it_documents(fake: FakeServiceNow) -> None:
    sys_id = add_change(fake)
    check(fake)
    change, approvers = fake.table_requests()
    assert change.path == "/api/now/table/change_request"
    assert change.params["sysparm_query"] == f"number={NUMBER}"
    assert change.params["sysparm_limit"] == "2"
    assert change.params["sysparm_display_value"] == "all"
    assert set(change.params["sysparm_fields"].split(",")) >= {"state", "approval", "start_date"}
    assert change.auth_scheme == "Basic"
    assert approvers.path == "/api/now/table/sysapproval_approver"
    assert approvers.params["sysparm_query"] == f"sysapproval={sys_id}^state=approved"


def test_oauth_password_grant_opens(fake: FakeServiceNow) -> None:
    add_change(fake)
    credentials = OAuth2Credentials(
        client_id="canary-gate",
        client_secret=SecretStr("client-secret"),
        username="gate.bot",
        password=SecretStr("bot-password"),
    )
    decision = check(fake, credentials=credentials)
    assert decision.open, decision.reason
    assert fake.requests[0].path == "/oauth_token.do"
    assert {r.auth_scheme for r in fake.table_requests()} == {"Bearer"}


def test_oauth_client_credentials_token_is_refreshed_once_after_a_401(
    fake: FakeServiceNow,
) -> None:
    add_change(fake)
    credentials = OAuth2Credentials(
        client_id="canary-gate", client_secret=SecretStr("client-secret")
    )
    with ServiceNowTableClient(fake.url, credentials, timeout_seconds=2.0) as client:
        gate = ServiceNowChangeGate(client)
        assert gate.check(context(now=NOW)).open
        fake.revoke_tokens()  # as when a token expires between ticks
        decision = gate.check(context(now=NOW))
    assert decision.open, decision.reason
    assert sum(r.path == "/oauth_token.do" for r in fake.requests) == 2


def test_credentials_from_mounted_files_and_never_in_decisions(
    fake: FakeServiceNow, tmp_path: pytest.TempPathFactory
) -> None:
    add_change(fake)
    secret = tmp_path / "password"  # type: ignore[operator]
    secret.write_text("bot-password\n")
    credentials = BasicCredentials(username="gate.bot", password=read_secret_file(secret))
    decision = check(fake, credentials=credentials)
    assert decision.open
    assert "bot-password" not in repr(credentials)
    assert "bot-password" not in json.dumps(decision.to_json())


def test_display_values_in_the_users_time_zone_are_not_mistaken_for_utc(
    fake: FakeServiceNow,
) -> None:
    # The fake shows dates in America/Los_Angeles (UTC-8) like a real instance would for that
    # user; read as UTC, 05:00-09:00 would not contain 14:00. The gate must read the values.
    add_change(fake)
    decision = check(fake)
    assert decision.open
    assert decision.evidence["planned_start"] == "2026-11-25 13:00:00"


# -- closed: transport, auth, format ----------------------------------------------------------
def test_timeout_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.inject(Fault(delay_seconds=1.0))
    decision = check(fake, timeout=0.2)
    assert not decision.open
    assert "did not answer within 0.2 s" in decision.reason
    assert decision.evidence["error"] == "ServiceNowTimeoutError"


def test_the_fake_stopped_under_a_delayed_request_ends_it_quietly(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The race behind a CI traceback ("start() the fake first" after test_timeout_closes):
    the client gives up, the fixture stops the fake, and the handler thread, still sleeping
    out its injected delay, later rendered the change's reference links through ``fake.url``.
    Here the fake is stopped right after the timeout and the handler's delay allowed to pass."""
    import time

    fake = FakeServiceNow().start()
    add_change(fake)
    fake.inject(Fault(delay_seconds=0.6))
    decision = check(fake, timeout=0.1)
    assert decision.evidence["error"] == "ServiceNowTimeoutError"
    stopped_at = time.monotonic()
    fake.stop()
    assert time.monotonic() - stopped_at < 0.5  # stop does not wait out the delay either
    time.sleep(0.9)  # past the delay: where the handler thread used to fail
    printed = capfd.readouterr().err
    assert "start() the fake first" not in printed
    assert "Traceback" not in printed
    assert fake.errors == []


def test_a_client_that_hangs_up_is_not_an_error_of_the_fake(
    fake: FakeServiceNow, capfd: pytest.CaptureFixture[str]
) -> None:
    import time

    add_change(fake)
    fake.inject(Fault(delay_seconds=0.3))
    assert not check(fake, timeout=0.05).open  # the client closes its connection
    time.sleep(0.5)  # the fake then answers into the closed connection
    assert "Traceback" not in capfd.readouterr().err
    assert fake.errors == []
    assert check(fake).open  # and goes on serving


def test_server_error_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.inject(Fault(status=503))
    decision = check(fake)
    assert not decision.open
    assert "ServiceNow answered 503" in decision.reason
    assert decision.evidence["error"] == "ServiceNowUnavailableError"


def test_wrong_password_closes_with_401(fake: FakeServiceNow) -> None:
    add_change(fake)
    wrong = BasicCredentials(username="gate.bot", password=SecretStr("guess"))
    decision = check(fake, credentials=wrong)
    assert not decision.open
    assert "refused the credentials (401: User Not Authenticated)" in decision.reason
    assert "guess" not in json.dumps(decision.to_json())


def test_injected_401_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.inject(
        Fault(status=401, body=json.dumps(error_body("User Not Authenticated", "Required")))
    )
    decision = check(fake)
    assert not decision.open
    assert decision.evidence["error"] == "ServiceNowAuthError"


def test_refused_oauth_client_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    wrong = OAuth2Credentials(client_id="canary-gate", client_secret=SecretStr("nope"))
    decision = check(fake, credentials=wrong)
    assert not decision.open
    assert "refused the OAuth2 credentials (401)" in decision.reason


def test_hibernating_instance_html_page_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.inject(
        Fault(status=200, body="<html>Instance hibernating</html>", content_type="text/html")
    )
    decision = check(fake)
    assert not decision.open
    assert "not JSON" in decision.reason
    assert decision.evidence["error"] == "ServiceNowMalformedResponseError"


def test_truncated_json_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.inject(Fault(status=200, body='{"result": [{"number": "CHG'))
    decision = check(fake)
    assert not decision.open
    assert "not JSON" in decision.reason


def test_json_without_the_envelope_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.inject(Fault(status=200, body='{"records": []}'))
    decision = check(fake)
    assert not decision.open
    assert "envelope" in decision.reason


# -- closed: the record -----------------------------------------------------------------------
def test_missing_change_request_closes(fake: FakeServiceNow) -> None:
    add_change(fake, number="CHG0000001")
    decision = check(fake)
    assert not decision.open
    assert decision.reason == f"change request {NUMBER} was not found in ServiceNow"


def test_v1_style_404_no_record_found_closes_as_not_found(fake: FakeServiceNow) -> None:
    fake.inject(Fault(status=404, body=json.dumps(error_body("No Record found", "ACL"))))
    decision = check(fake)
    assert not decision.open
    assert "was not found" in decision.reason


def test_duplicate_numbers_close(fake: FakeServiceNow) -> None:
    add_change(fake)
    add_change(fake)
    decision = check(fake)
    assert not decision.open
    assert "more than one record" in decision.reason


def test_not_approved_closes(fake: FakeServiceNow) -> None:
    add_change(fake, approval=Choice("requested", "Requested"))
    decision = check(fake)
    assert not decision.open
    assert "is not approved (approval: Requested)" in decision.reason
    assert decision.evidence["approval"] == "requested"


def test_wrong_state_closes(fake: FakeServiceNow) -> None:
    add_change(fake, state=Choice("-3", "Authorize"))
    decision = check(fake)
    assert not decision.open
    assert "in state Authorize (-3), not an implementable state (-1, -2)" in decision.reason


def test_implementable_states_are_configurable(fake: FakeServiceNow) -> None:
    add_change(fake, state=Choice("-3", "Authorize"))
    config = ServiceNowGateConfig(implementable_states=frozenset({"-3"}))
    assert check(fake, config=config).open


def test_before_the_window_closes(fake: FakeServiceNow) -> None:
    add_change(fake, start_date=DateTime("2026-11-25 15:00:00"))
    decision = check(fake)
    assert not decision.open
    assert "opens at 2026-11-25 15:00 UTC" in decision.reason


def test_after_the_window_closes(fake: FakeServiceNow) -> None:
    add_change(fake, end_date=DateTime("2026-11-25 14:00:00"))  # end is exclusive
    decision = check(fake)
    assert not decision.open
    assert "closed at 2026-11-25 14:00 UTC" in decision.reason


def test_missing_window_closes(fake: FakeServiceNow) -> None:
    add_change(fake, end_date=DateTime(""))
    decision = check(fake)
    assert not decision.open
    assert "no planned start and end date" in decision.reason


def test_wrong_model_closes(fake: FakeServiceNow) -> None:
    add_change(fake, cmdb_ci=Ref("cmdb_ci_appl", "c" * 32, "fraud-scorer"))
    decision = check(fake)
    assert not decision.open
    assert "is for fraud-scorer (cmdb_ci), not model pd-scorer" in decision.reason


def test_wrong_version_closes(fake: FakeServiceNow) -> None:
    add_change(fake, u_model_version="3.1.9")
    decision = check(fake)
    assert not decision.open
    assert "is for version 3.1.9, not 3.2.0" in decision.reason


def test_rollout_without_version_closes_when_a_version_field_is_configured(
    fake: FakeServiceNow,
) -> None:
    add_change(fake)
    decision = check(fake, canary_version=None)
    assert not decision.open
    assert decision.reason == (
        "the rollout names no model version; start it with model_version to match change "
        "request field u_model_version"
    )
    renamed = ServiceNowGateConfig(version_field="u_registry_version")
    decision = check(fake, config=renamed, canary_version=None)
    assert not decision.open
    assert decision.reason.endswith("change request field u_registry_version")


def test_model_template_and_fields_are_configurable(fake: FakeServiceNow) -> None:
    add_change(fake, u_model="credit/pd-scorer")
    config = ServiceNowGateConfig(
        model_field="u_model", model_template="{model}", version_field=None
    )
    assert check(fake, config=config, canary_version=None).open


def test_no_approver_on_record_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.tables["sysapproval_approver"].clear()
    decision = check(fake)
    assert not decision.open
    assert "no approver is on record" in decision.reason


def test_approver_from_a_configured_field(fake: FakeServiceNow) -> None:
    add_change(fake, u_model_risk_owner=Ref("sys_user", "d" * 32, "Maria Risk-Owner"))
    fake.tables["sysapproval_approver"].clear()
    config = ServiceNowGateConfig(approvers_from="field", approver_field="u_model_risk_owner")
    decision = check(fake, config=config)
    assert decision.open, decision.reason
    assert decision.evidence["approvers"] == ["Maria Risk-Owner"]


def test_rollout_without_change_request_closes_without_calling(fake: FakeServiceNow) -> None:
    decision = check(fake, change_request=None)
    assert not decision.open
    assert decision.reason == "the rollout names no change request"
    assert fake.requests == []


def test_query_injection_in_the_number_is_refused(fake: FakeServiceNow) -> None:
    add_change(fake)
    decision = check(fake, change_request="CHG0031337^ORnumber!=x")
    assert not decision.open
    assert "is not a change request number" in decision.reason
    assert fake.requests == []


def test_ignored_query_part_returning_another_change_closes(fake: FakeServiceNow) -> None:
    # ServiceNow ignores a condition on a field it does not know and returns other rows; the
    # fake does the same. A table without a "number" field therefore answers with whatever it
    # has, and the gate must notice that the number it got back is not the one it asked for.
    fake.add_record(
        "change_request",
        u_number=NUMBER,
        state=Choice("-1", "Implement"),
        approval=Choice("approved", "Approved"),
    )
    decision = check(fake)
    assert not decision.open
    assert "returned change (no number)" in decision.reason


def test_refused_connection_closes() -> None:
    with FakeServiceNow() as stopped:
        url = stopped.url
    with ServiceNowTableClient(url, BASIC, timeout_seconds=1.0) as client:
        decision = ServiceNowChangeGate(client).check(context(now=NOW))
    assert not decision.open
    assert "could not be reached (ConnectError)" in decision.reason


def test_redirect_to_a_login_page_is_not_followed_and_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    fake.inject(Fault(status=302, body=""))
    decision = check(fake)
    assert not decision.open
    assert "answered 302, expected 200" in decision.reason


def test_unexpected_error_in_the_reader_closes() -> None:
    class ExplodingReader:
        def query(self, *args: object, **kwargs: object) -> list[dict[str, object]]:
            raise KeyError("surprise")

    decision = ServiceNowChangeGate(ExplodingReader()).check(context(now=NOW))
    assert not decision.open
    assert decision.reason == f"change request {NUMBER} could not be checked (KeyError)"


# -- approver group (a model-risk owner must have signed) -----------------------------------
MRO = ServiceNowGateConfig(approver_group="Model Risk Owners")
MARIA = "b" * 32  # the approver add_change records


def add_groups(fake: FakeServiceNow, *members: str) -> str:
    """'Model Risk Owners' with ``members`` (user sys_ids), and an unrelated group Maria is in."""
    group = fake.add_record("sys_user_group", name="Model Risk Owners")
    other = fake.add_record("sys_user_group", name="CAB")
    fake.add_record(
        "sys_user_grmember", group=Ref("sys_user_group", other, "CAB"),
        user=Ref("sys_user", MARIA, "Maria Risk-Owner"),
    )  # fmt: skip
    for user in members:
        fake.add_record(
            "sys_user_grmember", group=Ref("sys_user_group", group, "Model Risk Owners"),
            user=Ref("sys_user", user, "someone"),
        )  # fmt: skip
    return group


def test_an_approver_in_the_approver_group_opens(fake: FakeServiceNow) -> None:
    add_change(fake)
    group = add_groups(fake, MARIA, "c" * 32)
    decision = check(fake, config=MRO)
    assert decision.open, decision.reason
    assert decision.evidence["approver_group"] == "Model Risk Owners"
    assert decision.evidence["group_approvers"] == ["Maria Risk-Owner"]
    groups, members = fake.table_requests()[2:]
    assert groups.params["sysparm_query"] == "name=Model Risk Owners"
    assert members.path == "/api/now/table/sys_user_grmember"
    assert members.params["sysparm_query"] == f"group={group}^userIN{MARIA}"


def test_approvers_outside_the_group_close_naming_them(fake: FakeServiceNow) -> None:
    add_change(fake)
    add_groups(fake, "c" * 32)  # Maria is only in the CAB group
    decision = check(fake, config=MRO)
    assert not decision.open
    assert decision.reason == (
        f"change request {NUMBER} was approved by Maria Risk-Owner, "
        "none of them in 'Model Risk Owners'"
    )
    assert decision.evidence["group_approvers"] == []


def test_a_group_that_does_not_exist_closes(fake: FakeServiceNow) -> None:
    add_change(fake)
    add_groups(fake, MARIA)
    decision = check(fake, config=ServiceNowGateConfig(approver_group="Model Risk Ownerz"))
    assert not decision.open
    assert "has no group named 'Model Risk Ownerz'" in decision.reason


def test_an_ignored_query_that_returns_every_row_never_counts_other_groups(
    fake: FakeServiceNow,
) -> None:
    # The instance has no 'group' column on its membership table (a customised instance, or a
    # typo): ServiceNow ignores that condition and answers every membership, Maria's CAB one
    # included. Only rows that really name the group may count.
    add_change(fake)
    group = fake.add_record("sys_user_group", name="Model Risk Owners")
    fake.add_record("sys_user_grmember", u_group=Ref("sys_user_group", group, "Model Risk Owners"),
                    user=Ref("sys_user", MARIA, "Maria Risk-Owner"))  # fmt: skip
    decision = check(fake, config=MRO)
    assert not decision.open
    assert "none of them in 'Model Risk Owners'" in decision.reason


def test_an_approver_group_with_a_query_separator_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="no '\\^'"):
        ServiceNowGateConfig(approver_group="Model Risk Owners^ORname!=x")
    with pytest.raises(ValueError, match="needs approvers"):
        ServiceNowGateConfig(approver_group="Model Risk Owners", approvers_from="none")
