"""The fake ServiceNow speaks the Table API's documented shapes (so gate tests mean something)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.servicenow import Choice, DateTime, FakeServiceNow, Ref

AUTH = ("gate.bot", "bot-password")


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    with FakeServiceNow() as instance:
        instance.add_record(
            "change_request",
            sys_id="1" * 32,
            number="CHG0000001",
            state=Choice("-2", "Scheduled"),
            cmdb_ci=Ref("cmdb_ci_appl", "a" * 32, "pd-scorer"),
            start_date=DateTime("2026-11-25 13:00:00"),
        )
        instance.add_record("change_request", sys_id="2" * 32, number="CHG0000002", state="-1")
        yield instance


def get(fake: FakeServiceNow, path: str, **params: str) -> httpx.Response:
    return httpx.get(fake.url + path, params=params, auth=AUTH, timeout=2.0)


def test_display_value_false_gives_values_and_reference_links(fake: FakeServiceNow) -> None:
    body = get(fake, "/api/now/table/change_request", sysparm_query="number=CHG0000001").json()
    record = body["result"][0]
    assert record["state"] == "-2"
    assert record["start_date"] == "2026-11-25 13:00:00"
    assert record["cmdb_ci"] == {
        "link": f"{fake.url}/api/now/table/cmdb_ci_appl/{'a' * 32}",
        "value": "a" * 32,
    }


def test_display_value_true_gives_labels_and_user_time_zone(fake: FakeServiceNow) -> None:
    record = get(
        fake,
        "/api/now/table/change_request",
        sysparm_query="number=CHG0000001",
        sysparm_display_value="true",
        sysparm_exclude_reference_link="true",
    ).json()["result"][0]
    assert record["state"] == "Scheduled"
    assert record["cmdb_ci"] == "pd-scorer"
    assert record["start_date"] == "11/25/2026 05:00:00 AM"  # America/Los_Angeles


def test_display_value_all_gives_both(fake: FakeServiceNow) -> None:
    record = get(
        fake,
        "/api/now/table/change_request",
        sysparm_query="number=CHG0000001",
        sysparm_display_value="all",
        sysparm_fields="state,cmdb_ci,bogus",
    ).json()["result"][0]
    assert set(record) == {"state", "cmdb_ci"}  # unknown fields are ignored
    assert record["state"] == {"display_value": "Scheduled", "value": "-2"}
    assert record["cmdb_ci"]["display_value"] == "pd-scorer"
    assert record["cmdb_ci"]["value"] == "a" * 32


def test_and_queries_limit_offset_and_total_count(fake: FakeServiceNow) -> None:
    both = get(fake, "/api/now/table/change_request", sysparm_query="numberSTARTSWITHCHG")
    assert len(both.json()["result"]) == 2
    page = get(fake, "/api/now/v2/table/change_request", sysparm_limit="1", sysparm_offset="1")
    assert [r["number"] for r in page.json()["result"]] == ["CHG0000002"]
    assert page.headers["X-Total-Count"] == "2"
    none = get(fake, "/api/now/table/change_request", sysparm_query="number=CHG0000001^state=-1")
    assert none.status_code == 200
    assert none.json() == {"result": []}


def test_unknown_field_in_a_query_is_ignored_like_servicenow(fake: FakeServiceNow) -> None:
    rows = get(fake, "/api/now/table/change_request", sysparm_query="u_typo=x").json()["result"]
    assert len(rows) == 2


def test_record_by_sys_id_and_missing_record(fake: FakeServiceNow) -> None:
    one = get(fake, f"/api/now/table/change_request/{'1' * 32}").json()
    assert one["result"]["number"] == "CHG0000001"
    missing = get(fake, f"/api/now/table/change_request/{'9' * 32}")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No Record found"
    assert missing.json()["status"] == "failure"


def test_errors_use_servicenows_error_body(fake: FakeServiceNow) -> None:
    no_auth = httpx.get(fake.url + "/api/now/table/change_request", timeout=2.0)
    assert no_auth.status_code == 401
    assert no_auth.json() == {
        "error": {
            "message": "User Not Authenticated",
            "detail": "Required to provide Auth information",
        },
        "status": "failure",
    }
    bad_table = get(fake, "/api/now/table/no_such_table")
    assert bad_table.status_code == 400
    assert bad_table.json()["error"]["message"] == "Invalid table no_such_table"


def test_oauth_token_endpoint(fake: FakeServiceNow) -> None:
    form = {"grant_type": "client_credentials", "client_id": "canary-gate"}
    token = httpx.post(fake.url + "/oauth_token.do", data=form | {"client_secret": "client-secret"})
    assert token.json()["token_type"] == "Bearer"
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    ok = httpx.get(fake.url + "/api/now/table/change_request", headers=bearer, timeout=2.0)
    assert ok.status_code == 200
    refused = httpx.post(fake.url + "/oauth_token.do", data=form | {"client_secret": "x"})
    assert refused.status_code == 401
    assert refused.json()["error_description"] == "access_denied"
