"""One readable line per ledger entry, and the evidence pulled out of entry data. Pure.

Entry data was written by several producers over time (the rollout engine, the Argo endpoint,
Flagger hooks, humans), so every reader here takes what it finds and never assumes a key: a
missing value is shown as missing, not guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analyzer.domain.events import EventType
from analyzer.ledger.chain import EntryRecord

_MAX_DEPTH = 8  # evidence is nested a few levels (gate evaluation → decisions → evidence)


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricLine:
    name: str
    kind: str
    verdict: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisView:
    """The verdict an ``analysis_recorded`` entry holds."""

    verdict: str
    score: float | None
    reason: str
    cached: bool
    metrics: tuple[MetricLine, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class GateLine:
    gate: str
    open: bool
    reason: str
    change_requests: tuple[str, ...]
    approvers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class GateView:
    """What a ``gate_checked`` entry says: overall and per gate."""

    open: bool
    reason: str
    target_step: int | None
    gates: tuple[GateLine, ...]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def analysis_view(data: Mapping[str, Any]) -> AnalysisView | None:
    """The verdict of an analysis entry: the engine's and a fresh Argo look's ``result``, or a
    cached Argo answer's top-level ``verdict``."""
    result = data.get("result")
    source: Mapping[str, Any] = result if isinstance(result, Mapping) else data
    verdict = source.get("verdict")
    if not isinstance(verdict, str):
        return None
    metrics = source.get("metrics")
    lines = tuple(
        MetricLine(
            name=_text(m.get("name")),
            kind=_text(m.get("kind")),
            verdict=_text(m.get("verdict")),
            reason=_text(m.get("reason")),
        )
        for m in (metrics if isinstance(metrics, list) else [])
        if isinstance(m, Mapping)
    )
    return AnalysisView(
        verdict=verdict,
        score=_number(source.get("score")),
        reason=_text(source.get("reason")),
        cached=bool(data.get("cached", False)),
        metrics=lines,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ChangeRequestState:
    """A change request as a change gate read it at one gate check."""

    seq: int  # the gate_checked entry
    at: datetime
    number: str
    state: str  # as the gate saw it at that time ("Implement", or the raw state)
    approval: str
    gate: str
    open: bool


def change_request_states(
    entries: Iterable[tuple[EntryRecord, Mapping[str, Any]]],
) -> list[ChangeRequestState]:
    """Every change request state recorded by the gate checks among ``entries`` (entry, data),
    in their order: the change system's answer at the time, not today's."""
    found: list[ChangeRequestState] = []
    for entry, data in entries:
        if entry.event_type != EventType.GATE_CHECKED.value:
            continue
        nested = data.get("evidence")
        decisions = (nested if isinstance(nested, Mapping) else {}).get(
            "decisions", data.get("decisions")
        )
        for decision in decisions if isinstance(decisions, list) else ():
            if not isinstance(decision, Mapping):
                continue
            evidence = decision.get("evidence")
            evidence = evidence if isinstance(evidence, Mapping) else {}
            number = evidence.get("change_request")
            if not isinstance(number, str) or not number:
                continue
            found.append(
                ChangeRequestState(
                    seq=entry.seq, at=entry.recorded_at, number=number,
                    state=str(evidence.get("state_display") or evidence.get("state") or "—"),
                    approval=str(evidence.get("approval") or "—"),
                    gate=str(decision.get("gate") or "?"), open=decision.get("open") is True,
                )
            )  # fmt: skip
    return found


def gate_view(data: Mapping[str, Any]) -> GateView:
    """The engine nests the policy evaluation under ``evidence``; Flagger hooks record it at the
    top level. Both carry ``decisions`` of single gates with their own evidence."""
    evaluation = data.get("evidence")
    nested = evaluation if isinstance(evaluation, Mapping) else {}
    decisions = nested.get("decisions", data.get("decisions"))
    gates = tuple(
        GateLine(
            gate=_text(d.get("gate")),
            open=d.get("open") is True,
            reason=_text(d.get("reason")),
            change_requests=change_requests(d.get("evidence")),
            approvers=approvers(d.get("evidence")),
        )
        for d in (decisions if isinstance(decisions, list) else [])
        if isinstance(d, Mapping)
    )
    step = data.get("target_step")
    return GateView(
        open=data.get("open") is True,
        reason=_text(data.get("reason")),
        target_step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        gates=gates,
    )


def change_requests(evidence: Any) -> tuple[str, ...]:
    """Every change-request number in ``evidence`` (any ``change_request`` key, any depth)."""
    return _collect(evidence, "change_request", _single_text)


def approvers(evidence: Any) -> tuple[str, ...]:
    """Every approver named in ``evidence`` (``approvers`` lists, any depth)."""
    return _collect(evidence, "approvers", _texts)


def _single_text(value: Any) -> Iterable[str]:
    return [value] if isinstance(value, str) and value else []


def _texts(value: Any) -> Iterable[str]:
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def _collect(value: Any, key: str, read: Callable[[Any], Iterable[str]]) -> tuple[str, ...]:
    found: dict[str, None] = {}  # ordered and unique

    def walk(node: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        if isinstance(node, Mapping):
            for name, child in node.items():
                if name == key:
                    found.update(dict.fromkeys(read(child)))
                else:
                    walk(child, depth + 1)
        elif isinstance(node, list):
            for child in node:
                walk(child, depth + 1)

    walk(value, 0)
    return tuple(found)


def split_text(data: Mapping[str, Any]) -> str:
    split = data.get("split")
    parts = [
        f"{_text(s.get('revision'))} {_number(s.get('weight')) or 0:g} %"
        for s in (split if isinstance(split, list) else [])
        if isinstance(s, Mapping)
    ]
    return ", ".join(parts) or "no split recorded"


def summarize(entry: EntryRecord) -> str:
    """One line saying what the entry records."""
    return summary_of(entry.event_type, entry.data())


def summary_of(event_type: str, data: Mapping[str, Any]) -> str:
    """One line saying what an entry of ``event_type`` with ``data`` records."""
    reader = _SUMMARIES.get(event_type)
    return reader(data) if reader is not None else event_type.replace("_", " ")


def _traffic(data: Mapping[str, Any]) -> str:
    cause = _text(data.get("cause"))
    return f"traffic now {split_text(data)}" + (f" ({cause})" if cause else "")


def _traffic_requested(data: Mapping[str, Any]) -> str:
    if "to" in data:  # a fleet rollout's move of a whole model (docs/fleets.md)
        to, uri, reason = (
            _text(data.get("to")),
            _text(data.get("artifact_uri")),
            _text(data.get("reason")),
        )
        return f"move to {to} ({uri}) requested (not yet confirmed by the target)" + (
            f": {reason}" if reason else ""
        )
    move = data.get("move")
    move = move if isinstance(move, Mapping) else {}
    kind, weight = _text(move.get("kind")), move.get("weight")
    target = f"{weight} % canary" if weight is not None else "an unknown weight"
    verb = "promotion to" if kind == "promote" else "move to"
    what = f"{verb} {target}"
    strategy = _text(data.get("strategy"))
    if strategy == "shadow":
        what = (
            "end of the shadow run (mirror removal)"
            if kind == "promote"
            else (f"mirror of {weight} % of requests")
        )
    elif strategy == "blue_green" and kind != "promote":
        what = f"cut to {weight} %"
    reason = _text(data.get("reason"))
    return f"{what} requested (not yet confirmed by the target)" + (f": {reason}" if reason else "")


def _webhook(data: Mapping[str, Any]) -> str:
    source = _text(data.get("source")) or "webhook"
    hook = _text(data.get("hook")) or "?"
    return f"{source} {hook} answered {_text(data.get('status_code')) or '?'}: " + _text(
        data.get("answer")
    )


def _analysis(data: Mapping[str, Any]) -> str:
    view = analysis_view(data)
    if view is None:
        return "analysis recorded (no verdict in the entry)"
    score = f", score {view.score:g}" if view.score is not None else ""
    cached = " (cached answer)" if view.cached else ""
    reason = f": {view.reason}" if view.reason else ""
    return f"verdict {view.verdict}{score}{cached}{reason}"


def _gate(data: Mapping[str, Any]) -> str:
    view = gate_view(data)
    numbers = sorted({n for g in view.gates for n in g.change_requests})
    crs = f" [{', '.join(numbers)}]" if numbers else ""
    return f"gates {'open' if view.open else 'closed'}{crs}: {view.reason}"


def _approval(data: Mapping[str, Any]) -> str:
    step = data.get("step")
    comment = _text(data.get("comment"))
    cr = _text(data.get("change_request"))
    text = f"approved step {step}" if step is not None else "approved"
    return text + (f" under {cr}" if cr else "") + (f": {comment}" if comment else "")


def _with_reason(verb: str) -> Callable[[Mapping[str, Any]], str]:
    def read(data: Mapping[str, Any]) -> str:
        reason = _text(data.get("reason"))
        return f"{verb}: {reason}" if reason else verb

    return read


def _started(data: Mapping[str, Any]) -> str:
    cr = _text(data.get("change_request"))
    version = _text(data.get("model_version"))
    strategy = _text(data.get("strategy")) or "canary"
    what = {"blue_green": "blue/green", "shadow": "shadow run of", "pinned": "pinned cutover to"}
    return (
        f"{what.get(strategy, strategy)} {_text(data.get('canary_revision'))}"
        + (f" (model version {version})" if version else "")
        + f" over {_text(data.get('baseline_revision'))}"
        f", tier {_text(data.get('tier'))}, profile {_text(data.get('profile'))}"
        + (f", change request {cr}" if cr else "")
    )


def _registered(data: Mapping[str, Any]) -> str:
    parts = ["revision registered"]
    if version := _text(data.get("model_version")):
        parts.append(f"model version {version}")
    if uri := _text(data.get("artifact_uri")):
        parts.append(f"artifact {uri}")
    if digest := _text(data.get("artifact_digest")):
        parts.append(f"digest {digest}")
    registry = data.get("registry")
    if isinstance(registry, Mapping) and (requested := _text(registry.get("requested_uri"))):
        parts.append(f"resolved from {requested} (run {_text(registry.get('run_id')) or '?'})")
    return ", ".join(parts)


def _alias_moved(data: Mapping[str, Any]) -> str:
    model, alias = _text(data.get("registered_model")), _text(data.get("alias"))
    version, before = _text(data.get("version")), _text(data.get("previous_version"))
    if not data.get("moved"):
        return f"registry alias {alias} of {model} already on version {version}"
    return f"registry alias {alias} of {model} moved to version {version} (was {before or 'unset'})"


def _registry_error(data: Mapping[str, Any]) -> str:
    alias = _text(data.get("alias"))
    return f"registry refused moving alias {alias}, rollout held: {_text(data.get('error'))}"


def _mirror(data: Mapping[str, Any]) -> str:
    percent = _number(data.get("mirror_percent")) or 0
    cause = _text(data.get("cause"))
    tail = f" ({cause})" if cause else ""
    if not percent:
        return f"mirror removed; traffic {split_text(data)}{tail}"
    return (
        f"mirror {percent:g} % of requests to {_text(data.get('mirrored_revision'))} "
        f"(answers discarded, never served); traffic {split_text(data)}{tail}"
    )


def _shadow_judged(data: Mapping[str, Any]) -> str:
    version = _text(data.get("model_version"))
    reason = _text(data.get("reason"))
    return (
        f"shadow {_text(data.get('verdict')) or '?'}"
        + (f" for model version {version}" if version else "")
        + (f": {reason}" if reason else "")
    )


def _target_error(data: Mapping[str, Any]) -> str:
    operation = _text(data.get("operation"))
    return f"target error{f' during {operation}' if operation else ''}: {_text(data.get('error'))}"


def _evaluation(data: Mapping[str, Any]) -> str:
    passed = data.get("passed")
    outcome = "passed" if passed is True else "failed" if passed is False else "result unknown"
    version = _text(data.get("model_version"))
    digest = _text(data.get("artifact_digest"))
    return (
        f"evaluation {_text(data.get('suite')) or '?'} {outcome}"
        + (f" for model version {version}" if version else "")
        + (f", digest {digest}" if digest else "")
    )


def _fleet_started(data: Mapping[str, Any]) -> str:
    waves = data.get("waves")
    counts = [len(w) for w in waves if isinstance(w, list)] if isinstance(waves, list) else []
    plan = " → ".join(str(n) for n in counts) or "?"
    return f"fleet rollout of {_text(data.get('fleet'))} started, models per wave {plan}"


def _fleet_judged(data: Mapping[str, Any]) -> str:
    rollbacks = data.get("rollbacks")
    rolled = [str(m) for m in rollbacks] if isinstance(rollbacks, list) else []
    wave = _number(data.get("wave"))
    head = f"wave {int(wave) + 1 if wave is not None else '?'}: {_text(data.get('verdict')) or '?'}"
    tail = f", rolled back {', '.join(rolled[:5])}" + (" …" if len(rolled) > 5 else "")
    return (
        head
        + (f" ({_text(data.get('reason'))})" if data.get("reason") else "")
        + (tail if rolled else "")
    )


def _fleet_changed(data: Mapping[str, Any]) -> str:
    reason = _text(data.get("reason"))
    return f"fleet rollout {_text(data.get('from'))} → {_text(data.get('to'))}" + (
        f": {reason}" if reason else ""
    )


_SUMMARIES: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    EventType.TRAFFIC_CHANGED.value: _traffic,
    EventType.TRAFFIC_CHANGE_REQUESTED.value: _traffic_requested,
    EventType.ANALYSIS_RECORDED.value: _analysis,
    EventType.GATE_CHECKED.value: _gate,
    EventType.APPROVAL_GIVEN.value: _approval,
    EventType.APPROVAL_REFUSED.value: _with_reason("approval refused"),
    EventType.ROLLOUT_STARTED.value: _started,
    EventType.ROLLOUT_PAUSED.value: _with_reason("paused"),
    EventType.ROLLOUT_RESUMED.value: _with_reason("resumed"),
    EventType.ROLLOUT_ABORTED.value: _with_reason("aborted"),
    EventType.ROLLOUT_PROMOTED.value: _with_reason("promoted"),
    EventType.ROLLOUT_FAILED.value: _with_reason("failed"),
    EventType.REVISION_REGISTERED.value: _registered,
    EventType.TARGET_ERROR.value: _target_error,
    EventType.EVALUATION_RECORDED.value: _evaluation,
    EventType.WEBHOOK_ANSWERED.value: _webhook,
    EventType.ALIAS_MOVED.value: _alias_moved,
    EventType.REGISTRY_ERROR.value: _registry_error,
    EventType.MIRROR_CHANGED.value: _mirror,
    EventType.SHADOW_JUDGED.value: _shadow_judged,
    EventType.FLEET_ROLLOUT_STARTED.value: _fleet_started,
    EventType.FLEET_WAVE_JUDGED.value: _fleet_judged,
    EventType.FLEET_ROLLOUT_CHANGED.value: _fleet_changed,
}
# Event types with a summary of their own (every member of EventType, checked by a unit test).
SUMMARIZED_TYPES = frozenset(_SUMMARIES)
