"""Page data from the injected services, always scoped to the viewer's namespaces.

Ledger reads go through :mod:`analyzer.api.audit_queries` (the same functions as the audit API,
with the same namespace checks); rollouts through the ``RolloutControl`` Protocol. Anything in
another tenant's namespace is filtered out *before* it is counted or listed, and a single thing
there (an entry, a rollout) is reported exactly like one that does not exist.

Which models exist is learned from the rollouts table (the ledger has no cheap "distinct
models" query at tens of millions of entries): the newest ``ROLLOUT_SCAN`` rollouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from analyzer.api import audit_queries
from analyzer.api.deps import Services
from analyzer.api.ui import look_store
from analyzer.api.ui.pictures import check_kept_charts
from analyzer.api.ui.session import Viewer
from analyzer.api.ui.summaries import (
    AnalysisView,
    ChangeRequestState,
    GateView,
    analysis_view,
    change_request_states,
    gate_view,
)
from analyzer.domain.errors import NotFoundError
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import Rollout, RolloutState
from analyzer.ledger.chain import EntryRecord, VerifyReport, entry_hash
from analyzer.ledger.store import ServingAnswer, encode_cursor
from gates.signature import SIGNATURE

ROLLOUT_SCAN = 1000
TIMELINE_PAGE = 200
OUTCOMES = (EventType.ROLLOUT_PROMOTED, EventType.ROLLOUT_ABORTED, EventType.ROLLOUT_FAILED)
LOOK_TYPES = (EventType.ANALYSIS_RECORDED,)
_SAME_INSTANT = timedelta(microseconds=1)


def visible_rollouts(
    services: Services,
    viewer: Viewer,
    *,
    model: ModelRef | None = None,
    state: RolloutState | None = None,
    limit: int = ROLLOUT_SCAN,
) -> list[Rollout]:
    return services.rollouts.list(
        model=model, state=state, namespaces=viewer.actor.namespaces, limit=limit
    )


def model_names(rollouts: list[Rollout]) -> list[str]:
    return sorted({str(r.model) for r in rollouts})


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelRow:
    model: str
    latest: Rollout  # the model's newest rollout
    serving: ServingAnswer | None  # None when the viewer may not read the ledger


def model_rows(
    services: Services, viewer: Viewer, rollouts: list[Rollout], now: datetime
) -> list[ModelRow]:
    newest: dict[str, Rollout] = {}
    for rollout in rollouts:  # newest first, as listed
        newest.setdefault(str(rollout.model), rollout)
    return [
        ModelRow(
            model=name,
            latest=newest[name],
            serving=audit_queries.serving(services.ledger, viewer.actor, name, now)
            if viewer.may_audit
            else None,
        )
        for name in sorted(newest)
    ]


def recent_decisions(
    services: Services,
    viewer: Viewer,
    models: list[str],
    types: tuple[EventType, ...],
    *,
    limit: int = 15,
) -> list[EntryRecord]:
    """The newest entries of ``types`` (outcomes, or verdicts) the viewer may see.

    An unscoped viewer gets one query over the whole ledger; a scoped one a query per visible
    model (the ledger cannot filter by namespace), merged.
    """
    if viewer.actor.namespaces is None:
        page = audit_queries.events(
            services.ledger, viewer.actor, types=types, limit=limit, newest_first=True
        )
        return list(page.entries)
    found: list[EntryRecord] = []
    for model in models:
        page = audit_queries.events(
            services.ledger,
            viewer.actor,
            model=model,
            types=types,
            limit=limit,
            newest_first=True,
        )
        found.extend(page.entries)
    found.sort(key=lambda e: (e.recorded_at, e.seq), reverse=True)
    return found[:limit]


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingView:
    """Which revisions served a model at an instant, and every entry that put them there."""

    answer: ServingAnswer
    outcomes: tuple[EntryRecord, ...]  # promotion / abort / failure recorded with the change
    evidence: EntryRecord | None  # the last analysis of the rollout before the change
    analysis: AnalysisView | None
    gate_checks: tuple[tuple[EntryRecord, GateView], ...]
    approvals: tuple[EntryRecord, ...]
    change_requests: tuple[tuple[str, int], ...]  # (number, seq of the entry that holds it)
    approvers: tuple[str, ...]
    # (name, role): "four-eyes approver" or "change board approver (CHG…)"
    approver_roles: tuple[tuple[str, str], ...] = ()
    until: EntryRecord | None = None  # the next traffic change of the model; None: still serving
    provenance: tuple[RevisionProvenance, ...] = ()
    # Each change request's state and approval as the change gate saw it before the change.
    change_request_states: tuple[ChangeRequestState, ...] = ()
    mirror: EntryRecord | None = None  # a shadow run's mirror in force then (it never served)


@dataclass(frozen=True, kw_only=True, slots=True)
class RevisionProvenance:
    """Where a serving revision came from: its registration, and the promotion (with that
    rollout's change request) that made it the stable revision — the baseline's story too."""

    revision: str
    weight: float
    role: str  # "baseline" or "canary" of the rollout behind the change; "" when none
    registration: EntryRecord | None
    promotion: EntryRecord | None
    promotion_change_request: str | None
    # The last signature gate decision of the rollout that registered it, before the change:
    # "open: signature verified with key 'ml-platform'", "closed: … unsigned", …
    signature: str | None = None
    signature_entry: EntryRecord | None = None


def serving_view(services: Services, viewer: Viewer, model: str, at: datetime) -> ServingView:
    answer = audit_queries.serving(services.ledger, viewer.actor, model, at)
    traffic = answer.traffic_entry
    outcomes: tuple[EntryRecord, ...] = ()
    evidence = None
    if traffic is not None and traffic.rollout_id is not None:
        outcomes = _outcomes_of(services, viewer, model, traffic)
    if traffic is not None:
        evidence = audit_queries.linked_analysis(services.ledger, viewer.actor, traffic)
    gate_checks = tuple(
        (e, gate_view(e.data()))
        for e in answer.approvals
        if e.event_type == EventType.GATE_CHECKED.value
    )
    approvals = tuple(e for e in answer.approvals if e.event_type == EventType.APPROVAL_GIVEN.value)
    until = None
    if traffic is not None:  # the split served until the model's next traffic change
        following = audit_queries.events(
            services.ledger, viewer.actor, model=model, types=(EventType.TRAFFIC_CHANGED,),
            cursor=encode_cursor(traffic.recorded_at, traffic.seq), limit=1,
        )  # fmt: skip
        until = following.entries[0] if following.entries else None
    return ServingView(
        mirror=audit_queries.mirror_at(services.ledger, viewer.actor, model, at),
        answer=answer,
        outcomes=outcomes,
        evidence=evidence,
        analysis=analysis_view(evidence.data()) if evidence is not None else None,
        gate_checks=gate_checks,
        approvals=approvals,
        change_requests=_change_requests(gate_checks, approvals),
        approvers=_approvers(gate_checks, approvals),
        approver_roles=_approver_roles(gate_checks, approvals),
        until=until,
        provenance=_provenance(services, viewer, answer),
        change_request_states=_latest_states(gate_checks),
    )


def _latest_states(
    gate_checks: tuple[tuple[EntryRecord, GateView], ...],
) -> tuple[ChangeRequestState, ...]:
    """Each change request's state at the last gate check before the change."""
    latest: dict[str, ChangeRequestState] = {}
    for state in change_request_states((e, e.data()) for e, _ in gate_checks):
        latest[state.number] = state
    return tuple(latest.values())


def _provenance(
    services: Services, viewer: Viewer, answer: ServingAnswer
) -> tuple[RevisionProvenance, ...]:
    traffic = answer.traffic_entry
    behind = _rollout_or_none(services, viewer, traffic.rollout_id if traffic else None)
    registered = {e.revision: e for e in answer.registrations}
    promoted = {e.revision: e for e in answer.promotions}
    found = []
    for served in answer.revisions:
        role = ""
        if behind is not None:
            if served.revision == behind.baseline_revision:
                role = "baseline"
            elif served.revision == behind.canary_revision:
                role = "canary"
        promotion = promoted.get(served.revision)
        promoter = _rollout_or_none(services, viewer, promotion.rollout_id if promotion else None)
        registration = registered.get(served.revision)
        signature = (
            _signature_check(services, viewer, answer.model, registration.rollout_id, traffic.seq)
            if registration is not None and registration.rollout_id and traffic is not None
            else None
        )
        found.append(
            RevisionProvenance(
                revision=served.revision, weight=served.weight, role=role,
                registration=registration, promotion=promotion,
                promotion_change_request=promoter.change_request if promoter else None,
                signature=signature[0] if signature else None,
                signature_entry=signature[1] if signature else None,
            )
        )  # fmt: skip
    return tuple(found)


def _signature_check(
    services: Services, viewer: Viewer, model: str, rollout_id: str, before: int
) -> tuple[str, EntryRecord] | None:
    """The last ``signature`` gate decision of ``rollout_id`` before entry ``before``."""
    page = audit_queries.events(
        services.ledger, viewer.actor, model=model, rollout=rollout_id,
        types=(EventType.GATE_CHECKED,), newest_first=True, limit=100,
    )  # fmt: skip
    for entry in page.entries:
        if entry.seq >= before:
            continue
        for gate in gate_view(entry.data()).gates:
            if gate.gate == SIGNATURE:
                return f"{'open' if gate.open else 'closed'}: {gate.reason}", entry
    return None


def _rollout_or_none(services: Services, viewer: Viewer, rollout_id: str | None) -> Rollout | None:
    if rollout_id is None:
        return None
    try:
        return rollout_for(services, viewer, rollout_id)
    except NotFoundError:
        return None


def _outcomes_of(
    services: Services, viewer: Viewer, model: str, traffic: EntryRecord
) -> tuple[EntryRecord, ...]:
    # A promotion or abort is appended in the same transaction as its traffic change, at the
    # same recorded time.
    page = audit_queries.events(
        services.ledger,
        viewer.actor,
        model=model,
        rollout=traffic.rollout_id,
        types=OUTCOMES,
        since=traffic.recorded_at,
        until=traffic.recorded_at + _SAME_INSTANT,
        limit=10,
    )
    return page.entries


def _change_requests(
    gate_checks: tuple[tuple[EntryRecord, GateView], ...], approvals: tuple[EntryRecord, ...]
) -> tuple[tuple[str, int], ...]:
    found: dict[str, int] = {}
    for entry, view in gate_checks:
        for gate in view.gates:
            for number in gate.change_requests:
                found.setdefault(number, entry.seq)
    for entry in approvals:
        declared = entry.data().get("change_request")
        if isinstance(declared, str) and declared:
            found.setdefault(declared, entry.seq)
    return tuple(found.items())


def _approvers(
    gate_checks: tuple[tuple[EntryRecord, GateView], ...], approvals: tuple[EntryRecord, ...]
) -> tuple[str, ...]:
    names = dict.fromkeys(e.actor for e in approvals)
    for _, view in gate_checks:
        for gate in view.gates:
            names.update(dict.fromkeys(gate.approvers))
    return tuple(names)


def _approver_roles(
    gate_checks: tuple[tuple[EntryRecord, GateView], ...], approvals: tuple[EntryRecord, ...]
) -> tuple[tuple[str, str], ...]:
    """Who approved in which role: four-eyes approvals (entries, or counted by a gate without
    a change request) and the change board a change gate names with its change request."""
    roles = dict.fromkeys((e.actor, "four-eyes approver") for e in approvals)
    for _, view in gate_checks:
        for gate in view.gates:
            for name in gate.approvers:
                if gate.change_requests:
                    numbers = ", ".join(gate.change_requests)
                    roles[(name, f"change board approver ({numbers})")] = None
                else:
                    roles[(name, "four-eyes approver")] = None
    return tuple(roles)


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryView:
    entry: EntryRecord
    hash_recomputes: bool
    previous: EntryRecord | None  # None for the first entry
    previous_visible: bool
    next_seq: int | None  # None for the head
    next_visible: bool

    @property
    def links_to_previous(self) -> bool | None:
        """Whether ``prev_hash`` is the previous entry's hash (None for the first entry)."""
        return None if self.previous is None else self.previous.hash == self.entry.prev_hash


def entry_view(services: Services, viewer: Viewer, seq: int) -> EntryView:
    entry = services.ledger.entry(seq)
    if entry is None or not viewer.sees_model(entry.model):
        raise NotFoundError(f"no ledger entry {seq} that your token may read")
    previous = services.ledger.entry(seq - 1) if seq > 1 else None
    following = services.ledger.entry(seq + 1)
    return EntryView(
        entry=entry,
        hash_recomputes=entry_hash(entry.prev_hash, entry.payload) == entry.hash,
        previous=previous,
        previous_visible=previous is not None and viewer.sees_model(previous.model),
        next_seq=following.seq if following is not None else None,
        next_visible=following is not None and viewer.sees_model(following.model),
    )


def rollout_for(services: Services, viewer: Viewer, rollout_id: str) -> Rollout:
    """The rollout, or the same NotFoundError whether it is missing or another tenant's."""
    try:
        rollout = services.rollouts.get(rollout_id)
    except NotFoundError:
        rollout = None
    if rollout is None or not viewer.sees(rollout.model.namespace):
        raise NotFoundError(f"no rollout {rollout_id!r} that your token may read")
    return rollout


@dataclass(frozen=True, kw_only=True, slots=True)
class StepRow:
    index: int
    weight: int
    dwell_seconds: float
    gates: tuple[str, ...]
    status: str
    entered: EntryRecord | None  # the traffic change that entered the step


def step_rows(rollout: Rollout, traffic: tuple[EntryRecord, ...]) -> list[StepRow]:
    entered: dict[int, EntryRecord] = {}
    for entry in traffic:
        data = entry.data()
        step, cause = data.get("step"), str(data.get("cause", ""))
        if isinstance(step, int) and cause in {f"step {step}", "promoted"}:
            entered.setdefault(step, entry)
    return [
        StepRow(
            index=i,
            weight=s.weight,
            dwell_seconds=s.dwell.total_seconds(),
            gates=s.gates,
            status=_step_status(rollout, i),
            entered=entered.get(i),
        )
        for i, s in enumerate(rollout.plan.steps)
    ]


def _step_status(rollout: Rollout, index: int) -> str:
    state, current = rollout.state, rollout.step_index
    if state is RolloutState.PROMOTED or index < current:
        return "passed"
    if index == current:
        return "current" if not state.terminal else f"{state.value} here"
    return "not reached"


def rollout_health(
    rollout: Rollout, now: datetime, entries: Sequence[EntryRecord] = ()
) -> tuple[str, ...]:
    """Why a running rollout is unhealthy, in words (empty: healthy or finished).

    From the record alone (lists): analysis errors in a row against the limit at which the
    engine fails the rollout, and a traffic move the target has not confirmed for longer than
    an analysis interval (the engine retries it every tick). From its entries too (its page):
    the target errors since the last confirmed traffic change."""
    if rollout.state.terminal:
        return ()
    problems = []
    if rollout.consecutive_errors:
        problems.append(f"{rollout.consecutive_errors} of {rollout.plan.consecutive_error_limit} "
                        "analysis errors in a row")  # fmt: skip
    move = rollout.pending_move
    if move is not None and now - move.requested_at > rollout.plan.analysis_interval:
        waited = int((now - move.requested_at).total_seconds())
        problems.append(f"move to {move.weight} % unconfirmed by the target for {waited} s")
    failures = 0
    for entry in reversed(entries):
        if entry.event_type == EventType.TRAFFIC_CHANGED.value:
            break
        failures += entry.event_type == EventType.TARGET_ERROR.value
    if failures:
        problems.append(f"{failures} target errors since the last confirmed traffic change")
    return tuple(problems)


@dataclass(frozen=True, kw_only=True, slots=True)
class RolloutTimeline:
    steps: list[StepRow]
    entries: tuple[EntryRecord, ...]
    next_cursor: str | None


def timeline_of(rollout: Rollout, entries: Sequence[EntryRecord]) -> RolloutTimeline:
    """The first page of the timeline from every entry of the rollout (oldest first), as
    :func:`rollout_timeline` would read it."""
    page = tuple(entries[:TIMELINE_PAGE])
    traffic = tuple(e for e in entries if e.event_type == EventType.TRAFFIC_CHANGED.value)
    more = len(entries) > TIMELINE_PAGE
    return RolloutTimeline(
        steps=step_rows(rollout, traffic[:1000]),
        entries=page,
        next_cursor=encode_cursor(page[-1].recorded_at, page[-1].seq) if more else None,
    )


def rollout_timeline(
    services: Services, viewer: Viewer, rollout: Rollout, cursor: str | None
) -> RolloutTimeline:
    model = str(rollout.model)
    traffic = audit_queries.events(
        services.ledger,
        viewer.actor,
        model=model,
        rollout=rollout.id,
        types=(EventType.TRAFFIC_CHANGED,),
        limit=1000,
    )
    page = audit_queries.events(
        services.ledger,
        viewer.actor,
        model=model,
        rollout=rollout.id,
        cursor=cursor,
        limit=TIMELINE_PAGE,
    )
    return RolloutTimeline(
        steps=step_rows(rollout, traffic.entries),
        entries=page.entries,
        next_cursor=page.next_cursor,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyView:
    report: VerifyReport
    show_totals: bool  # chain-wide counts span every tenant: unscoped viewers only
    checked_at: datetime
    checkpoint_checked: bool = False  # compared with the newest signed checkpoint
    checkpoint_problem: str | None = None  # why the chain no longer holds it
    checkpoint_bad_seq: int | None = None
    # kept look summaries (look_store.py) that differ from their entries when re-derived
    summary_problems: tuple[str, ...] = ()


def verify_view(services: Services, viewer: Viewer) -> VerifyView:
    report, checked, finding = audit_queries.verify(services.ledger, services.checkpoints)
    return VerifyView(
        report=report,
        show_totals=viewer.actor.namespaces is None,
        checked_at=services.clock(),
        checkpoint_checked=checked,
        checkpoint_problem=finding.problem if finding else None,
        checkpoint_bad_seq=finding.first_bad_seq if finding else None,
        summary_problems=(
            *look_store.check_stored(services.ledger.engine),
            *check_kept_charts(services),
        ),
    )
