"""``AnalysisService``: one look per call of the Argo web provider, with evidence that accumulates.

A *session* is one (model, canary, baseline, profile) question. Its row holds the judge's
sequential state and the last answer. Each call:

1. reads the session row without a lock; if its last answer is younger than ``cache_seconds``
   it is answered from there (Argo retries and several AnalysisRuns asking at once must not
   multiply Prometheus queries), recorded through :class:`BatchingRecorder` (group commit),
2. otherwise creates the row if it is new (its window starts ``lookback`` before the first
   call) and locks it (``SELECT … FOR UPDATE``), so two concurrent looks never judge from the
   same state and lose one look's evidence. While one call is judging, concurrent calls for
   the same session answer from the previous look (``SKIP LOCKED``: stale by at most one look's
   duration) instead of queueing behind it; only a session's very first look makes them wait,
3. fetches every metric over ``[window_start, now]``, judges it with the stored state, and
   stores the new state with an ``analysis_recorded`` ledger entry in the same transaction. A
   look that repeats the previous look's verdicts is written compactly (what changed over the
   session's last whole look, ``analyses/compaction.py``); readers expand it.

Deadlines: every call answers within its deadline (the request's ``deadline_seconds``, else
``deadline_seconds`` here, 6 s: well inside Argo's default 10 s web-provider timeout), counted
from the request's arrival. A fresh look gets what is left of it minus
``WRITE_RESERVE_SECONDS`` (1 s) for the row and the ledger; a look that is late is dropped
(nothing of it counted) and the call answers the session's last decision (``pass`` or
``fail``), or ``error`` when it has none.

Every call is in the ledger, with its actor, before it is answered.

Failures are data: a metric source that fails, or a judge that breaks, gives an ``error``
verdict, never an exception. Only bad identifiers raise ``InvalidInputError`` (API 422).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, Row, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from analyzer.analyses.compaction import SessionLookBases
from analyzer.analyses.looks import LookInput, LookOverran, LookRunner, failed_look
from analyzer.analyses.tables import analysis_sessions
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef
from analyzer.domain.result import AnalysisResult
from analyzer.domain.verdict import Verdict
from analyzer.driver_sql import DriverStatement
from analyzer.judge import JudgeState
from analyzer.ledger.chain import EntryRecord, canonical_json
from analyzer.ledger.group_commit import BatchingRecorder
from analyzer.ledger.store import Clock, Ledger, utc_now
from analyzer.metrics.base import TimeWindow, validate_revision
from analyzer.profiles import LoadedProfile

log = structlog.get_logger(__name__)

DEFAULT_DEADLINE_SECONDS = 6.0
WRITE_RESERVE_SECONDS = 1.0  # kept from the deadline for the session row and the ledger entry


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced, so it is valid JSON (Argo parses it)."""
    return json_text(value)[0]


def json_text(value: Any, *, canonical: bool = False) -> tuple[Any, str]:
    """``value`` made JSON-safe (:func:`json_safe`), and its JSON text (``canonical``: the
    ledger's form, sorted keys and no spaces).

    Most values have no non-finite float: one C-speed encoding proves it, and its text is what
    the session row stores (3.7 ms of a fresh look's ~30 ms CPU went to walking the result and
    the state in Python, then encoding them again, issue 20); only a value that fails it is
    walked and rebuilt. A look's result is stored canonical, so its compaction cuts this very
    text instead of encoding the result once more."""
    encode = canonical_json if canonical else _plain_json
    try:
        return value, encode(value)
    except ValueError:
        safe = _json_safe(value)
        return safe, encode(safe)


def _plain_json(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def profile_digest(loaded: LoadedProfile) -> str:
    """A stable digest of a profile's judging settings and queries."""
    queries = sorted((name, repr(q)) for name, q in loaded.queries.items())
    text = repr((loaded.profile, queries))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True, slots=True)
class Bake:
    """The caller's planned bake: ``looks`` looks, one every ``interval_seconds``.

    The bake ends at the last look, ``(looks - 1) * interval_seconds`` after the first (Argo
    measures at once, then every ``interval``): a metric with no evidence of harm passes there.
    """

    looks: int
    interval_seconds: float

    def __post_init__(self) -> None:
        if self.looks < 1 or not self.interval_seconds > 0:
            raise InvalidInputError("a bake needs looks >= 1 and a positive interval", field="bake")

    @property
    def seconds(self) -> float:
        return (self.looks - 1) * self.interval_seconds

    def elapsed(self, since_start: timedelta) -> float:
        """The share of the bake gone by (1 once its last look is due, and beyond)."""
        if self.seconds <= 0:
            return 1.0
        return max(since_start.total_seconds(), 0.0) / self.seconds


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisRequest:
    model: ModelRef
    canary: str
    baseline: str
    profile_name: str
    profile: LoadedProfile
    weight: int | None = None  # the canary's current traffic percentage, for the SRM check
    rollout: str | None = None  # the caller's name for the rollout (e.g. the Argo Rollout)
    deadline_seconds: float | None = None  # answer within this (else the service's default)
    bake: Bake | None = None  # the caller's planned bake, making the session bake-aware
    # After a blue/green cut: the baseline's evidence is read this much earlier (time-matched)
    baseline_offset: timedelta | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisAnswer:
    """What one call returns: the (possibly cached) look and where it sits in the session."""

    result: dict[str, Any]  # AnalysisResult.to_json(), JSON-safe
    session_id: int
    look: int
    cached: bool
    window: TimeWindow
    ledger_seq: int

    @property
    def verdict(self) -> str:
        return str(self.result["verdict"])


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionSummary:
    """The latest look of a session, for the Flagger rollback hook."""

    canary: str
    baseline: str
    profile: str
    verdict: str
    reason: str
    looks: int
    last_look_at: datetime


class AnalysisService:
    """Judges Argo's repeated questions with accumulated evidence. Safe across replicas."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        looks: LookRunner,
        *,
        clock: Clock = utc_now,
        cache_seconds: float = 10.0,
        lookback: timedelta = timedelta(minutes=10),
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        compact_looks: bool = True,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._looks = looks
        self._clock = clock
        self._cache = timedelta(seconds=cache_seconds)
        self._lookback = lookback
        self._deadline = deadline_seconds
        self._monotonic = monotonic
        self._recorder = BatchingRecorder(ledger)
        # Last look per session key, so cached answers need no read (dict ops are atomic).
        self._memo: dict[tuple[str, ...], _Last] = {}
        # Fresh looks that repeat the previous verdicts are written compactly (docs/ledger.md);
        # False writes every look whole (the bytes benchmark's comparison).
        self._bases = SessionLookBases(enabled=compact_looks)

    def close(self) -> None:
        self._recorder.close()  # the looks belong to whoever built them (they may be shared)

    def analyze(
        self, request: AnalysisRequest, actor: str, *, received: float | None = None
    ) -> AnalysisAnswer:
        """One look (or the cached last one) for ``request``, recorded in the ledger.

        ``received``: when the request arrived (this service's monotonic clock), if it queued
        before reaching here; the deadline counts from then.
        """
        validate_revision(request.canary, field="canary")
        validate_revision(request.baseline, field="baseline")
        start = self._monotonic() if received is None else min(received, self._monotonic())
        deadline = start + (request.deadline_seconds or self._deadline)
        key = _key(request)
        # Fast path, no lock: a fresh last look (from this replica's memo, else the row) is
        # answered and recorded through the group-commit recorder. Only a look that must
        # query the source takes the session's row lock.
        session = _session_identity(request, key)
        last = self._memo.get(session) or self._read_last(request, key, session)
        if last is not None and last.fresh(self._clock(), self._cache):
            return self._answer_cached(self._recorder.record, request, last, actor)
        with self._engine.begin() as conn:
            # Without a last look to fall back on, wait for the lock; otherwise skip a row that
            # another call (any replica) is judging right now and answer from the last look.
            row = self._lock_session(conn, request, key, wait=last is None)
            if row is None and not self._exists(conn, request, key):
                # not locked but gone (pruned, maybe by another replica): a new session
                row = self._lock_session(conn, request, key, wait=True)
            if row is not None:
                answer = self._under_lock(conn, request, row, actor, deadline, known=last)
        if row is None:
            assert last is not None
            return self._answer_cached(self._recorder.record, request, last, actor)
        self._remember(session, _Last.of_answer(answer))
        return answer

    def _under_lock(
        self,
        conn: Connection,
        request: AnalysisRequest,
        row: Row[Any],
        actor: str,
        deadline: float,
        *,
        known: _Last | None,
    ) -> AnalysisAnswer:
        now = self._clock()
        # The row's last look, decoded only when this replica's memory is not of that look
        last = known if known is not None and known.is_of(row) else _Last.of_row(row)
        if last is not None and last.fresh(now, self._cache):
            # another call looked while this one read or waited
            return self._answer_cached(partial(self._ledger.append, conn), request, last, actor)
        previous = last.result if last is not None else None
        return self._look(conn, request, row, actor, now=now, deadline=deadline, previous=previous)

    def _read_last(
        self, request: AnalysisRequest, key: str, session: tuple[str, ...]
    ) -> _Last | None:
        with self._engine.connect() as conn:
            row = conn.execute(_SESSION, _session_key(request, key)).first()
        last = _Last.of_row(row) if row is not None else None
        if last is not None:
            self._remember(session, last)
        return last

    def prune(self, idle: timedelta) -> int:
        """Delete the sessions nobody has looked at for ``idle``; how many went.

        Their looks stay in the ledger; a later call for the same question starts a new session
        (a new window and judge state), as a question asked a month later should.
        """
        cutoff = self._clock() - idle
        t = analysis_sessions.c
        with self._engine.begin() as conn:
            gone = conn.execute(delete(analysis_sessions).where(t.updated_at < cutoff)).rowcount
        self._memo = {k: v for k, v in self._memo.items() if v.window.end >= cutoff}
        if gone:
            log.info("analysis.sessions.pruned", sessions=gone, idle_days=idle.days)
        return int(gone or 0)

    def _exists(self, conn: Connection, request: AnalysisRequest, key: str) -> bool:
        return conn.execute(_SESSION_ID, _session_key(request, key)).first() is not None

    def _remember(self, session: tuple[str, ...], last: _Last) -> None:
        if len(self._memo) > 10_000:  # bounded: sessions end, keys do not come back
            self._memo.clear()
        self._memo[session] = last

    def latest(self, model: ModelRef, *, canary: str | None = None) -> SessionSummary | None:
        """The most recently judged session of ``model`` (optionally of one canary)."""
        t = analysis_sessions.c
        query = select(analysis_sessions).where(
            t.namespace == model.namespace, t.model == model.name, t.last_look_at.is_not(None)
        )
        if canary is not None:
            query = query.where(t.canary == canary)
        with self._engine.connect() as conn:
            row = conn.execute(query.order_by(t.last_look_at.desc()).limit(1)).first()
        if row is None:
            return None
        result = json.loads(row.last_result)
        return SessionSummary(
            canary=row.canary,
            baseline=row.baseline,
            profile=row.profile_name,
            verdict=str(result["verdict"]),
            reason=str(result.get("reason", "")),
            looks=int(row.looks),
            last_look_at=_aware(row.last_look_at),
        )

    # --- steps -------------------------------------------------------------------------------

    def _lock_session(
        self, conn: Connection, request: AnalysisRequest, key: str, *, wait: bool
    ) -> Row[Any] | None:
        if wait:  # no last look known: the row may not exist yet (a known one always does)
            conn.execute(_insert_if_absent(conn, self._new_session(request, key)))
        return _SESSION_LOCK[wait].first(conn, _session_key(request, key))

    def _new_session(self, request: AnalysisRequest, key: str) -> dict[str, Any]:
        """The row of ``request``'s session before its first look."""
        now = self._clock()
        return {
            "namespace": request.model.namespace,
            "model": request.model.name,
            "canary": request.canary,
            "baseline": request.baseline,
            "profile_key": key,
            "profile_name": request.profile_name,
            "rollout": request.rollout,
            # A bake-aware session judges the evidence of its own bake: a new step (weight) or a
            # new bake is a new session, and its window starts at its first call.
            "window_start": now if request.bake is not None else now - self._lookback,
            "bake_looks": request.bake.looks if request.bake is not None else None,
            "bake_seconds": request.bake.seconds if request.bake is not None else None,
            "looks": 0,
            "judge_state": json.dumps(JudgeState().to_json()),
            "created_at": now,
            "updated_at": now,
        }

    @staticmethod
    def _answer_cached(
        record: Callable[[LedgerEvent], EntryRecord],
        request: AnalysisRequest,
        last: _Last,
        actor: str,
    ) -> AnalysisAnswer:
        data = {
            **_identity(request, last.session_id, last.look, last.window),
            "cached": True,
            "verdict": last.result["verdict"],
            "score": last.result.get("score"),
        }
        entry = record(_event(request, actor, data))
        return AnalysisAnswer(
            result=last.result,
            session_id=last.session_id,
            look=last.look,
            cached=True,
            window=last.window,
            ledger_seq=entry.seq,
        )

    def _look(
        self,
        conn: Connection,
        request: AnalysisRequest,
        row: Row[Any],
        actor: str,
        *,
        now: datetime,
        deadline: float,
        previous: Mapping[str, Any] | None,
    ) -> AnalysisAnswer:
        """A fresh look, stored with its ledger entry (compact when its verdicts are
        ``previous``'s, the last look's result)."""
        start = _aware(row.window_start)
        window = TimeWindow.since(start, now)
        state = JudgeState.from_json(json.loads(row.judge_state))
        budget = deadline - self._monotonic() - WRITE_RESERVE_SECONDS
        late = False
        try:
            elapsed = _bake_elapsed(row, now)
            result, new_state = self._judge(request, window, state, budget, elapsed)
            result_json, result_text = json_text(result.to_json(), canonical=True)
        except LookOverran as overran:
            late, new_state = True, state
            result_json = _late_answer(row, overran.seconds, request.profile.profile.alpha)
            result_text = canonical_json(result_json)
        if row.bake_looks is not None:
            result_json = {**result_json, "bake": _bake_json(row, now)}
            result_text = canonical_json(result_json)
        look = int(row.looks) + 1
        values = {
            "b_id": row.id,
            "s_looks": look,
            "s_judge_state": json_text(new_state.to_json())[1],
            "s_last_result": result_text,
            "s_last_verdict": result_json["verdict"],
            "s_last_look_at": window.end,
            "s_updated_at": now,
            "s_rollout": request.rollout or row.rollout,
        }
        data = {
            **_identity(request, row.id, look, window),
            "cached": False,
            "late": late,
            "result": result_json,
        }
        compact = self._bases.compact(
            conn,
            session_id=int(row.id),
            base_seq=row.look_base_seq,
            previous=previous,
            data=data,
            stored=result_text,
        )
        # The row's update and the entry in one round trip (after the ledger head's lock)
        if compact is not None:  # the base stays the session's last whole look
            event = _event(request, actor, compact)
            entry = self._ledger.append_with(conn, event, _UPDATE_LOOK, lambda _: values)
        else:  # whole: the new base, named by the seq the entry gets
            event = _event(request, actor, data)
            entry = self._ledger.append_with(
                conn, event, _UPDATE_LOOK_AND_BASE, lambda e: {**values, "s_look_base_seq": e.seq}
            )
            self._bases.written(int(row.id), entry.seq, data, stored=result_text)
        return AnalysisAnswer(
            result=result_json,
            session_id=int(row.id),
            look=look,
            cached=False,
            window=window,
            ledger_seq=entry.seq,
        )

    def _judge(
        self,
        request: AnalysisRequest,
        window: TimeWindow,
        state: JudgeState,
        budget: float,
        bake_elapsed: float | None,
    ) -> tuple[AnalysisResult, JudgeState]:
        profile = request.profile.profile
        concurrent = request.baseline_offset is None  # a split to check exists only then
        if concurrent and request.weight is not None and 0 < request.weight < 100:
            profile = replace(profile, canary_weight=request.weight / 100)
        if bake_elapsed is not None:
            profile = replace(profile, bake_elapsed=bake_elapsed)
        look = LookInput(
            profile=profile,
            queries=request.profile.queries,
            model=request.model,
            baseline=request.baseline,
            canary=request.canary,
            window=window,
            state=state,
            baseline_offset=request.baseline_offset,
        )
        if budget <= 0:
            raise LookOverran(0.0)
        try:
            return self._looks.run(look, timeout=budget)
        except (InvalidInputError, LookOverran):
            raise
        except Exception as exc:  # a broken judge must answer `error`, never pass or crash
            log.exception("analysis.judge.crashed", model=str(request.model))
            reason = f"the analysis failed unexpectedly ({type(exc).__name__}); see server logs"
            return failed_look(look, reason)


def _bake_elapsed(row: Row[Any], now: datetime) -> float | None:
    """The share of the session's bake gone by at ``now`` (``None`` without a bake)."""
    if row.bake_looks is None or row.bake_seconds is None:
        return None
    if row.bake_seconds <= 0:
        return 1.0
    return max((now - _aware(row.created_at)).total_seconds(), 0.0) / float(row.bake_seconds)


def _bake_json(row: Row[Any], now: datetime) -> dict[str, Any]:
    elapsed = _bake_elapsed(row, now)
    return {
        "looks": int(row.bake_looks),
        "seconds": float(row.bake_seconds),
        "elapsed": round(min(elapsed or 0.0, 1.0), 4),
        "horizon_reached": (elapsed or 0.0) >= 1.0,
    }


def _late_answer(row: Row[Any], seconds: float, alpha: float) -> dict[str, Any]:
    """The answer of a look that missed its deadline: the session's last decision, if any."""
    late = f"the fresh look did not finish within {seconds:.1f} s and was not counted"
    last = json.loads(row.last_result) if row.last_result is not None else None
    if last is not None and last.get("verdict") in ("pass", "fail"):
        warnings = [*last.get("warnings", []), f"{late}; this is look {row.looks}'s decision"]
        reason = f"{late}; the decision of look {row.looks} stands: {last.get('reason', '')}"
        return {**last, "reason": reason, "warnings": warnings}
    error = AnalysisResult(
        verdict=Verdict.ERROR, score=0.0, reason=f"{late}; no decision yet", metrics=(), alpha=alpha
    )
    return dict(json_safe(error.to_json()))


# Built once: a fresh look's statements differ only in their parameters, and building them per
# call (clauses coerced, cache keys generated) was a fifth of the look's database CPU (issue 20).
_t = analysis_sessions.c
_SESSION = select(analysis_sessions).where(
    _t.namespace == bindparam("b_namespace"),
    _t.model == bindparam("b_model"),
    _t.canary == bindparam("b_canary"),
    _t.baseline == bindparam("b_baseline"),
    _t.profile_key == bindparam("b_key"),
)
_SESSION_ID = _SESSION.with_only_columns(_t.id)
_SESSION_LOCK = {
    wait: DriverStatement(_SESSION.with_for_update(skip_locked=not wait)) for wait in (True, False)
}
_LOOK_COLUMNS = (
    "looks", "judge_state", "last_result", "last_verdict", "last_look_at", "updated_at", "rollout",
)  # fmt: skip
_UPDATE_LOOK = (
    update(analysis_sessions)
    .where(_t.id == bindparam("b_id"))
    .values({name: bindparam(f"s_{name}") for name in _LOOK_COLUMNS})
)
_UPDATE_LOOK_AND_BASE = _UPDATE_LOOK.values(look_base_seq=bindparam("s_look_base_seq"))


def _session_key(request: AnalysisRequest, key: str) -> dict[str, str]:
    """The parameters of ``_SESSION`` (and its variants) naming ``request``'s session."""
    return {
        "b_namespace": request.model.namespace,
        "b_model": request.model.name,
        "b_canary": request.canary,
        "b_baseline": request.baseline,
        "b_key": key,
    }


_DIGESTS: dict[int, tuple[LoadedProfile, str]] = {}


def _session_identity(request: AnalysisRequest, key: str) -> tuple[str, ...]:
    """Everything that names a session: the row's unique key, in memory."""
    m = request.model
    return (m.namespace, m.name, request.canary, request.baseline, key)


def _key(request: AnalysisRequest) -> str:
    # Profiles come from the catalog's cache, so the same object recurs: digest it once.
    hit = _DIGESTS.get(id(request.profile))
    if hit is None or hit[0] is not request.profile:
        if len(_DIGESTS) > 1000:
            _DIGESTS.clear()
        hit = _DIGESTS[id(request.profile)] = (request.profile, profile_digest(request.profile))
    digest = hit[1]
    if request.bake is not None:
        # Each step of a rollout (its weight) with its bake is its own sequential analysis.
        step = f"{digest}/{request.weight}/{request.bake.looks}/{request.bake.interval_seconds:g}"
        digest = hashlib.sha256(step.encode()).hexdigest()[:16]
    if request.baseline_offset is not None:
        # a before/after comparison is another analysis than the concurrent one
        shifted = f"{digest}/offset={request.baseline_offset.total_seconds():g}"
        digest = hashlib.sha256(shifted.encode()).hexdigest()[:16]
    return f"{request.profile_name[:128]}@{digest}"


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _insert_if_absent(conn: Connection, values: dict[str, Any]) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(analysis_sessions).values(values).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(analysis_sessions).values(values).on_conflict_do_nothing()
    return insert(analysis_sessions).values(values)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Last:
    """A session's last look, enough to answer from it."""

    session_id: int
    look: int
    window: TimeWindow
    result: dict[str, Any]

    def fresh(self, now: datetime, ttl: timedelta) -> bool:
        return ttl > timedelta(0) and now - self.window.end < ttl

    def is_of(self, row: Row[Any]) -> bool:
        """This is the last look ``row`` holds (same session, same look)."""
        return self.session_id == row.id and self.look == row.looks and row.last_result is not None

    @classmethod
    def of_row(cls, row: Row[Any]) -> _Last | None:
        if row.last_result is None or row.last_look_at is None:
            return None
        return cls(
            session_id=int(row.id),
            look=int(row.looks),
            window=TimeWindow(start=_aware(row.window_start), end=_aware(row.last_look_at)),
            result=json.loads(row.last_result),
        )

    @classmethod
    def of_answer(cls, answer: AnalysisAnswer) -> _Last:
        return cls(
            session_id=answer.session_id,
            look=answer.look,
            window=answer.window,
            result=answer.result,
        )


def _identity(
    request: AnalysisRequest, session_id: int, look: int, window: TimeWindow
) -> dict[str, Any]:
    return {
        "session": int(session_id),
        "look": look,
        "canary": request.canary,
        "baseline": request.baseline,
        "profile": request.profile_name,
        "profile_digest": _key(request).rsplit("@", 1)[1],
        "weight": request.weight,
        "rollout": request.rollout,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
    }


def _event(request: AnalysisRequest, actor: str, data: dict[str, Any]) -> LedgerEvent:
    return LedgerEvent(
        type=EventType.ANALYSIS_RECORDED,
        actor=actor,
        model=request.model,
        revision=request.canary,
        data=data,
    )
