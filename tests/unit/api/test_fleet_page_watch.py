"""The fleet page's *The watch* says, for each phase of the watch, what is watched and until when
(the template over ``fleet_json``, on states made by the pure rules of ``progress.py``)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from analyzer.api.fleets import fleet_json
from analyzer.api.ui.rendering import build_templates
from analyzer.domain.fleet import FleetRateQuery, ModelVersion
from analyzer.domain.verdict import Verdict
from analyzer.fleets import progress
from analyzer.fleets.history import fleet_history
from analyzer.fleets.judge import FleetMetric, WaveJudgement
from analyzer.fleets.plan import WaveSpec, cut_waves
from analyzer.fleets.progress import FleetState
from analyzer.fleets.repository import FleetRecord
from analyzer.fleets.spec import FleetMetricSpec, FleetSpec

MODELS = [f"m-{i:03d}" for i in range(40)]
PLAN = tuple(WaveSpec(percent=p, dwell_seconds=600, deadline_seconds=1800) for p in (10, 50, 100))
WAVES = cut_waves("fleet", MODELS, PLAN)
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SPEC = FleetSpec(
    name="anomaly-v2", namespace="merchants", models=tuple(MODELS),
    version=ModelVersion(name="v2", storage_uri="s3://m/{model}/v2"), from_version="v1",
    plan=PLAN, watch_seconds=1800.0,
    metrics=(FleetMetricSpec(
        metric=FleetMetric(name="errors", tolerance=0.01),
        query=FleetRateQuery(name="errors", events='e{namespace="{namespace}"}', total="t"),
    ),),
)  # fmt: skip


def _ended(verdict: Verdict) -> WaveJudgement:
    return WaveJudgement(
        verdict=verdict, reason="r", final=True, rollbacks=(), models=(), pooled={},
        thresholds={},
    )  # fmt: skip


def _after(state: FleetState, *verdicts: Verdict) -> FleetState:
    for k, verdict in enumerate(verdicts):
        now = T0.timestamp() + 900.0 * (k + 1)
        state = progress.after_look(
            state, WAVES, _ended(verdict), now=now, watch_seconds=SPEC.watch_seconds
        ).state
    return state


def _watch_text(state: FleetState, spec: FleetSpec = SPEC) -> str:
    record = FleetRecord(
        id="f-1", spec=spec, state=state, waves=WAVES, old={}, initiator="alice",
        created_at=T0, updated_at=T0, next_look_at=None, version=1,
    )  # fmt: skip
    history = fleet_history(state, WAVES, [], new_version="v2", watch_seconds=spec.watch_seconds)
    html = (
        build_templates()
        .get_template("fleet.html")
        .render(title="t", viewer=None, csrf="", path="/ui/fleets/f-1",
                fleet=fleet_json(record, history), looks=[], rolled_back=[])
    )  # fmt: skip
    found = re.search(r'<section id="watch".*?</section>', html, re.S)
    assert found
    inline_gone = re.sub(r"</?time[^>]*>", "", found.group(0))
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", inline_gone)).strip()


START, _ = progress.initial_state(WAVES, now=T0.timestamp())
PASS, PENDING = Verdict.PASS, Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("state", "said"),
    [
        (START, "No wave has passed yet. Once a wave passes, its models keep being judged"),
        (START, "until the fleet ends, 1800 s after its last wave passes."),
        (_after(START, PASS), "Watched now: wave 1. Their models keep being judged"),
        (_after(START, PASS, PASS), "Watched now: waves 1, 2."),
        (
            _after(START, PASS, PASS, PASS),
            "Every wave passed. Watched now: waves 1, 2, 3, until 2026-12-01T03:15:00+00:00.",
        ),
        (
            _after(START, PASS, PENDING),
            "The fleet is held: nothing is judged until an operator resumes or aborts it. "
            "Wave 1 will be watched again when it goes on.",
        ),
        (
            progress.abort(_after(START, PASS), reason="x").state,
            "The watch is over: the fleet is aborted.",
        ),
        (_after(START, Verdict.FAIL), "The watch is over: the fleet is failed."),
    ],
)
def test_the_watch_section_says_what_is_watched_and_until_when(
    state: FleetState, said: str
) -> None:
    assert said in _watch_text(state)


def test_without_a_post_completion_watch_it_ends_with_the_last_wave() -> None:
    text = _watch_text(START, replace(SPEC, watch_seconds=0.0))
    assert "until the fleet ends, when its last wave passes." in text
    assert "No model rolled back by the watch." in _watch_text(_after(START, PASS))
