"""The recorded canaries of ``backtest --from ledger``: driven rollouts as the ledger holds them.

Each rollout started in the period is one canary. Its looks are its ``analysis_recorded``
entries, in order: the step and weight they judged and the window they read (``window`` in the
payload; entries written before it was recorded fall back to the step's confirmed traffic move
and the entry's time). Each step is its own segment, judged with the profile's alpha split across
the plan's judged steps and with the step's bake, as ``wiring.ProfileAnalyzer`` does, from the
``step_plan`` the ``rollout_started`` entry records (without it, the replay is horizon-free).
What happened is the rollout's terminal entry (promoted, aborted, failed) and the first recorded
look that answered ``fail``.

The ledger holds verdicts, not the raw evidence: the looks are re-read from the metric source,
so the source must still hold the period (Prometheus' retention, Datadog's plan).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from analyzer.backtests.replay import Happened, PlannedLook, RecordedCanary
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import StepPlan
from analyzer.domain.verdict import Verdict
from analyzer.ledger.chain import EntryRecord
from analyzer.ledger.store import Ledger
from analyzer.rollouts.repository import plan_from_json

_TERMINAL = {
    EventType.ROLLOUT_PROMOTED.value: "promoted",
    EventType.ROLLOUT_ABORTED.value: "aborted",
    EventType.ROLLOUT_FAILED.value: "failed",
}
_HISTORY = (
    EventType.ANALYSIS_RECORDED,
    EventType.TRAFFIC_CHANGED,
    EventType.MIRROR_CHANGED,  # a shadow run's step starts with its mirror (docs/strategies.md)
    EventType.SHADOW_JUDGED,
    EventType.ROLLOUT_PROMOTED,
    EventType.ROLLOUT_ABORTED,
    EventType.ROLLOUT_FAILED,
)


_STEP_STARTS = (EventType.TRAFFIC_CHANGED.value, EventType.MIRROR_CHANGED.value)


def _time(text: object, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise InvalidInputError(f"not an ISO 8601 time: {text!r}", field=where) from None
    if moment.tzinfo is None:
        raise InvalidInputError("a recorded time without a zone", field=where)
    return moment


def _plan(started: Mapping[str, Any]) -> StepPlan | None:
    raw = started.get("step_plan")
    if not isinstance(raw, dict):
        return None
    try:
        return plan_from_json(raw)
    except InvalidInputError:
        return None


def _judged_steps(started: Mapping[str, Any], plan: StepPlan | None) -> int:
    if plan is not None:
        return sum(1 for step in plan.steps if step.weight < 100)
    weights = started.get("plan") or []
    return max(1, sum(1 for w in weights if isinstance(w, int | float) and w < 100))


def _look(
    entry: EntryRecord,
    *,
    step_started: Mapping[int, datetime],
    plan: StepPlan | None,
    divisor: int,
    fallback_start: datetime,
    split_checked: bool,
) -> PlannedLook:
    data = entry.data()
    step, weight = int(data.get("step", 0)), int(data.get("weight", 0))
    window = data.get("window")
    if isinstance(window, dict):
        where = f"ledger seq {entry.seq}.window"
        start, end = _time(window.get("start"), where), _time(window.get("end"), where)
    else:
        start, end = step_started.get(step, fallback_start), entry.recorded_at
    bake = None
    if plan is not None and 0 <= step < len(plan.steps):
        seconds = plan.bake(step).total_seconds()
        bake = 1.0 if seconds <= 0 else max((end - start).total_seconds(), 0.0) / seconds
    result = data.get("result")
    recorded = result.get("verdict") if isinstance(result, dict) else None
    return PlannedLook(
        start=start,
        end=end,
        segment=step,
        alpha_divisor=divisor,
        canary_weight=weight / 100 if split_checked and 0 < weight < 100 else None,
        bake_elapsed=bake,
        recorded=Verdict(recorded) if recorded in tuple(Verdict) else None,
    )


def _canary(ledger: Ledger, started: EntryRecord) -> RecordedCanary | None:
    data = started.data()
    rollout_id = started.rollout_id
    if rollout_id is None or started.model is None:
        return None
    plan = _plan(data)
    divisor = _judged_steps(data, plan)
    # other strategies than canary (recorded since they exist) have no split to check, and a
    # blue/green reads its baseline time-matched before the cut, as wiring.ProfileAnalyzer does
    strategy = plan.strategy.value if plan is not None else str(data.get("strategy", "canary"))
    offset = plan.verification_offset if plan is not None and strategy == "blue_green" else None
    step_started: dict[int, datetime] = {}
    looks: list[PlannedLook] = []
    happened: Happened | None = None
    for entry in ledger.each_event(rollout_id=rollout_id, event_types=_HISTORY):
        kind, payload = entry.event_type, entry.data()
        if kind == EventType.MIRROR_CHANGED.value and not payload.get("mirror_percent"):
            continue  # the mirror's removal starts nothing
        if kind in _STEP_STARTS and "step" in payload:
            step_started[int(payload["step"])] = entry.recorded_at
        elif kind == EventType.ANALYSIS_RECORDED.value and happened is None:
            looks.append(_look(entry, step_started=step_started, plan=plan, divisor=divisor,
                               fallback_start=started.recorded_at,
                               split_checked=strategy == "canary"))  # fmt: skip
        elif kind == EventType.SHADOW_JUDGED.value and happened is None:
            if payload.get("verdict") == "passed":  # a failed run ended aborted just before
                happened = Happened(outcome="shadow passed", decided_at=None,
                                    reason=str(payload.get("reason", "")))  # fmt: skip
        elif kind in _TERMINAL and happened is None:
            first_fail = next(
                (i for i, look in enumerate(looks) if look.recorded is Verdict.FAIL), None
            )
            happened = Happened(outcome=_TERMINAL[kind], decided_at=first_fail,
                                reason=str(payload.get("reason", "")))  # fmt: skip
    if not looks:
        return None
    if happened is None:
        first_fail = next(
            (i for i, look in enumerate(looks) if look.recorded is Verdict.FAIL), None
        )
        happened = Happened(outcome="in progress", decided_at=first_fail)
    return RecordedCanary(
        id=rollout_id,
        model=ModelRef.parse(started.model),
        baseline=str(data.get("baseline_revision", "")),
        canary=str(data.get("canary_revision", started.revision or "")),
        looks=tuple(looks),
        happened=happened,
        profile=None if data.get("profile") is None else str(data["profile"]),
        baseline_offset=offset,
    )


def _session_look(entry: EntryRecord) -> PlannedLook | None:
    """One fresh look of an analysis session (a cached or late answer fetched nothing)."""
    data = entry.data()
    if data.get("cached") or data.get("late") or not isinstance(data.get("window"), dict):
        return None
    where = f"ledger seq {entry.seq}.window"
    raw = data.get("result")
    result: dict[str, Any] = raw if isinstance(raw, dict) else {}
    bake = result.get("bake") if isinstance(result.get("bake"), dict) else None
    weight = data.get("weight")
    recorded = result.get("verdict")
    return PlannedLook(
        start=_time(data["window"].get("start"), where),
        end=_time(data["window"].get("end"), where),
        canary_weight=weight / 100 if isinstance(weight, int) and 0 < weight < 100 else None,
        # recorded rounded to 4 decimals (and capped at 1): a replay may differ in the last digit
        bake_elapsed=None if bake is None else float(bake.get("elapsed", 0.0)),
        recorded=Verdict(recorded) if recorded in tuple(Verdict) else None,
    )


def _sessions(
    ledger: Ledger, *, since: datetime | None, until: datetime | None, model: ModelRef | None
) -> list[RecordedCanary]:
    """The analysis sessions the Argo web provider (or Flagger) recorded looks of: one canary
    each, its looks the fresh ones, what happened the first ``fail`` it answered (which fails
    the AnalysisRun and aborts the Argo Rollout)."""
    grouped: dict[int, list[tuple[EntryRecord, PlannedLook]]] = {}
    for entry in ledger.each_event(model=model, since=since, until=until,
                        event_types=(EventType.ANALYSIS_RECORDED,)):  # fmt: skip
        session = entry.data().get("session")
        look = _session_look(entry) if entry.rollout_id is None else None
        if isinstance(session, int) and look is not None and entry.model is not None:
            grouped.setdefault(session, []).append((entry, look))
    found = []
    for session, entries in grouped.items():
        first = entries[0][0].data()
        looks = tuple(look for _, look in entries)
        failed = next((i for i, look in enumerate(looks) if look.recorded is Verdict.FAIL), None)
        last = looks[-1].recorded
        outcome = "failed" if failed is not None else ("passed" if last is Verdict.PASS else
                                                       "undecided")  # fmt: skip
        found.append(
            RecordedCanary(
                id=f"session-{session}",
                model=ModelRef.parse(str(entries[0][0].model)),
                baseline=str(first.get("baseline", "")),
                canary=str(first.get("canary", "")),
                looks=looks,
                happened=Happened(outcome=outcome, decided_at=failed),
                profile=None if first.get("profile") is None else str(first["profile"]),
            )
        )
    return found


def canaries_from_ledger(
    ledger: Ledger,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model: ModelRef | None = None,
) -> list[RecordedCanary]:
    """Every driven rollout started in ``[since, until)`` (of ``model``) that recorded at least
    one analysis, oldest first; then every analysis session with fresh looks in the period."""
    found = []
    for started in ledger.each_event(model=model, since=since, until=until,
                          event_types=(EventType.ROLLOUT_STARTED,)):  # fmt: skip
        canary = _canary(ledger, started)
        if canary is not None:
            found.append(canary)
    return found + _sessions(ledger, since=since, until=until, model=model)
