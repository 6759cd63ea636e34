"""A realistic ledger for the page tests, written by the real rollout service and engine.

On 4 March 2026 (UTC):

* 02:00–02:06 rollout A promotes risk-prod/fraud-scorer from fraud-00001 to fraud-00002
  (10 → 25 → 50 → 100 %, regulated tier): the policy's ServiceNow change gate holds change
  request CHG0031337 with CAB approver carol.cab, and bob.approver gives the four-eyes approval;
* 02:20–02:21 rollout B tries fraud-00003, the judge says fail, the engine aborts it;
* 02:40–02:41 rollout C on risk-prod/limits-scorer is aborted by hand, by an actor and with a
  reason that both contain ``<script>`` (escaping);
* 02:50–02:56 rollout D promotes analytics/churn-model under CHG0099001, approved by
  yolanda.analytics: another tenant, which a risk-prod token must never see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.result import AnalysisResult, MetricResult
from analyzer.domain.rollout import Rollout, Step, StepPlan
from analyzer.domain.verdict import Classification, MetricKind, Verdict
from analyzer.ledger.store import Ledger
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import AnalysisOutcome
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import LedgerApprovals, PolicyGateChecker
from gates.base import GateContext, GateDecision, closed, opened
from gates.manual_approval import ApprovalRules, ManualApprovalGate
from gates.policy import MANUAL_APPROVAL, SERVICENOW_CHANGE, GatePolicyConfig

DAY = datetime(2026, 3, 4, tzinfo=UTC)
FRAUD = ModelRef(namespace="risk-prod", name="fraud-scorer")
LIMITS = ModelRef(namespace="risk-prod", name="limits-scorer")
CHURN = ModelRef(namespace="analytics", name="churn-model")
CR = "CHG0031337"
DIGEST = "sha256:" + "5e" * 32
ANALYTICS_CR = "CHG0099001"
CAB_APPROVER = "carol.cab"
ALICE = Actor(subject="alice", roles=frozenset({"operator"}))
BOB = Actor(subject="bob.approver", roles=frozenset({"approver"}))
ZED = Actor(subject="zed.analytics", roles=frozenset({"operator"}))
YOLANDA = Actor(subject="yolanda.analytics", roles=frozenset({"approver"}))
XSS_ACTOR = Actor(subject='eve<script>alert("actor")</script>', roles=frozenset({"operator"}))
XSS_REASON = '<script>alert("reason")</script> p99 latency regression'
FAILING_CANARY = "fraud-00003"
PLAN = StepPlan(
    steps=tuple(Step(weight=w, dwell=timedelta(minutes=2)) for w in (10, 25, 50, 100)),
    analysis_interval=timedelta(minutes=1),
    max_bake=timedelta(minutes=10),
)
# Strings that exist only in the analytics tenant's entries and rollouts.
ANALYTICS_MARKERS = ("analytics", "churn", ANALYTICS_CR, "yolanda", "zed.")


class SeedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class VerdictByCanary:
    """Passes every canary except ``FAILING_CANARY``; results carry three judged metrics with
    the estimate and statistic layout of the real judge (``analyzer/judge``), so the charts
    and evidence tables have numbers to draw. The intervals narrow with each look."""

    def __init__(self) -> None:
        self.looks: dict[str, int] = {}

    def analyze(self, rollout: Rollout, *, since: datetime, now: datetime) -> AnalysisOutcome:
        look = self.looks[rollout.id] = self.looks.get(rollout.id, 0) + 1
        failing = rollout.canary_revision == FAILING_CANARY
        verdict = Verdict.FAIL if failing else Verdict.PASS
        errors = MetricResult(
            name="error_rate",
            kind=MetricKind.PROPORTION,
            verdict=verdict,
            classification=Classification.HIGH if failing else Classification.PASS,
            reason="canary 2.1 % vs baseline 0.4 %" if failing else "within 0.1 pp of baseline",
            n_baseline=90_000,
            n_canary=10_000,
            critical=True,
            estimate=error_estimate(look, failing),
            statistic=sequential_statistic(
                e_value=ERROR_FAIL_E_VALUE if failing else round(0.8 / look, 6),
                tolerance=0.001,
                decided_look=look if failing else None,
                events={"baseline": 360, "canary": 210 if failing else 41},
            ),
        )
        latency = MetricResult(
            name="latency_p99",
            kind=MetricKind.HISTOGRAM,
            verdict=Verdict.PASS,
            classification=Classification.PASS,
            reason="p99 7.1 ms vs 7.0 ms",
            n_baseline=90_000,
            n_canary=10_000,
            estimate=LATENCY_ESTIMATE,
            statistic=sequential_statistic(
                e_value=round(0.5 / look, 6), tolerance=0.1, decided_look=None
            ),
        )
        mix = MetricResult(
            name="decision_mix",
            kind=MetricKind.CATEGORICAL,
            verdict=Verdict.PASS,
            classification=Classification.PASS,
            reason="largest share change in 'review'",
            n_baseline=90_000,
            n_canary=10_000,
            estimate={
                "baseline_shares": {"approve": 0.8, "review": 0.15, "decline": 0.05},
                "canary_shares": {"approve": 0.79, "review": 0.16, "decline": 0.05},
                "psi": 0.00082,
                "intervals": {},
            },
            statistic=sequential_statistic(e_value=0.39, tolerance=None, decided_look=None),
        )
        result = AnalysisResult(
            verdict=verdict,
            score=0.0 if failing else 100.0,
            alpha=0.05,
            reason="error_rate failed" if failing else "all metrics pass",
            metrics=(latency, errors, mix),
        )
        return AnalysisOutcome(result=result, judge_state={"looks": 1})


ERROR_FAIL_E_VALUE = 95.5
LATENCY_ESTIMATE: dict[str, Any] = {
    "p50": {"baseline": 3.1, "canary": 3.15, "baseline_ci": [3.05, 3.16],
            "canary_ci": [3.0, 3.3], "ratio": 1.016},
    "p90": {"baseline": 5.2, "canary": 5.3, "baseline_ci": [5.1, 5.3],
            "canary_ci": [5.0, 5.6], "ratio": 1.019},
    "p99": {"baseline": 7.0, "canary": 7.1, "baseline_ci": [6.8, 7.2],
            "canary_ci": [6.7, 7.6], "ratio": 1.014},
    "intervals": {"shift": [-0.05, 0.03], "tail_q0.9": [-0.04, 0.05]},
}  # fmt: skip


def error_estimate(look: int, failing: bool) -> dict[str, Any]:
    base, canary = 0.004, 0.021 if failing else 0.0041
    half = round(0.0008 / look**0.5, 6)  # inside the 0.1 pp tolerance when passing
    diff = round(canary - base, 6)
    return {
        "baseline_rate": base,
        "canary_rate": canary,
        "diff": diff,
        "relative_risk": round(canary / base, 4),
        "intervals": {"rate": [round(diff - half, 6), round(diff + half, 6)]},
    }


def sequential_statistic(
    *, e_value: float, tolerance: float | None, decided_look: int | None, **more: Any
) -> dict[str, Any]:
    return {
        "method": "e-process",
        "e_value": e_value,
        "threshold": 60.0,
        "alpha": 0.0166666667,
        "tolerance": tolerance,
        "decided_look": decided_look,
        **more,
    }


class ChangeRequestGate:
    """The ServiceNow change gate's decisions, with the evidence layout of
    ``gates/servicenow/gate.py``, without a ServiceNow."""

    name = SERVICENOW_CHANGE

    def check(self, context: GateContext) -> GateDecision:
        number = context.change_request
        if number is None:
            return closed(self.name, context, "the rollout names no change request")
        evidence = {
            "change_request": number,
            "state": "-1",
            "state_display": "Implement",
            "approval": "approved",
            "approvers": [CAB_APPROVER],
        }
        reason = f"change request {number} is approved, implementable and in its planned window"
        return opened(self.name, context, reason, evidence)


@dataclass(frozen=True, kw_only=True)
class Seeded:
    promoted: str  # rollout ids
    failed_canary: str
    hand_aborted: str
    analytics: str
    entries: int


class _Rig:
    def __init__(self, engine: Engine) -> None:
        self.clock = SeedClock(DAY.replace(hour=2))
        self.ledger = Ledger(engine, clock=self.clock)
        self.target = InMemoryTarget()
        self.target.add_model(FRAUD, stable_revision="fraud-00001", canary_revision="fraud-00002")
        self.target.add_model(
            LIMITS, stable_revision="limits-00001", canary_revision="limits-00002"
        )
        self.target.add_model(CHURN, stable_revision="churn-00001", canary_revision="churn-00002")
        gates = {
            SERVICENOW_CHANGE: ChangeRequestGate(),
            MANUAL_APPROVAL: ManualApprovalGate(
                LedgerApprovals(self.ledger), rules=ApprovalRules()
            ),
        }
        self.service = RolloutService(engine, self.ledger, self.target, clock=self.clock)
        self.engine = RolloutEngine(
            engine,
            self.ledger,
            self.target,
            VerdictByCanary(),
            PolicyGateChecker(GatePolicyConfig(), gates),
            clock=self.clock,
            replica_id="seed",
        )

    def at(self, hour: int, minute: int) -> None:
        self.clock.now = DAY.replace(hour=hour, minute=minute)

    def tick_until(self, hour: int, minute: int) -> None:
        """One engine tick per minute from now up to and including ``hour:minute``."""
        end = DAY.replace(hour=hour, minute=minute)
        while self.clock.now <= end:
            self.engine.tick()
            self.clock.now += timedelta(minutes=1)

    def start(self, model: ModelRef, canary: str, baseline: str, actor: Actor, **more: str) -> str:
        request = StartRollout(
            model=model,
            tier=Tier.REGULATED,
            baseline_revision=baseline,
            canary_revision=canary,
            profile="fraud",
            plan=PLAN,
            change_request=more.get("cr"),
            artifact_uri=more.get("artifact"),
            model_version=more.get("version"),
            artifact_digest=more.get("digest"),
        )
        return self.service.start(request, actor).id


def seed_history(engine: Engine) -> Seeded:
    rig = _Rig(engine)
    promoted = rig.start(
        FRAUD, "fraud-00002", "fraud-00001", ALICE, cr=CR, artifact="s3://models/fraud-scorer/2",
        version="2.0.1", digest=DIGEST,
    )  # fmt: skip
    rig.tick_until(2, 2)
    rig.service.approve(promoted, BOB, "backtest and CAB minutes reviewed")
    rig.tick_until(2, 8)

    rig.at(2, 20)
    rig.target.deploy_canary(FRAUD, FAILING_CANARY)
    failed = rig.start(FRAUD, FAILING_CANARY, "fraud-00002", ALICE, cr="CHG0031400")
    rig.tick_until(2, 22)

    rig.at(2, 40)
    aborted = rig.start(LIMITS, "limits-00002", "limits-00001", ALICE, cr="CHG0031500")
    rig.tick_until(2, 40)
    rig.service.abort(aborted, XSS_ACTOR, XSS_REASON)

    rig.at(2, 50)
    analytics = rig.start(CHURN, "churn-00002", "churn-00001", ZED, cr=ANALYTICS_CR)
    rig.tick_until(2, 52)
    rig.service.approve(analytics, YOLANDA, "analytics CAB")
    rig.tick_until(2, 58)
    return Seeded(
        promoted=promoted,
        failed_canary=failed,
        hand_aborted=aborted,
        analytics=analytics,
        entries=rig.ledger.head()[0],
    )
