"""The one place that builds concrete sources, targets, gates and services from settings.

Nothing here runs at import time: ``build_service`` is called by ``serve``, ``demo`` and tests,
and every piece it builds can be replaced by passing it in (a test hands in an in-memory target
or a synthetic source; production gets them from settings).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.looks import LookInput, LookRunner, ProcessLooks, ThreadLooks
from analyzer.config import Settings
from analyzer.config_secrets import FileSecret
from analyzer.db import ensure_schema_current, make_engine
from analyzer.domain.events import EventType
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.observation import MissingObservation, Observation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.rollout import Rollout, Strategy
from analyzer.fleets.ports import WaveGateCheck, WaveGateRequest
from analyzer.judge import JudgeState
from analyzer.ledger.evaluations import evaluation_entries
from analyzer.ledger.store import Clock, Ledger, utc_now
from analyzer.logging import configure_logging
from analyzer.metrics.base import MetricQuery, MetricSource, QueryLanguage, TimeWindow
from analyzer.metrics.prometheus import PrometheusClient, PrometheusSource, RetryPolicy
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.registry.base import ModelRegistry
from analyzer.rollouts.aliases import RegistryAliases
from analyzer.rollouts.challengers import ChallengerPoller, ChallengerWatch
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import AnalysisOutcome, GateCheck
from analyzer.rollouts.repository import plan_from_json
from analyzer.rollouts.service import RolloutService
from analyzer.stats import lazy_special
from analyzer.targets.base import MirrorTarget, TrafficTarget
from analyzer.targets.memory.target import InMemoryTarget
from gates.base import GateContext, PromotionGate, check_safely
from gates.change_window import ChangeWindowGate
from gates.evaluation import EvaluationGate, EvaluationResult
from gates.manual_approval import ApprovalRecord, ApprovalRules, ManualApprovalGate
from gates.policy import (
    CHANGE_WINDOW,
    EVALUATION,
    MANUAL_APPROVAL,
    SERVICENOW_CHANGE,
    GatePolicyConfig,
    evaluate_gates,
)
from gates.servicenow import (
    BasicCredentials,
    Credentials,
    OAuth2Credentials,
    ServiceNowChangeGate,
    ServiceNowTableClient,
)
from gates.shadow import SHADOW, ShadowGate, ShadowVerdict
from gates.signature import SIGNATURE, SignatureGate, SignatureMaterial

if TYPE_CHECKING:
    from analyzer.fleets.engine import FleetEngine
    from analyzer.metrics.datadog import DatadogSource
    from analyzer.observer import TrafficObserver
    from analyzer.registry.mlflow import MlflowRegistry
    from analyzer.targets.kube import KubeConnectionSettings

# The integrations a setting may not ask for (the Kubernetes client and the targets over it,
# the fleet engine, the observer, Datadog, MLflow) are imported by the builder that needs
# them, not here: `serve` with the embedded default or Prometheus alone never loads them
# (the Kubernetes client alone is ~0.2 s of start-up CPU; docs/benchmarks.md, Start-up), and
# neither do the look worker processes, which import this module for `worker_source`.


class ProfileAnalyzer:
    """Judges a rollout with its profile's metrics from a metric source (``RolloutAnalyzer``).

    Every judged step (each weight below 100 %) is its own sequential analysis on the evidence
    since that step began, with the profile's alpha split evenly across the judged steps: the
    false-abort rate of a whole rollout stays at or below the profile's alpha (Bonferroni over
    steps, each step anytime-valid), and the expected split is known, so the judge's sample-ratio
    check can use it.

    Each step is bake-aware: its bake is the step's dwell (at least two analysis intervals, and
    ending an interval before ``max_bake``, by which a step without a pass fails), so a healthy
    canary passes by the end of its dwell and a step moves on at its dwell.
    """

    def __init__(self, profiles: ProfileCatalog, looks: LookRunner) -> None:
        self._profiles = profiles
        self._looks = looks

    def analyze(self, rollout: Rollout, *, since: datetime, now: datetime) -> AnalysisOutcome:
        _, loaded = self._profiles.resolve(rollout.profile)
        judged_steps = sum(1 for step in rollout.plan.steps if step.weight < 100)
        weight = rollout.canary_weight
        canary_share = weight / 100 if 0 < weight < 100 else loaded.profile.canary_weight
        if rollout.strategy is not Strategy.CANARY:
            # no split to check: a shadow's copies may be shed by the mesh, a cut serves 100 %
            canary_share = None
        profile = replace(
            loaded.profile,
            alpha=loaded.profile.alpha / max(1, judged_steps),
            canary_weight=canary_share,
            bake_elapsed=_step_bake_elapsed(rollout, since=since, now=now),
        )
        offset = None
        if rollout.strategy is Strategy.BLUE_GREEN:
            offset = rollout.plan.verification_offset
        state = JudgeState.from_json(rollout.judge_state) if rollout.judge_state else JudgeState()
        result, new_state = self._looks.run(
            LookInput(
                profile=profile, queries=loaded.queries, model=rollout.model,
                baseline=rollout.baseline_revision, canary=rollout.canary_revision,
                window=TimeWindow.since(since, now), state=state, baseline_offset=offset,
            )
        )  # fmt: skip
        return AnalysisOutcome(result=result, judge_state=new_state.to_json())


def _step_bake_elapsed(rollout: Rollout, *, since: datetime, now: datetime) -> float | None:
    """The share of the current step's bake gone by (``None`` outside a step)."""
    plan = rollout.plan
    if not 0 <= rollout.step_index < len(plan.steps):
        return None
    seconds = plan.bake(rollout.step_index).total_seconds()
    return 1.0 if seconds <= 0 else max((now - since).total_seconds(), 0.0) / seconds


class LedgerApprovals:
    """Approvals as the ledger recorded them (``gates.manual_approval.ApprovalSource``)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def approvals_for(self, rollout_id: str) -> Sequence[ApprovalRecord]:
        page = self._ledger.events(
            rollout_id=rollout_id, event_types=[EventType.APPROVAL_GIVEN], limit=1000
        )
        return [
            ApprovalRecord(
                rollout_id=rollout_id,
                step=int(e.data()["step"]),
                approver=e.actor,
                roles=frozenset(e.data().get("roles", ())),
                approved_at=e.recorded_at,
                comment=str(e.data().get("comment", "")),
            )
            for e in page.entries
        ]


class LedgerShadowVerdicts:
    """Shadow runs' verdicts as the ledger recorded them (``gates.shadow.ShadowVerdictSource``):
    the model's ``shadow_judged`` entries of the asked version, newest first (bounded)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def verdicts_for(self, model: ModelRef, model_version: str) -> Sequence[ShadowVerdict]:
        page = self._ledger.events(
            model=model, event_types=[EventType.SHADOW_JUDGED], limit=1000, newest_first=True
        )
        return [
            ShadowVerdict(
                seq=e.seq,
                model=model,
                model_version=model_version,
                passed=e.data().get("verdict") == "passed",
                recorded_at=e.recorded_at,
                rollout_id=e.rollout_id,
                artifact_digest=e.data().get("artifact_digest"),
                reason=str(e.data().get("reason", "")),
            )
            for e in page.entries
            if e.data().get("model_version") == model_version
        ]


class LedgerEvaluations:
    """CI's evaluation results as the ledger recorded them (``gates.evaluation.EvaluationSource``).

    Reads the model's ``evaluation_recorded`` entries (recorded through
    ``POST /api/v1/evaluations``) and keeps those of the asked version.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def results_for(self, model: ModelRef, model_version: str) -> Sequence[EvaluationResult]:
        results = []
        for e in evaluation_entries(self._ledger, model, model_version=model_version):
            data = e.data()
            results.append(
                EvaluationResult(
                    seq=e.seq, model=model, model_version=str(data["model_version"]),
                    suite=str(data["suite"]), passed=data["passed"] is True,
                    recorded_at=e.recorded_at, recorded_by=e.actor,
                    metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
                    report_url=data.get("report_url"), commit=data.get("commit"),
                    artifact_digest=data.get("artifact_digest"),
                )
            )  # fmt: skip
        return results


class LedgerSignatures:
    """The signature material recorded when a rollout started (``gates.signature.SignatureSource``):
    the registry's signature tag and digest, or the signature the start request carried."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def material_for(self, context: GateContext) -> SignatureMaterial:
        page = self._ledger.events(
            rollout_id=context.rollout_id, event_types=[EventType.REVISION_REGISTERED], limit=1
        )
        if not page.entries:
            return SignatureMaterial(signature=None, registry_digest=None)
        data = page.entries[0].data()
        found = data.get("registry")
        registry: dict[str, Any] = found if isinstance(found, dict) else {}
        if data.get("signature"):
            signature, source = str(data["signature"]), "request"
        elif registry.get("signature"):
            signature, source = str(registry["signature"]), "registry"
        else:
            signature, source = None, None
        digest = registry.get("digest")
        bundle = data.get("sigstore_bundle")
        return SignatureMaterial(
            signature=signature, registry_digest=str(digest) if digest else None, source=source,
            bundle=json.dumps(bundle) if isinstance(bundle, dict) else None,
        )  # fmt: skip


class PolicyGateChecker:
    """Asks the gates the model's tier policy requires for a step (``GateChecker``)."""

    def __init__(self, policy: GatePolicyConfig, gates: Mapping[str, PromotionGate]) -> None:
        self._policy = policy
        self._gates = gates

    def check(self, rollout: Rollout, *, target_step: int, now: datetime) -> GateCheck:
        context = GateContext(
            model=rollout.model, tier=rollout.tier, rollout_id=rollout.id,
            canary_revision=rollout.canary_revision, target_step=target_step,
            target_weight=rollout.serving_weight_at(target_step), initiator=rollout.initiator,
            now=now, change_request=rollout.change_request,
            # The registry version, never the revision name: nobody filing a change request
            # knows the revision KServe will create. Without one the ServiceNow gate is closed
            # (when a version field is configured) and says to start with model_version.
            canary_version=rollout.model_version, artifact_digest=rollout.artifact_digest,
        )  # fmt: skip
        policy = self._policy.policy_for(rollout.model, rollout.tier)
        evaluation = evaluate_gates(policy, self._gates, context)
        return GateCheck(
            open=evaluation.open, reason=evaluation.reason, evidence=evaluation.to_json()
        )


def approval_steps_of(policy: GatePolicyConfig) -> Callable[[Rollout], Sequence[int]]:
    """The plan steps before which the manual-approval gate reads approvals, per the rollout's
    model and tier policy: what ``RolloutService.approve`` records approvals for."""

    def steps(rollout: Rollout) -> Sequence[int]:
        weights = [rollout.serving_weight_at(i) for i in range(len(rollout.plan.steps))]
        return policy.policy_for(rollout.model, rollout.tier).steps_requiring(
            MANUAL_APPROVAL, weights
        )

    return steps


@dataclass
class Service:
    """Everything a running canary-analyzer process uses, built once."""

    settings: Settings
    engine: Engine
    ledger: Ledger
    target: TrafficTarget
    source: MetricSource
    looks: LookRunner  # where fresh looks run (this process's threads or worker processes)
    profiles: ProfileCatalog
    rollouts: RolloutService
    rollout_engine: RolloutEngine
    gates: PolicyGateChecker
    gate_map: Mapping[str, PromotionGate]
    challengers: ChallengerPoller | None = None  # registry.watch configured
    closables: list[Any] = field(default_factory=list)
    fleets: FleetEngine | None = None  # fleet rollouts: Prometheus + a cluster (docs/fleets.md)

    def close(self) -> None:
        for item in self.closables:
            item.close()
        self.engine.dispose()


def kube_connection(settings: Settings) -> KubeConnectionSettings:
    from analyzer.targets.kube import KubeConnectionSettings  # noqa: PLC0415 -- see the top

    kube = settings.kubernetes
    return KubeConnectionSettings(
        in_cluster=kube.in_cluster or None,
        kubeconfig=str(kube.kubeconfig) if kube.kubeconfig else None,
        context=kube.context,
    )


def build_observer(
    settings: Settings,
    service: Service,
    *,
    registry: CollectorRegistry | None = None,
    api_client: Any = None,
) -> TrafficObserver | None:
    """The traffic observer when the settings enable it (not started), else None."""
    if not settings.observer_enabled():
        return None
    from analyzer.observer import ObservedTrafficRecorder, TrafficObserver  # noqa: PLC0415
    from analyzer.targets.kube import build_api_client  # noqa: PLC0415

    config = settings.observer
    client = api_client or build_api_client(kube_connection(settings))
    recorder = ObservedTrafficRecorder(service.engine, service.ledger)
    return TrafficObserver(
        client, recorder, kinds=config.kinds, namespaces=config.namespaces,
        registry=registry, timeout_seconds=config.watch_timeout_seconds,
    )  # fmt: skip


def build_target(settings: Settings) -> TrafficTarget:
    """The configured traffic target. With ``argo``, Argo Rollouts own their steps: the service
    serves the web-provider endpoint and can abort/promote, and a driven rollout fails at its
    first step with the target's reason (set_weight is refused) rather than pretending."""
    if settings.traffic_target == "memory":
        return InMemoryTarget()
    from analyzer.targets.argo import ArgoRolloutTarget  # noqa: PLC0415 -- see the top
    from analyzer.targets.kserve import KServeTarget  # noqa: PLC0415
    from analyzer.targets.kube import build_api_client  # noqa: PLC0415

    connection = kube_connection(settings)
    if settings.traffic_target == "kserve":
        return KServeTarget(build_api_client(connection))
    return ArgoRolloutTarget(build_api_client(connection))


class FleetWaveGates:
    """Asks a fleet wave's gates (by name, from the configured gates): all must be open.

    The context a gate sees: the fleet as the model (``NAMESPACE/FLEET-NAME``, tier long-tail),
    the fleet rollout's id, the new version as the canary, the wave as the step and its
    cumulative percentage as the weight, the fleet's change request. A gate named and not
    configured is closed.
    """

    def __init__(self, gates: Mapping[str, PromotionGate]) -> None:
        self._gates = gates

    def check(self, request: WaveGateRequest) -> WaveGateCheck:
        context = GateContext(
            model=ModelRef(namespace=request.namespace, name=request.name), tier=Tier.LONG_TAIL,
            rollout_id=request.fleet_id or "not-started", canary_revision=request.version,
            target_step=request.wave, target_weight=round(request.percent),
            initiator=request.initiator, now=request.now, change_request=request.change_request,
        )  # fmt: skip
        decisions = []
        for name in request.gates:
            gate = self._gates.get(name)
            if gate is None:
                return WaveGateCheck(open=False, reason=f"gate {name} is not configured")
            decisions.append(check_safely(gate, context))
        closed = [d for d in decisions if not d.open]
        reason = "; ".join(f"{d.gate}: {d.reason}" for d in closed) or "all gates open"
        return WaveGateCheck(
            open=not closed, reason=reason, evidence={"gates": [d.to_json() for d in decisions]}
        )


def build_fleets(
    settings: Settings,
    engine: Engine,
    ledger: Ledger,
    closables: list[Any],
    clock: Clock,
    *,
    gates: Mapping[str, PromotionGate] | None = None,
) -> FleetEngine | None:
    """The fleet engine when the service reads Prometheus and reaches a cluster (ModelMesh
    InferenceServices there); None otherwise (the fleet routes then answer 404)."""
    if settings.metric_source != "prometheus" or settings.traffic_target == "memory":
        return None
    from analyzer.fleets.engine import FleetEngine  # noqa: PLC0415 -- see the top
    from analyzer.metrics.prometheus.fleet import PrometheusFleetSource  # noqa: PLC0415
    from analyzer.targets.kube import build_api_client  # noqa: PLC0415
    from analyzer.targets.modelmesh import ModelMeshTarget  # noqa: PLC0415

    http = httpx.Client()
    closables.append(http)
    client = PrometheusClient(
        base_url=settings.prometheus.url, http=http,
        timeout=settings.prometheus.timeout_seconds,
        retry=RetryPolicy(attempts=settings.prometheus.retries + 1),
    )  # fmt: skip
    target = ModelMeshTarget(build_api_client(kube_connection(settings)))
    return FleetEngine(
        db=engine, ledger=ledger, source=PrometheusFleetSource(client), target=target, clock=clock,
        gates=FleetWaveGates(gates or {}),
    )  # fmt: skip


def build_mirror(settings: Settings, target: TrafficTarget) -> MirrorTarget | None:
    """Where shadow runs mirror requests (``mirror_target``), or None: shadow runs refused."""
    if settings.mirror_target == "istio":
        from analyzer.targets.istio import (  # noqa: PLC0415 -- see the top
            IstioMirrorSettings,
            IstioMirrorTarget,
        )
        from analyzer.targets.kube import build_api_client  # noqa: PLC0415

        istio = settings.istio
        return IstioMirrorTarget(
            build_api_client(kube_connection(settings)),
            settings=IstioMirrorSettings(
                virtual_service=istio.virtual_service, route_name=istio.route_name,
                mirror_host=istio.mirror_host,
            ),
        )  # fmt: skip
    if settings.mirror_target == "auto" and isinstance(target, MirrorTarget):
        return target  # the in-memory target mirrors for itself
    return None


def build_source(
    settings: Settings, closables: list[Any], *, target: TrafficTarget | None = None
) -> MetricSource:
    """The configured metric source. The synthetic one follows ``target``'s split when the
    target is the in-memory one (``AnyRevisionSynthetic``)."""
    if settings.metric_source == "prometheus":
        # no httpx client: the source keeps its own (kept-alive http.client connections for a
        # plain-HTTP URL, a fifth of httpx's CPU per query: issue 20)
        source = PrometheusSource(
            base_url=settings.prometheus.url,
            timeout=settings.prometheus.timeout_seconds,
            retry=RetryPolicy(attempts=settings.prometheus.retries + 1),
        )
        closables.append(source)
        return source
    if settings.metric_source == "datadog":
        return build_datadog_source(settings, closables)
    return AnyRevisionSynthetic(
        origin=utc_now() - timedelta(hours=1),
        shares=target.share_of if isinstance(target, InMemoryTarget) else None,
        srm_canary_share=settings.synthetic.srm_canary_share,
    )


class LanguageRoutedSource:
    """A ``MetricSource`` that hands each query to the source of its language (a backtest may
    compare a PromQL profile with a Datadog one over the same canaries)."""

    def __init__(self, sources: Mapping[QueryLanguage, MetricSource]) -> None:
        self._sources = dict(sources)

    def observe(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        *,
        model: ModelRef,
        baseline: str,
        canary: str,
        window: TimeWindow,
    ) -> Observation:
        source = self._sources.get(query.language)
        if source is None:
            return MissingObservation(
                reason=f"{spec.name}: no {query.language.value} source configured",
                source_error=True,
            )
        return source.observe(
            spec, query, model=model, baseline=baseline, canary=canary, window=window
        )


def build_backtest_source(
    settings: Settings,
    languages: set[QueryLanguage],
    closables: list[Any],
    *,
    prometheus_url: str | None = None,
) -> MetricSource:
    """The sources a backtest's profiles read: Prometheus (``prometheus_url`` or settings) for
    PromQL queries, the configured Datadog account for Datadog ones."""
    sources: dict[QueryLanguage, MetricSource] = {}
    if QueryLanguage.PROMQL in languages:
        client = httpx.Client()
        closables.append(client)
        sources[QueryLanguage.PROMQL] = PrometheusSource(
            base_url=prometheus_url or settings.prometheus.url, http=client,
            timeout=settings.prometheus.timeout_seconds,
            retry=RetryPolicy(attempts=settings.prometheus.retries + 1),
        )  # fmt: skip
    if QueryLanguage.DATADOG in languages:
        sources[QueryLanguage.DATADOG] = build_datadog_source(settings, closables)
    return LanguageRoutedSource(sources)


def build_datadog_source(settings: Settings, closables: list[Any]) -> DatadogSource:
    """The Datadog source; ``ConfigurationError`` at start-up when a key is missing."""
    from analyzer.metrics.datadog import SITES as DATADOG_SITES  # noqa: PLC0415 -- see the top
    from analyzer.metrics.datadog import DatadogRetryPolicy, DatadogSource  # noqa: PLC0415

    config = settings.datadog
    api_key, application_key = config.keys()
    client = httpx.Client()
    closables.append(client)
    return DatadogSource(
        base_url=config.api_url or DATADOG_SITES[config.site],
        api_key=api_key,
        application_key=application_key,
        http=client,
        timeout=config.timeout_seconds,
        retry=DatadogRetryPolicy(
            attempts=config.retries + 1, max_rate_limit_wait=config.max_rate_limit_wait_seconds
        ),
        rollup_seconds=config.rollup_seconds,
        staleness_seconds=config.staleness_seconds,
    )


def worker_source(settings: Settings) -> MetricSource:
    """Set up a look worker process: the service's logging (a spawned process starts without
    it), its metric source (whose HTTP client lives as long as the worker), and the judge's
    scipy, which the statistics import lazily: the worker's first look need not pay for it."""
    configure_logging(settings.log_level, settings.log_format)
    lazy_special.import_now()
    return build_source(settings, closables=[])


def warm_up(service: Service) -> None:
    """Start-up work no request waits for, which ``serve`` runs once its socket listens: the
    look workers' start (imports), and scipy when looks run in this process."""
    service.looks.warm_up()
    if isinstance(service.looks, ThreadLooks):
        lazy_special.import_now()


def build_looks(settings: Settings, source: MetricSource, *, warm: bool = True) -> LookRunner:
    """Worker processes for Prometheus looks (``prometheus.look_processes``); the embedded
    synthetic source is cheap and runs in this process. ``warm=False`` returns before the
    workers have started (``serve`` warms them once its socket listens: ``LookRunner.warm_up``)."""
    processes = settings.prometheus.look_processes
    if settings.metric_source != "prometheus" or processes == 0:
        return ThreadLooks(source)
    return ProcessLooks(
        partial(worker_source, settings),
        processes=processes,
        timeout=settings.prometheus.look_timeout_seconds,
        warm=warm,
    )


# (model, revision) -> the percent of the model's traffic the revision serves, None if unknown
Shares = Callable[[ModelRef, str], int | None]


class AnyRevisionSynthetic:
    """The embedded default's metric source: every revision behaves alike (an A/A world).

    Lets ``serve`` answer on a fresh machine without Prometheus; the demo and the tests build
    synthetic sources with real regressions instead. The canary's share of the requests is what
    ``shares`` says it serves (the memory target's split: a driven rollout at 10 % sees 10 %,
    and its sample-ratio check passes); half when ``shares`` does not know the pair (an API
    look at revisions no target routes). ``srm_canary_share`` overrides both: a deliberate
    sample-ratio mismatch.
    """

    def __init__(
        self,
        *,
        origin: datetime,
        seed: int = 20261127,
        shares: Shares | None = None,
        srm_canary_share: float | None = None,
    ) -> None:
        self._origin = origin
        self._seed = seed
        self._shares = shares
        self._srm_canary_share = srm_canary_share

    def canary_share(self, model: ModelRef, canary: str) -> float:
        """The canary's share of the two arms' requests (0..1)."""
        if self._srm_canary_share is not None:
            return self._srm_canary_share
        percent = self._shares(model, canary) if self._shares is not None else None
        return 0.5 if percent is None else percent / 100

    def observe(
        self,
        spec: MetricSpec,
        query: MetricQuery,
        *,
        model: ModelRef,
        baseline: str,
        canary: str,
        window: TimeWindow,
    ) -> Observation:
        share = self.canary_share(model, canary)
        behaviours = {
            baseline: RevisionBehaviour(weight=1.0 - share),
            canary: RevisionBehaviour(weight=share),
        }
        source = SyntheticSource(seed=self._seed, origin=self._origin, revisions=behaviours)
        return source.observe(
            spec, query, model=model, baseline=baseline, canary=canary, window=window
        )


def build_gates(
    settings: Settings, ledger: Ledger, closables: list[Any] | None = None
) -> dict[str, PromotionGate]:
    """Every gate the settings configure. A gate a policy requires but that is missing here
    keeps its steps closed, with a reason naming it (fail closed)."""
    config = settings.gates
    rules = ApprovalRules(
        required_approvers=config.approval.required_approvers,
        ttl=timedelta(hours=config.approval.ttl_hours),
    )
    gates: dict[str, PromotionGate] = {
        MANUAL_APPROVAL: ManualApprovalGate(LedgerApprovals(ledger), rules=rules)
    }
    if config.change_window is not None or config.model_change_windows:
        gates[CHANGE_WINDOW] = ChangeWindowGate(
            config.change_window, per_model=config.model_change_windows
        )
    if config.evaluation is not None:
        gates[EVALUATION] = EvaluationGate(LedgerEvaluations(ledger), config.evaluation)
    gates[SHADOW] = ShadowGate(LedgerShadowVerdicts(ledger), config.shadow)
    if config.signature is not None:
        gates[SIGNATURE] = SignatureGate(LedgerSignatures(ledger), config.signature)
    client = servicenow_client(settings)
    if client is not None:
        if closables is not None:
            closables.append(client)
        gates[SERVICENOW_CHANGE] = ServiceNowChangeGate(client, config.servicenow.check)
    return gates


def servicenow_client(settings: Settings) -> ServiceNowTableClient | None:
    """A Table API client when an instance and credentials are configured, else None."""
    credentials = servicenow_credentials(settings)
    if not settings.servicenow.instance_url or credentials is None:
        return None
    return ServiceNowTableClient(
        settings.servicenow.instance_url, credentials,
        timeout_seconds=settings.servicenow.timeout_seconds,
    )  # fmt: skip


def servicenow_credentials(settings: Settings) -> Credentials | None:
    """OAuth2 when a client id is set, else basic auth, else none (the gate stays closed)."""
    snow = settings.servicenow
    if snow.client_id and snow.client_secret is not None:
        password = snow.password if snow.username else None
        return OAuth2Credentials(
            client_id=snow.client_id, client_secret=snow.client_secret,
            username=snow.username, password=password,
        )  # fmt: skip
    if snow.username and snow.password is not None:
        return BasicCredentials(username=snow.username, password=snow.password)
    return None


def build_registry(settings: Settings, closables: list[Any]) -> MlflowRegistry | None:
    """The configured model registry, or None without ``registry.url``."""
    config = settings.registry
    if config.url is None:
        return None
    from analyzer.registry.mlflow import MlflowRegistry  # noqa: PLC0415 -- see the top

    registry = MlflowRegistry(
        config.url, token=config.token, timeout_seconds=config.timeout_seconds,
        digest_tag=config.digest_tag, signature_tag=config.signature_tag,
    )  # fmt: skip
    closables.append(registry)
    return registry


def build_service(
    settings: Settings,
    *,
    target: TrafficTarget | None = None,
    source: MetricSource | None = None,
    profiles: ProfileCatalog | None = None,
    gates: Mapping[str, PromotionGate] | None = None,
    clock: Clock = utc_now,
    replica_id: str | None = None,
    warm_looks: bool = True,
    registry: ModelRegistry | None = None,
    mirror: MirrorTarget | None = None,
) -> Service:
    """Everything a serving process needs. ``warm_looks=False``: the look workers (if any) are
    not waited for here; the caller calls ``service.looks.warm_up()`` when it suits it."""
    # A URL from a mounted file is read again for each new connection (rotated credentials).
    rotating = isinstance(settings.database_url, FileSecret)
    engine = make_engine(
        settings.effective_database_url(),
        current_url=settings.effective_database_url if rotating else None,
    )
    ensure_schema_current(engine)
    closables: list[Any] = []
    ledger = Ledger(engine, clock=clock)
    target = target or build_target(settings)
    if source is None:
        source = build_source(settings, closables, target=target)
        looks = build_looks(settings, source, warm=warm_looks)
    else:  # an injected source lives in this process only
        looks = ThreadLooks(source)
    closables.append(looks)
    profiles = profiles or ProfileCatalog(settings.api.profiles_dir)
    gates = gates if gates is not None else build_gates(settings, ledger, closables)
    checker = PolicyGateChecker(settings.gates.policy, gates)
    registry = registry if registry is not None else build_registry(settings, closables)
    mirror = mirror if mirror is not None else build_mirror(settings, target)
    rollouts = RolloutService(
        engine, ledger, target, clock=clock, profiles=profiles, registry=registry,
        registry_required=settings.registry.required,
        approval_steps=approval_steps_of(settings.gates.policy), mirror=mirror,
    )  # fmt: skip
    aliases = None
    if registry is not None:
        aliases = RegistryAliases(
            registry, challenger=settings.registry.challenger_alias,
            champion=settings.registry.champion_alias,
        )  # fmt: skip
    rollout_engine = RolloutEngine(
        engine, ledger, target, ProfileAnalyzer(profiles, looks), checker,
        clock=clock, replica_id=replica_id, aliases=aliases, mirror=mirror,
    )  # fmt: skip
    poller = None
    if registry is not None and settings.registry.watch:
        poller = ChallengerPoller(
            engine, registry, rollouts, target,
            [ChallengerWatch(registered_model=w.registered_model, model=ModelRef.parse(w.model),
                             profile=w.profile, tier=w.tier, change_request=w.change_request,
                             plan=plan_from_json(w.plan) if w.plan is not None else None)
             for w in settings.registry.watch],
            clock=clock, replica_id=rollout_engine.replica_id,
            lease=timedelta(seconds=2 * settings.registry.poll_seconds),
            alias=settings.registry.challenger_alias,
        )  # fmt: skip
    return Service(
        settings=settings, engine=engine, ledger=ledger, target=target, source=source, looks=looks,
        profiles=profiles, rollouts=rollouts, rollout_engine=rollout_engine, gates=checker,
        gate_map=gates, challengers=poller,
        closables=closables,
        fleets=build_fleets(settings, engine, ledger, closables, clock, gates=gates),
    )  # fmt: skip
