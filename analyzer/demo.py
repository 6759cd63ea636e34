"""``canary-analyzer demo``: two driven canaries on the embedded default, end to end.

A good canary of ``demo/fraud-scorer`` walks 10 → 25 → 50 → 100 % and is promoted; a bad canary
of ``demo/credit-decision`` (5 % of requests 3× slower, errors 0.2 % → 1 %) is aborted to 0 % at
the first look where the judge says fail. Evidence comes from the seeded synthetic source, whose
traffic split follows what the in-memory target really serves; time runs on the wall clock,
compressed (seconds per step instead of minutes) by a high simulated request rate.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.config import Settings
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.observation import Observation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.rollout import Rollout, Step, StepPlan
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.targets.base import TrafficState
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import build_service
from gates.change_window import ChangeWindowGate, FreezeCalendar
from gates.policy import CHANGE_WINDOW

DEMO_PROFILE = """
name: demo
alpha: 0.05
metrics:
  - name: latency
    kind: histogram
    direction: increase
    tolerance: 0.10
    critical: true
    query: {selector: 'request_latency_ms_bucket{revision="{revision}"}', unit_scale: 0.001}
  - name: errors
    kind: proportion
    direction: increase
    tolerance: 0.002
    critical: true
    query:
      events: 'requests_total{revision="{revision}",code="5xx"}'
      total: 'requests_total{revision="{revision}"}'
  - name: decisions
    kind: categorical
    categories: [approve, review, decline]
    ordered: true
    tolerance: 0.02
    query: {selector: 'decisions_total{revision="{revision}"}', category_label: decision}
"""

GOOD = RevisionBehaviour(latency_median_ms=40.0, error_rate=0.002)
BAD = replace(GOOD, tail_fraction=0.05, tail_factor=3.0, error_rate=0.01)
STEP_SECONDS = 3


def demo_plan(step_seconds: int = STEP_SECONDS) -> StepPlan:
    """10 → 25 → 50 → 100 %, each step dwelling ``step_seconds`` of wall time, a look a second."""
    return StepPlan(
        steps=tuple(
            Step(weight=w, dwell=timedelta(seconds=step_seconds)) for w in (10, 25, 50, 100)
        ),
        analysis_interval=timedelta(seconds=1),
        max_bake=timedelta(seconds=60),
    )


# Printed after a successful demo: what a newcomer does next (README "Quick start").
NEXT_STEPS = """
Next steps (the ledger above stays in the same database):
  1. a token for the web pages and the API, admitted for a serve started from this shell:
       eval "$(canary-analyzer token create --subject me --role admin --output shell)"
  2. the API and the pages (plain HTTP on your workstation, hence the cookie setting):
       CANARY_ANALYZER_API__UI__COOKIE_SECURE=false canary-analyzer serve
     then open http://127.0.0.1:8080/ui/ and sign in with $CANARY_ANALYZER_TOKEN
  3. the record of what happened:
       canary-analyzer ledger export --model demo/credit-decision
  4. judge your own numbers (examples and the format in docs/examples/):
       canary-analyzer judge docs/examples/judge/healthy-canary.json
"""
OPERATOR = Actor(subject="demo-operator", roles=frozenset({"operator"}))


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoModel:
    ref: ModelRef
    stable: str
    canary: str
    canary_behaviour: RevisionBehaviour
    model_version: str  # the canary's registry version, as a change request would name it
    artifact_digest: str


MODELS = (
    DemoModel(ref=ModelRef(namespace="demo", name="fraud-scorer"), stable="fraud-scorer-00001",
              canary="fraud-scorer-00002", canary_behaviour=GOOD, model_version="17",
              artifact_digest="sha256:" + hashlib.sha256(b"fraud-scorer 17").hexdigest()),
    DemoModel(ref=ModelRef(namespace="demo", name="credit-decision"),
              stable="credit-decision-00007", canary="credit-decision-00008",
              canary_behaviour=BAD, model_version="3.2.1",
              artifact_digest="sha256:" + hashlib.sha256(b"credit-decision 3.2.1").hexdigest()),
)  # fmt: skip


class RecordingTarget(InMemoryTarget):
    """The in-memory target, remembering when each model's canary weight changed."""

    def __init__(self, origin: datetime) -> None:
        super().__init__()
        self._origin = origin
        self.schedules: dict[ModelRef, list[tuple[float, float]]] = {}

    def _record(self, ref: ModelRef) -> None:
        elapsed = (datetime.now(UTC) - self._origin).total_seconds()
        weight = self.read_weight(ref).canary_weight / 100
        self.schedules.setdefault(ref, []).append((elapsed, weight))

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        state = super().set_weight(ref, weight)
        self._record(ref)
        return state

    def abort(self, ref: ModelRef) -> TrafficState:
        state = super().abort(ref)
        self._record(ref)
        return state


class FollowTheTarget:
    """A synthetic source whose per-revision traffic follows the target's recorded splits."""

    def __init__(self, target: RecordingTarget, origin: datetime, request_rate: float) -> None:
        self._target = target
        self._origin = origin
        self._rate = request_rate

    def observe(
        self, spec: MetricSpec, query: MetricQuery, *, model: ModelRef, baseline: str,
        canary: str, window: TimeWindow,
    ) -> Observation:  # fmt: skip
        demo = next(m for m in MODELS if m.ref == model)
        schedule = tuple(self._target.schedules.get(model, ()))
        stable_share = tuple((t, 1 - w) for t, w in schedule)
        behaviours = {
            baseline: replace(GOOD, weight=1.0, weight_schedule=stable_share),
            canary: replace(demo.canary_behaviour, weight=0.0, weight_schedule=schedule),
        }
        source = SyntheticSource(seed=20261127, origin=self._origin, revisions=behaviours,
                                 request_rate=self._rate, tick_seconds=0.25)  # fmt: skip
        return source.observe(spec, query, model=model, baseline=baseline, canary=canary,
                              window=window)  # fmt: skip


def run_demo(
    settings: Settings, echo: Callable[[str], None] = print, *, step_seconds: int = STEP_SECONDS
) -> int:
    """Run both canaries to their end; return 0 when the good one was promoted and the bad one
    aborted, 1 otherwise."""
    origin = datetime.now(UTC)
    target = RecordingTarget(origin)
    for demo in MODELS:
        target.add_model(demo.ref, stable_revision=demo.stable)
        target.deploy_canary(demo.ref, demo.canary)
    profile_dir = Path(tempfile.mkdtemp(prefix="canary-demo-"))
    (profile_dir / "demo.yaml").write_text(DEMO_PROFILE, encoding="utf-8")
    profiles = ProfileCatalog(profile_dir)
    source = FollowTheTarget(target, origin, request_rate=80_000.0)
    # The standard tier needs the change window before 100 %: the demo's calendar has no
    # freeze in force, so the gate opens and its decision is recorded like any other.
    gates = {CHANGE_WINDOW: ChangeWindowGate(FreezeCalendar(timezone="UTC"))}
    service = build_service(settings, target=target, source=source, profiles=profiles, gates=gates)
    try:
        plan = demo_plan(step_seconds)
        started = [_start(service.rollouts, demo, echo, plan) for demo in MODELS]
        _drive(service, started, echo)
        finals = [service.rollouts.get(r.id) for r in started]
        for final in finals:
            echo(f"{final.model}: {final.state.value} — {final.reason}")
        report = service.ledger.verify()
        echo(report.summary())
        fraud = service.ledger.serving_at(MODELS[0].ref, datetime.now(UTC))
        echo(f"serving {MODELS[0].ref} now: "
             + ", ".join(f"{r.revision} {r.weight:g} %" for r in fraud.revisions))  # fmt: skip
        ok = [f.state.value for f in finals] == ["promoted", "aborted"] and report.intact
        if ok:
            echo(NEXT_STEPS)
        return 0 if ok else 1
    finally:
        service.close()
        shutil.rmtree(profile_dir, ignore_errors=True)


def _start(
    rollouts: object, demo: DemoModel, echo: Callable[[str], None], plan: StepPlan
) -> Rollout:
    request = StartRollout(
        model=demo.ref, tier=Tier.STANDARD, baseline_revision=demo.stable,
        canary_revision=demo.canary, profile="demo", plan=plan,
        artifact_uri=f"s3://models/{demo.ref.name}/{demo.canary}",
        model_version=demo.model_version, artifact_digest=demo.artifact_digest,
    )  # fmt: skip
    rollout: Rollout = rollouts.start(request, OPERATOR)  # type: ignore[attr-defined]
    echo(f"{demo.ref}: rollout {rollout.id} started, {demo.stable} → {demo.canary} "
         f"(model version {demo.model_version})")  # fmt: skip
    return rollout


def _drive(service: object, started: list[Rollout], echo: Callable[[str], None]) -> None:
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        service.rollout_engine.tick()  # type: ignore[attr-defined]
        states = [service.rollouts.get(r.id) for r in started]  # type: ignore[attr-defined]
        for rollout in states:
            entries = service.ledger.events(  # type: ignore[attr-defined]
                rollout_id=rollout.id, event_types=[EventType.TRAFFIC_CHANGED], limit=100
            ).entries
            for entry in entries[seen.get(rollout.id, 0) :]:
                echo(f"{rollout.model}: canary at {entry.data()['canary_weight']} % "
                     f"({entry.data()['cause']})")  # fmt: skip
            seen[rollout.id] = len(entries)
        if all(r.state.terminal for r in states):
            return
        time.sleep(0.25)
