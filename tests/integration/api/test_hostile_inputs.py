"""The inputs that answered 500 (or a cut 200) in the adversarial pass of issue 13: now 422.

Each case is sent over real HTTP to the API and to its ``/ui/`` page. Before the fix: dates
whose UTC form leaves the years 1–9999 raised ``OverflowError``; ``rollout=%00`` was a psycopg
``DataError``; an inline profile nested 900 deep a ``RecursionError``; the export answered 200
with a body cut after ``[``.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from analyzer.domain.events import EventType, LedgerEvent
from tests.integration.api.conftest import Harness, analysis_body, model_ref

pytestmark = pytest.mark.postgres

EDGE_INSTANTS = ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00")
MODEL = "risk-prod/fraud"


def _seed(api: Harness, count: int = 3) -> None:
    for index in range(count):
        api.ledger.record(
            LedgerEvent(
                type=EventType.TRAFFIC_CHANGED,
                actor="engine",
                model=model_ref(),
                rollout_id="r-1",
                data={"split": [{"revision": "fraud-00001", "weight": 100}], "step": index},
            )
        )


def _is_json_422(response: httpx.Response, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == 422, response.text[:300]
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "invalid_input"
    if field is not None:
        assert error["field"] == field
    return error


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/audit/events?since={}", "since"),
        ("/api/v1/audit/events?until={}", "until"),
        ("/api/v1/audit/serving?model=" + MODEL + "&at={}", "at"),
        ("/api/v1/audit/export?since={}", "since"),
        ("/api/v1/audit/export?format=csv&until={}", "until"),
    ],
)
def test_api_instants_outside_utc_years_are_422(
    api: Harness, instant: str, path: str, field: str
) -> None:
    _seed(api)
    response = api.call("GET", path.format(quote(instant, safe="")), "auditor")
    error = _is_json_422(response, field)
    assert "1 to 9999" in error["message"]


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
@pytest.mark.parametrize(
    "path",
    [
        "/ui/events?since={}",
        "/ui/events?until={}",
        "/ui/serving?model=" + MODEL + "&at={}",
        "/ui/export?since={}",
    ],
)
def test_ui_instants_outside_utc_years_are_422_pages(api: Harness, instant: str, path: str) -> None:
    _seed(api)
    response = api.call("GET", path.format(quote(instant, safe="")), "auditor")
    assert response.status_code == 422, response.text[:300]
    if path.startswith("/ui/export"):
        assert response.headers["content-type"].startswith("text/html")
    assert "1 to 9999" in response.text or "ISO 8601" in response.text


def test_a_cursor_at_the_calendar_edge_or_beyond_bigint_is_422(api: Harness) -> None:
    for position in (["9999-12-31T23:59:59-01:00", 1], ["2026-01-01T00:00:00+00:00", 2**64]):
        cursor = base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")
        response = api.call("GET", "/api/v1/audit/events", "auditor", params={"cursor": cursor})
        _is_json_422(response, "cursor")


@pytest.mark.parametrize("value", ["\x00", "a\x00b", "\x1b[31m", "x\x7f"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/audit/events?rollout={}",
        "/api/v1/audit/events?model=risk-prod/{}",
        "/api/v1/rollouts/{}",
        "/api/v1/audit/serving?model=risk-prod/fraud{}&at=2026-01-01T00:00:00Z",
    ],
)
def test_control_characters_in_query_and_path_are_422(api: Harness, value: str, path: str) -> None:
    encoded = quote(value, safe="")
    response = api.call("GET", path.format(encoded), "admin")
    error = _is_json_422(response)
    assert "control character" in error["message"]


def test_control_characters_on_ui_pages_are_422_pages(api: Harness) -> None:
    for path in ("/ui/events?rollout=%00", "/ui/events?actor=%01", "/ui/rollouts/%00"):
        response = api.call("GET", path, "admin")
        assert response.status_code == 422, (path, response.text[:300])
        assert response.headers["content-type"].startswith("text/html")
        assert "control character" in response.text


def _nested(depth: int) -> Any:
    value: Any = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


def test_an_inline_profile_nested_900_deep_is_422_not_a_recursion_error(api: Harness) -> None:
    body = json.dumps(analysis_body(profile=_nested(900)))
    response = api.call(
        "POST", "/api/v1/analyses", "analysis", content=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    error = _is_json_422(response, "body")
    assert "deeper than 64" in error["message"]
    arrays = "[" * 5000 + "]" * 5000  # no content type: FastAPI still parses it as JSON
    response = api.call("POST", "/api/v1/rollouts", "operator", content=arrays)
    _is_json_422(response, "body")


def test_nesting_within_the_limit_still_reaches_validation(api: Harness) -> None:
    response = api.call(
        "POST", "/api/v1/analyses", "analysis", json=analysis_body(profile=_nested(40))
    )
    assert response.status_code == 422  # a profile that is not a profile, said by validation
    assert "deeper than" not in response.text


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\udfff", "\\ud800x"])
def test_nul_and_lone_surrogates_in_json_strings_are_422(api: Harness, escape: str) -> None:
    body = json.dumps(analysis_body(canary="CANARY")).replace("CANARY", escape)
    response = api.call(
        "POST", "/api/v1/analyses", "analysis", content=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    _is_json_422(response, "body")


def test_a_valid_surrogate_pair_and_an_escaped_backslash_pass_the_guard(api: Harness) -> None:
    body = json.dumps(analysis_body(rollout="ROLL")).replace("ROLL", "r\\\\u0000-\\ud83d\\ude00")
    response = api.call(
        "POST", "/api/v1/analyses", "analysis", content=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    if response.status_code != 200:  # the schema may refuse the rollout name; not the guard
        assert response.json()["error"]["field"] != "body"


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_refuses_before_the_first_byte_and_otherwise_ends_complete(
    api: Harness, fmt: str
) -> None:
    _seed(api, 5)
    bad = api.call("GET", f"/api/v1/audit/export?format={fmt}&since=banana", "auditor")
    _is_json_422(bad, "since")
    good = api.call("GET", f"/api/v1/audit/export?format={fmt}", "auditor")
    assert good.status_code == 200
    if fmt == "json":
        assert len(json.loads(good.text)) == 5
    else:
        assert len(good.text.strip().splitlines()) == 6


def test_an_export_failing_midway_aborts_the_connection_detectably(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.api import audit_queries

    _seed(api, 5)
    monkeypatch.setattr(audit_queries, "EXPORT_PAGE", 2)
    real = api.ledger.events
    calls = 0

    def failing_second_page(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database went away mid-export")
        return real(**kwargs)

    monkeypatch.setattr(api.ledger, "events", failing_second_page)
    with pytest.raises(httpx.RemoteProtocolError):
        api.call("GET", "/api/v1/audit/export?format=json", "auditor")
    assert calls == 2
