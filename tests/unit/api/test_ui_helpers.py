"""The pure parts of the web pages: entry summaries, evidence extraction, redirects, times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from analyzer.api.ui.forms import parse_event_types, parse_instant
from analyzer.api.ui.security import safe_next
from analyzer.api.ui.summaries import (
    SUMMARIZED_TYPES,
    analysis_view,
    approvers,
    change_requests,
    gate_view,
    split_text,
    summarize,
    summary_of,
)
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.ledger.chain import GENESIS_HASH, build_entry

MODEL = ModelRef(namespace="risk-prod", name="fraud-scorer")
ENGINE_GATE_CHECK = {
    "target_step": 3,
    "open": True,
    "reason": "all 2 required gates open",
    "evidence": {
        "open": True,
        "reason": "all 2 required gates open",
        "required": ["servicenow-change", "manual-approval"],
        "decisions": [
            {
                "gate": "servicenow-change",
                "open": True,
                "reason": "CHG0031337 approved",
                "evidence": {"change_request": "CHG0031337", "approvers": ["carol.cab"]},
            },
            {
                "gate": "manual-approval",
                "open": True,
                "reason": "approved by bob",
                "evidence": {"approvers": ["bob"], "approvals": [{"approver": "bob"}]},
            },
        ],
    },
}
FLAGGER_GATE_CHECK = {
    "source": "flagger",
    "phase": "Promoting",
    "open": False,
    "reason": "1 of 2 gates closed",
    "required": ["servicenow-change"],
    "decisions": [
        {
            "gate": "servicenow-change",
            "open": False,
            "reason": "CHG1 is not approved",
            "evidence": {"change_request": "CHG1"},
        },
    ],
}


def entry(kind: EventType, data: dict[str, object]) -> object:
    event = LedgerEvent(type=kind, actor="someone", model=MODEL, data=data)
    return build_entry(
        prev_seq=0,
        prev_hash=GENESIS_HASH,
        event=event,
        recorded_at=datetime(2026, 3, 4, tzinfo=UTC),
    )


def test_gate_view_reads_the_engines_nested_evaluation() -> None:
    view = gate_view(ENGINE_GATE_CHECK)
    assert view.open
    assert view.target_step == 3
    assert [(g.gate, g.open) for g in view.gates] == [
        ("servicenow-change", True),
        ("manual-approval", True),
    ]
    assert view.gates[0].change_requests == ("CHG0031337",)
    assert view.gates[1].approvers == ("bob",)


def test_gate_view_reads_flaggers_top_level_evaluation() -> None:
    view = gate_view(FLAGGER_GATE_CHECK)
    assert not view.open
    assert view.target_step is None
    assert view.gates[0].change_requests == ("CHG1",)


def test_change_requests_and_approvers_are_found_at_any_depth_once_each() -> None:
    doubled = {"a": ENGINE_GATE_CHECK, "b": [ENGINE_GATE_CHECK], "change_request": 42}
    assert change_requests(doubled) == ("CHG0031337",)  # a number is not a CR number
    assert approvers(ENGINE_GATE_CHECK) == ("carol.cab", "bob")
    assert change_requests(None) == ()
    assert approvers("text") == ()


def test_analysis_view_reads_engine_argo_fresh_and_argo_cached_entries() -> None:
    result = {
        "verdict": "fail",
        "score": 12.5,
        "reason": "errors up",
        "metrics": [
            {"name": "errors", "kind": "proportion", "verdict": "fail", "reason": "2 % vs 0.4 %"},
            "not a metric",
        ],
    }
    engine = analysis_view({"step": 1, "weight": 25, "result": result})
    assert engine is not None
    assert (engine.verdict, engine.score, engine.cached) == ("fail", 12.5, False)
    assert [(m.name, m.verdict) for m in engine.metrics] == [("errors", "fail")]
    cached = analysis_view({"cached": True, "verdict": "pass", "look": 3})
    assert cached is not None
    assert cached.cached
    assert cached.score is None
    assert analysis_view({"nothing": "here"}) is None


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        (
            EventType.TRAFFIC_CHANGED,
            {
                "split": [{"revision": "a", "weight": 90}, {"revision": "b", "weight": 10}],
                "cause": "step 0",
            },
            "traffic now a 90 %, b 10 % (step 0)",
        ),
        (
            EventType.ANALYSIS_RECORDED,
            {"result": {"verdict": "pass", "score": 100, "reason": "ok"}},
            "verdict pass, score 100: ok",
        ),
        (
            EventType.GATE_CHECKED,
            ENGINE_GATE_CHECK,
            "gates open [CHG0031337]: all 2 required gates open",
        ),
        (
            EventType.APPROVAL_GIVEN,
            {"step": 3, "comment": "fine", "change_request": "CHG7"},
            "approved step 3 under CHG7: fine",
        ),
        (EventType.ROLLOUT_ABORTED, {"reason": "p99 regression"}, "aborted: p99 regression"),
        (EventType.ROLLOUT_PROMOTED, {}, "promoted"),
        (
            EventType.TARGET_ERROR,
            {"operation": "abort", "error": "409"},
            "target error during abort: 409",
        ),
        (
            EventType.REVISION_REGISTERED,
            {
                "artifact_uri": "s3://models/fraud/17",
                "model_version": "17",
                "artifact_digest": "sha256:" + "ab" * 32,
            },
            "revision registered, model version 17, artifact s3://models/fraud/17, digest sha256:"
            + "ab" * 32,
        ),
        (EventType.REVISION_REGISTERED, {}, "revision registered"),
        (
            EventType.REVISION_REGISTERED,
            {
                "artifact_uri": "models:/fraud/2",
                "model_version": "2",
                "registry": {"requested_uri": "models:/fraud@candidate", "run_id": "r2"},
            },
            "revision registered, model version 2, artifact models:/fraud/2, resolved from "
            "models:/fraud@candidate (run r2)",
        ),
        (
            EventType.ALIAS_MOVED,
            {
                "registered_model": "fraud",
                "alias": "champion",
                "version": "2",
                "previous_version": "1",
                "moved": True,
            },
            "registry alias champion of fraud moved to version 2 (was 1)",
        ),
        (
            EventType.ALIAS_MOVED,
            {"registered_model": "fraud", "alias": "challenger", "version": "2", "moved": False},
            "registry alias challenger of fraud already on version 2",
        ),
        (
            EventType.REGISTRY_ERROR,
            {"alias": "champion", "error": "MLflow could not be reached (ConnectError)"},
            "registry refused moving alias champion, rollout held: MLflow could not be reached "
            "(ConnectError)",
        ),
        (
            EventType.ROLLOUT_STARTED,
            {
                "canary_revision": "fraud-00002",
                "baseline_revision": "fraud-00001",
                "model_version": "3.2.1",
                "tier": "regulated",
                "profile": "fraud",
                "change_request": "CHG7",
            },
            "canary fraud-00002 (model version 3.2.1) over fraud-00001, tier regulated, "
            "profile fraud, change request CHG7",
        ),
        (EventType.ROLLOUT_PAUSED, {"reason": 5}, "paused: 5"),
        (
            EventType.EVALUATION_RECORDED,
            {"suite": "golden-set", "passed": True, "model_version": "17", "metrics": {"auc": 1}},
            "evaluation golden-set passed for model version 17",
        ),
        (
            EventType.EVALUATION_RECORDED,
            {"suite": "load-test", "passed": False, "artifact_digest": "sha256:" + "ab" * 32},
            "evaluation load-test failed, digest sha256:" + "ab" * 32,
        ),
        (EventType.EVALUATION_RECORDED, {"passed": ["x"]}, "evaluation ? result unknown"),
        (EventType.TRAFFIC_CHANGED, {"split": "garbage"}, "traffic now no split recorded"),
        (
            EventType.TRAFFIC_CHANGE_REQUESTED,
            {"move": {"kind": "step", "weight": 25}, "reason": "step 0 passed"},
            "move to 25 % canary requested (not yet confirmed by the target): step 0 passed",
        ),
        (
            EventType.TRAFFIC_CHANGE_REQUESTED,
            {"move": {"kind": "promote", "weight": 100}},
            "promotion to 100 % canary requested (not yet confirmed by the target)",
        ),
        (
            EventType.WEBHOOK_ANSWERED,
            {"source": "flagger", "hook": "rollback", "status_code": 200, "answer": "roll back"},
            "flagger rollback answered 200: roll back",
        ),
        (EventType.WEBHOOK_ANSWERED, {}, "webhook ? answered ?: "),
        (
            EventType.MIRROR_CHANGED,
            {
                "mirror_percent": 50,
                "mirrored_revision": "credit-00002",
                "cause": "step 0",
                "split": [{"revision": "credit-00001", "weight": 100}],
            },
            "mirror 50 % of requests to credit-00002 (answers discarded, never served); "
            "traffic credit-00001 100 % (step 0)",
        ),
        (
            EventType.MIRROR_CHANGED,
            {"mirror_percent": 0, "split": [{"revision": "credit-00001", "weight": 100}]},
            "mirror removed; traffic credit-00001 100 %",
        ),
        (
            EventType.SHADOW_JUDGED,
            {"verdict": "passed", "model_version": "18", "reason": "shadow window passed"},
            "shadow passed for model version 18: shadow window passed",
        ),
        (
            EventType.ROLLOUT_STARTED,
            {
                "strategy": "blue_green",
                "canary_revision": "b-2",
                "baseline_revision": "b-1",
                "tier": "standard",
                "profile": "p",
            },
            "blue/green b-2 over b-1, tier standard, profile p",
        ),
        (
            EventType.TRAFFIC_CHANGE_REQUESTED,
            {"move": "garbage"},
            "move to an unknown weight requested (not yet confirmed by the target)",
        ),
        (
            EventType.FLEET_ROLLOUT_STARTED,
            {"fleet": "merchants/anomaly", "waves": [["m1"], ["m2", "m3"], ["m4", "m5", "m6"]]},
            "fleet rollout of merchants/anomaly started, models per wave 1 → 2 → 3",
        ),
        (
            EventType.FLEET_WAVE_JUDGED,
            {"wave": 1, "verdict": "continue", "reason": "no harm yet", "rollbacks": ["m2"]},
            "wave 2: continue (no harm yet), rolled back m2",
        ),
        (EventType.FLEET_WAVE_JUDGED, {"rollbacks": "garbage"}, "wave ?: ?"),
        (
            EventType.FLEET_ROLLOUT_CHANGED,
            {"from": "running", "to": "held", "reason": "wave deadline"},
            "fleet rollout running → held: wave deadline",
        ),
    ],
)
def test_summaries_say_what_an_entry_records(
    kind: EventType, data: dict[str, object], expected: str
) -> None:
    assert summarize(entry(kind, data)) == expected  # type: ignore[arg-type]


def test_every_event_type_has_its_own_summary() -> None:
    # The vocabulary is closed: a new event type needs a line saying what it records, not the
    # fallback that only repeats the type's name.
    assert {t.value for t in EventType} == SUMMARIZED_TYPES


def test_split_text_shows_zero_weights() -> None:
    split = {"split": [{"revision": "a", "weight": 100}, {"revision": "b", "weight": 0}]}
    assert split_text(split) == "a 100 %, b 0 %"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/events?model=a/b&type=x", "/ui/events?model=a/b&type=x"),
        ("/ui/", "/ui/"),
        ("/ui", "/ui"),
        (None, "/ui/"),
        ("", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui\\@evil.example", "/ui/"),
        ("/uievil", "/ui/"),
        ("/api/v1/audit/export", "/ui/"),
        ("/ui/\r\nSet-Cookie: x=1", "/ui/"),
        ("javascript:alert(1)", "/ui/"),
    ],
)
def test_safe_next_only_returns_paths_under_ui(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_parse_instant_needs_iso_8601_with_a_zone() -> None:
    assert parse_instant("2026-03-04T02:13:00Z", "at") == datetime(2026, 3, 4, 2, 13, tzinfo=UTC)
    cet = parse_instant(" 2026-03-04T03:13:00+01:00 ", "at")
    assert cet == datetime(2026, 3, 4, 3, 13, tzinfo=timezone(timedelta(hours=1)))
    assert parse_instant("", "at") is None
    assert parse_instant(None, "at") is None
    with pytest.raises(InvalidInputError, match="at: needs a time zone"):
        parse_instant("2026-03-04T02:13:00", "at")
    with pytest.raises(InvalidInputError, match="since: '4 March' is not an ISO 8601 time"):
        parse_instant("4 March", "since")


def test_event_types_are_the_closed_vocabulary() -> None:
    assert parse_event_types(["traffic_changed"]) == (EventType.TRAFFIC_CHANGED,)
    assert parse_event_types(None) == ()
    with pytest.raises(InvalidInputError, match="unknown event type 'drop_table'"):
        parse_event_types(["drop_table"])


def test_a_fleets_whole_model_move_reads_as_a_sentence() -> None:
    asked = {"to": "v2", "artifact_uri": "s3://m/a/v2", "wave": 0, "reason": "wave 1"}
    assert summary_of("traffic_change_requested", asked) == (
        "move to v2 (s3://m/a/v2) requested (not yet confirmed by the target): wave 1"
    )
