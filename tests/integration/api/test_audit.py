"""Audit endpoints: serving-at-T, events with filters and cursors, verify, export."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analyzer.domain.events import EventType, LedgerEvent
from tests.integration.api.conftest import T0, TENANT_TOKEN, Harness, model_ref
from tests.integration.rollouts.harness import MODEL as MODEL_REF

pytestmark = pytest.mark.postgres


def _history(api: Harness) -> None:
    """A registration, then two traffic splits ten minutes apart, for risk-prod/fraud."""
    model = model_ref()
    api.ledger.record(
        LedgerEvent(
            type=EventType.REVISION_REGISTERED,
            actor="ci",
            model=model,
            revision="fraud-00002",
            data={
                "artifact_uri": "s3://models/fraud/2",
                "model_version": "17",
                "artifact_digest": "sha256:" + "c0" * 32,
            },
        )
    )
    for weight in (10, 50):
        api.ledger.record(
            LedgerEvent(
                type=EventType.TRAFFIC_CHANGED,
                actor="engine",
                model=model,
                rollout_id="r-1",
                revision="fraud-00002",
                data={
                    "split": [
                        {"revision": "fraud-00001", "weight": 100 - weight},
                        {"revision": "fraud-00002", "weight": weight},
                    ],
                    "step": 0 if weight == 10 else 2,
                },
            )
        )
        api.clock.advance(600)
    api.ledger.record(
        LedgerEvent(
            type=EventType.TRAFFIC_CHANGED,
            actor="engine",
            model=model_ref("analytics", "churn"),
            data={"split": [{"revision": "churn-1", "weight": 100}]},
        )
    )


def test_serving_at_an_instant(api: Harness) -> None:
    _history(api)
    at = (T0 + timedelta(minutes=5)).isoformat()
    response = api.call(
        "GET", "/api/v1/audit/serving", "auditor", params={"model": "risk-prod/fraud", "at": at}
    )
    assert response.status_code == 200
    body = response.json()
    assert {r["revision"]: r["weight"] for r in body["revisions"]} == {
        "fraud-00001": 90.0,
        "fraud-00002": 10.0,
    }
    assert body["revisions"][1]["artifact_uri"] == "s3://models/fraud/2"
    assert body["revisions"][1]["model_version"] == "17"
    assert body["revisions"][1]["artifact_digest"] == "sha256:" + "c0" * 32
    assert body["revisions"][0]["model_version"] is None  # fraud-00001 was never registered
    later = api.call(
        "GET",
        "/api/v1/audit/serving",
        "auditor",
        params={"model": "risk-prod/fraud", "at": (T0 + timedelta(minutes=15)).isoformat()},
    ).json()
    assert {r["revision"]: r["weight"] for r in later["revisions"]}["fraud-00002"] == 50.0


def test_serving_names_the_promotion_that_made_the_baseline_stable(api: Harness) -> None:
    _history(api)
    model = model_ref()
    promoted = api.ledger.record(
        LedgerEvent(type=EventType.ROLLOUT_PROMOTED, actor="engine", model=model,
                    rollout_id="r-1", revision="fraud-00002", data={"reason": "all steps"})
    )  # fmt: skip
    api.clock.advance(60)
    api.ledger.record(
        LedgerEvent(
            type=EventType.TRAFFIC_CHANGED, actor="engine", model=model, rollout_id="r-2",
            revision="fraud-00003",
            data={"split": [{"revision": "fraud-00002", "weight": 90},
                            {"revision": "fraud-00003", "weight": 10}], "step": 0},
        )
    )  # fmt: skip
    body = api.call(
        "GET", "/api/v1/audit/serving", "auditor",
        params={"model": "risk-prod/fraud", "at": api.clock().isoformat()},
    ).json()  # fmt: skip
    assert [e["seq"] for e in body["promotions"]] == [promoted.seq]
    assert body["promotions"][0]["revision"] == "fraud-00002"
    before = api.call(
        "GET", "/api/v1/audit/serving", "auditor",
        params={"model": "risk-prod/fraud", "at": (T0 + timedelta(minutes=5)).isoformat()},
    ).json()  # fmt: skip
    assert before["promotions"] == []  # not yet promoted then


def test_serving_needs_a_time_zone_and_a_model(api: Harness) -> None:
    naive = api.call(
        "GET",
        "/api/v1/audit/serving",
        "auditor",
        params={"model": "risk-prod/fraud", "at": "2026-11-27T03:00:00"},
    )
    assert naive.status_code == 422
    assert naive.json()["error"]["field"] == "at"
    bad_model = api.call(
        "GET", "/api/v1/audit/serving", "auditor", params={"model": "fraud", "at": T0.isoformat()}
    )
    assert bad_model.status_code == 422
    assert "NAMESPACE/NAME" in bad_model.json()["error"]["message"]


def test_events_filters_and_cursor_paging(api: Harness) -> None:
    _history(api)
    params = {"model": "risk-prod/fraud", "limit": 2}
    first = api.call("GET", "/api/v1/audit/events", "auditor", params=params).json()
    assert len(first["entries"]) == 2
    assert first["next_cursor"]
    second = api.call(
        "GET", "/api/v1/audit/events", "auditor", params={**params, "cursor": first["next_cursor"]}
    ).json()
    assert [e["seq"] for e in second["entries"]] == [3]
    assert second["next_cursor"] is None
    typed = api.call(
        "GET", "/api/v1/audit/events", "auditor", params={"type": "traffic_changed"}
    ).json()
    assert len(typed["entries"]) == 3
    since = api.call(
        "GET",
        "/api/v1/audit/events",
        "auditor",
        params={"since": (T0 + timedelta(minutes=5)).isoformat()},
    ).json()
    assert [e["seq"] for e in since["entries"]] == [3, 4]
    bad = api.call("GET", "/api/v1/audit/events", "auditor", params={"cursor": "garbage!"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "cursor"


def test_verify_reports_an_intact_chain(api: Harness) -> None:
    _history(api)
    body = api.call("GET", "/api/v1/audit/verify", "auditor").json()
    assert body["intact"] is True
    assert (body["entries"], body["head_seq"]) == (4, 4)


def test_export_json_and_csv(api: Harness) -> None:
    _history(api)
    as_json = api.call("GET", "/api/v1/audit/export", "auditor", params={"format": "json"})
    assert as_json.status_code == 200
    entries = json.loads(as_json.text)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[0]["data"]["artifact_uri"] == "s3://models/fraud/2"
    as_csv = api.call(
        "GET",
        "/api/v1/audit/export",
        "auditor",
        params={"format": "csv", "model": "risk-prod/fraud"},
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["seq"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["hash"] == entries[0]["hash"]
    empty = api.call("GET", "/api/v1/audit/export", "auditor", params={"format": "xml"})
    assert empty.status_code == 422


def test_tenant_scoped_auditor_must_name_a_model_in_its_namespaces(api: Harness) -> None:
    _history(api)
    headers = {"Authorization": f"Bearer {TENANT_TOKEN}"}
    unscoped = api.call("GET", "/api/v1/audit/events", None, headers=headers)
    assert unscoped.status_code == 403
    other = api.call(
        "GET", "/api/v1/audit/events", None, headers=headers, params={"model": "analytics/churn"}
    )
    assert other.status_code == 403
    mine = api.call(
        "GET", "/api/v1/audit/events", None, headers=headers, params={"model": "risk-prod/fraud"}
    )
    assert mine.status_code == 200
    assert {e["model"] for e in mine.json()["entries"]} == {"risk-prod/fraud"}
    serving = api.call(
        "GET",
        "/api/v1/audit/serving",
        None,
        headers=headers,
        params={"model": "analytics/churn", "at": T0.isoformat()},
    )
    assert serving.status_code == 403


def test_serving_never_names_a_shadow_challenger_and_reports_its_mirror(
    api: Harness, pg_engine: Engine
) -> None:
    from analyzer.domain.model import Tier
    from analyzer.domain.verdict import Verdict
    from tests.integration.rollouts.harness import T0 as RIG_T0
    from tests.integration.rollouts.harness import Rig
    from tests.integration.rollouts.test_strategies import SHADOW

    rig = Rig(pg_engine, lambda r: Verdict.PASS, mirror=True)
    rig.target.add_model(MODEL_REF, stable_revision="fraud-00001", canary_revision="fraud-00002")
    rig.start(plan=SHADOW, tier=Tier.REGULATED, model_version="18")
    rig.run(minutes=5)  # mirror from minute 0, removed at minute 3 (shadow passed)

    def at(minutes: float) -> dict[str, object]:
        moment = (RIG_T0 + timedelta(minutes=minutes)).isoformat()
        response = api.call("GET", "/api/v1/audit/serving", "auditor",
                            params={"model": str(MODEL_REF), "at": moment})  # fmt: skip
        assert response.status_code == 200, response.text
        return dict(response.json())

    during = at(1.5)
    assert during["revisions"] == []  # nothing of this rollout served: no traffic entry at all
    (mirror,) = during["mirrored"]
    assert (mirror["revision"], mirror["percent"], mirror["served"]) == ("fraud-00002", 50.0, False)
    assert mirror["entry"]["event_type"] == "mirror_changed"
    assert at(-1)["mirrored"] == []
    assert at(4)["mirrored"] == []  # torn down when the shadow run passed
