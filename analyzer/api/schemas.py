"""Request and response bodies of the API: Pydantic at the edge, domain values inside.

Identifiers are validated here with the same DNS-1123 rules the domain enforces, so a bad body is
a 422 naming the field before any service is called.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, UrlConstraints, field_validator

from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import (
    ARTIFACT_DIGEST_PATTERN,
    MODEL_VERSION_MAX_LENGTH,
    MODEL_VERSION_PATTERN,
    SIGNATURE_MAX_LENGTH,
    SIGNATURE_PATTERN,
    Rollout,
    Step,
    StepPlan,
    Strategy,
)
from analyzer.rollouts.control import RecordedApproval
from gates.evaluation import SUITE_PATTERN

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
VerdictName = Literal["pass", "fail", "inconclusive", "error"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelIn(_In):
    namespace: str = Field(pattern=DNS1123_LABEL, max_length=63, examples=["risk-prod"])
    name: str = Field(pattern=DNS1123_SUBDOMAIN, max_length=253, examples=["fraud-scorer"])

    def ref(self) -> ModelRef:
        return ModelRef(namespace=self.namespace, name=self.name)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: str | float) -> float:
    """Seconds in a Go/Argo duration (``1m``, ``30s``, ``1m30s``, ``500ms``) or a number."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration such as 30s, 1m or 1m30s")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


class BakeIn(_In):
    """The planned bake of an analysis step: ``looks`` measurements every ``interval``."""

    looks: int = Field(ge=1, le=10_000, description="Argo's count", examples=[10])
    interval: str | float = Field(
        description="Argo's interval: a duration (30s, 1m, 1m30s) or seconds", examples=["1m"]
    )

    @field_validator("interval")
    @classmethod
    def _positive_duration(cls, value: str | float) -> str | float:
        if not 0 < duration_seconds(value) <= 7 * 86400:
            raise ValueError("interval must be positive and at most 7 days")
        return value

    @property
    def interval_seconds(self) -> float:
        return duration_seconds(self.interval)


class AnalysisIn(_In):
    """One measurement request of the Argo Rollouts web provider (see docs/api.md)."""

    model: ModelIn
    canary: str = Field(
        pattern=DNS1123_SUBDOMAIN,
        max_length=253,
        description="Canary revision or Argo pod-template hash",
        examples=["6c54544bf9"],
    )
    baseline: str = Field(
        pattern=DNS1123_SUBDOMAIN,
        max_length=253,
        description="Baseline (stable) revision or pod-template hash",
        examples=["5b8d7f9c6d"],
    )
    profile: str | dict[str, Any] = Field(
        description="A profile name (profiles directory or shipped preset) or an inline profile",
        examples=["knative"],
    )
    weight: int | None = Field(
        default=None, ge=0, le=100, description="Current canary traffic percentage"
    )
    rollout: str | None = Field(
        default=None, max_length=253, description="Caller's rollout name, echoed back"
    )
    deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=60,
        description="Answer within this many seconds (keep it below the caller's timeout); "
        "a fresh look that is late answers the session's last decision. Default: the "
        "service's api.analysis_deadline_seconds (6 s)",
        examples=[6],
    )
    bake: BakeIn | None = Field(
        default=None,
        description="The step's planned bake (count looks every interval): the session passes a "
        "canary with no evidence of harm by its last look; each weight is its own session",
    )
    baseline_offset_seconds: int | None = Field(
        default=None,
        ge=60,
        le=28 * 86400,
        description="After a blue/green cut (Argo's postPromotionAnalysis) the baseline serves "
        "nothing: read its evidence this many seconds earlier (a time-matched window) instead "
        "of concurrently; a separate session. See docs/strategies.md",
        examples=[3600, 86400],
    )


class WindowOut(BaseModel):
    start: datetime
    end: datetime


class AnalysisOut(BaseModel):
    """Always returned with 200, whatever the verdict; ``verdict`` is never null."""

    verdict: VerdictName
    score: float
    reason: str
    rollout: str
    model: str
    canary: str
    baseline: str
    profile: str
    look: int
    cached: bool
    window: WindowOut
    alpha: float
    warnings: list[str]
    metrics: list[dict[str, Any]]
    ledger_seq: int
    bake: dict[str, Any] | None = None


# --- rollouts ------------------------------------------------------------------------------


class StepIn(_In):
    weight: int = Field(ge=1, le=100)
    dwell_seconds: int = Field(ge=0, le=7 * 86400)
    gates: list[str] = Field(default_factory=list, max_length=20)


class PlanIn(_In):
    steps: list[StepIn] = Field(
        min_length=1,
        max_length=100,
        description="canary: rising weights ending at 100. blue_green: one step at 100 whose "
        "dwell is the verification window. shadow: one step whose weight is the share of "
        "requests mirrored and whose dwell is the shadow window. pinned: one step at 100",
    )
    analysis_interval_seconds: int = Field(default=60, ge=1, le=86400)
    max_bake_seconds: int = Field(default=1800, ge=1, le=7 * 86400)
    consecutive_error_limit: int = Field(default=4, ge=1, le=100)
    baseline_offset_seconds: int | None = Field(
        default=None,
        ge=1,
        le=28 * 86400,
        description="blue_green only: how far back the previous revision's time-matched "
        "window lies (default: the verification window's length; 86400 or 604800 match the "
        "hour or the weekday too)",
    )

    def plan(self, strategy: Strategy = Strategy.CANARY) -> StepPlan:
        offset = self.baseline_offset_seconds
        return StepPlan(
            strategy=strategy,
            baseline_offset=timedelta(seconds=offset) if offset is not None else None,
            steps=tuple(
                Step(
                    weight=s.weight, dwell=timedelta(seconds=s.dwell_seconds), gates=tuple(s.gates)
                )
                for s in self.steps
            ),
            analysis_interval=timedelta(seconds=self.analysis_interval_seconds),
            max_bake=timedelta(seconds=self.max_bake_seconds),
            consecutive_error_limit=self.consecutive_error_limit,
        )


class RolloutStartIn(_In):
    model: ModelIn
    tier: Tier = Tier.STANDARD
    baseline_revision: str = Field(pattern=DNS1123_SUBDOMAIN, max_length=253)
    canary_revision: str = Field(pattern=DNS1123_SUBDOMAIN, max_length=253)
    profile: str = Field(pattern=PROFILE_NAME)
    strategy: Strategy = Field(
        default=Strategy.CANARY,
        description="canary (rising weights), blue_green (cut, then verify against the "
        "previous revision's time-matched window; re-pointed back on fail), shadow (mirrored "
        "requests only, never served) or pinned (manual cutover behind the promotion's gates); "
        "see docs/strategies.md",
    )
    plan: PlanIn | None = Field(
        default=None, description="default: the strategy's default plan (docs/strategies.md)"
    )
    change_request: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    artifact_uri: str | None = Field(
        default=None,
        max_length=1024,
        description="Where the canary's artifact is. A registry URI, models:/NAME/VERSION or "
        "models:/NAME@ALIAS, is resolved to one version when the rollout starts (and recorded "
        "as models:/NAME/VERSION); models:/NAME/latest and stage names are refused",
        examples=["models:/fraud-scorer/17", "models:/fraud-scorer@challenger"],
    )
    model_version: str | None = Field(
        default=None,
        max_length=MODEL_VERSION_MAX_LENGTH,
        pattern=MODEL_VERSION_PATTERN,
        description="The canary's registry version (e.g. MLflow model version); the ServiceNow "
        "gate matches it with the change request's version field",
        examples=["17", "3.2.1"],
    )
    artifact_digest: str | None = Field(
        default=None,
        pattern=ARTIFACT_DIGEST_PATTERN,
        description="The canary artifact's content digest, sha256:<64 lower-case hex>",
        examples=["sha256:" + "0" * 64],
    )
    artifact_signature: str | None = Field(
        default=None,
        max_length=SIGNATURE_MAX_LENGTH,
        pattern=SIGNATURE_PATTERN,
        description="A cosign sign-blob signature (base64 DER, ECDSA P-256) over the artifact, "
        "when the registry does not hold it; checked by the signature gate",
    )
    artifact_sigstore_bundle: dict[str, Any] | None = Field(
        default=None,
        description="A Sigstore bundle (keyless signing: Fulcio certificate, Rekor entry, "
        "signature over the artifact's digest), verified offline by the signature gate against "
        "the configured trust root and signer identities; recorded with the revision",
    )


class ReasonIn(_In):
    reason: str = Field(min_length=1, max_length=2000, description="Why; recorded in the ledger")


class ApproveIn(_In):
    comment: str = Field(default="", max_length=2000)
    step: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="The plan step (index) approved; by default the next step the "
        "manual-approval gate will check",
    )


class StepOut(BaseModel):
    weight: int
    dwell_seconds: float
    gates: list[str]


class PlanOut(BaseModel):
    strategy: str
    baseline_offset_seconds: float | None = None
    steps: list[StepOut]
    analysis_interval_seconds: float
    max_bake_seconds: float
    consecutive_error_limit: int


class RolloutOut(BaseModel):
    id: str
    model: str
    tier: str
    baseline_revision: str
    canary_revision: str
    profile: str
    strategy: str
    state: str
    step_index: int
    paused: bool
    canary_weight: int
    initiator: str
    created_at: datetime
    updated_at: datetime
    step_started_at: datetime | None
    next_tick_at: datetime | None
    change_request: str | None
    artifact_uri: str | None
    model_version: str | None
    artifact_digest: str | None
    consecutive_errors: int
    reason: str | None
    plan: PlanOut
    applied_weight: int | None = Field(
        default=None,
        description="the canary weight the traffic target last confirmed (null: none applied)",
    )
    pending: bool = Field(
        default=False,
        description="true while the target has not confirmed what `state`/`canary_weight` "
        "claim (an abort not yet confirmed, a step being applied)",
    )
    mirror_percent: int | None = Field(
        default=None,
        description="shadow runs: the share of requests mirrored to the challenger now (it "
        "serves none of them: `canary_weight` stays 0); null for other strategies",
    )

    @classmethod
    def of(cls, r: Rollout) -> RolloutOut:
        shadow = r.strategy is Strategy.SHADOW  # its "weight" is a mirror: it serves nothing
        plan = PlanOut(
            strategy=r.strategy.value,
            baseline_offset_seconds=(
                r.plan.baseline_offset.total_seconds() if r.plan.baseline_offset else None
            ),
            steps=[
                StepOut(weight=s.weight, dwell_seconds=s.dwell.total_seconds(), gates=list(s.gates))
                for s in r.plan.steps
            ],
            analysis_interval_seconds=r.plan.analysis_interval.total_seconds(),
            max_bake_seconds=r.plan.max_bake.total_seconds(),
            consecutive_error_limit=r.plan.consecutive_error_limit,
        )
        return cls(
            id=r.id,
            model=str(r.model),
            tier=r.tier.value,
            baseline_revision=r.baseline_revision,
            canary_revision=r.canary_revision,
            profile=r.profile,
            strategy=r.strategy.value,
            state=r.state.value,
            step_index=r.step_index,
            paused=r.paused,
            canary_weight=0 if shadow else r.canary_weight,
            mirror_percent=r.canary_weight if shadow else None,
            initiator=r.initiator,
            created_at=r.created_at,
            updated_at=r.updated_at,
            step_started_at=r.step_started_at,
            next_tick_at=r.next_tick_at,
            change_request=r.change_request,
            artifact_uri=r.artifact_uri,
            model_version=r.model_version,
            artifact_digest=r.artifact_digest,
            consecutive_errors=r.consecutive_errors,
            reason=r.reason,
            plan=plan,
            applied_weight=r.applied_weight,
            pending=not r.confirmed,
        )


class RolloutListOut(BaseModel):
    rollouts: list[RolloutOut]


class ApprovalOut(RolloutOut):
    """The rollout, and which step the approval was recorded for."""

    approved_step: int = Field(description="the plan step (index) the approval counts for")
    approved_weight: int = Field(description="that step's canary weight, %")

    @classmethod
    def of_approval(cls, recorded: RecordedApproval) -> ApprovalOut:
        base = RolloutOut.of(recorded.rollout).model_dump()
        return cls(**base, approved_step=recorded.step, approved_weight=recorded.weight)


# --- evaluations ---------------------------------------------------------------------------

MAX_EVALUATION_METRICS = 50
METRIC_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
GIT_COMMIT = r"^[0-9a-f]{40}([0-9a-f]{24})?$"  # a full SHA-1 or SHA-256 commit id
MetricName = Annotated[str, Field(pattern=METRIC_NAME, max_length=128)]
MetricValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
ReportUrl = Annotated[
    AnyUrl, UrlConstraints(allowed_schemes=["https"], max_length=2048, host_required=True)
]


class EvaluationIn(_In):
    """One evaluation suite's result for one model version, recorded by CI."""

    model: ModelIn
    model_version: str = Field(
        max_length=MODEL_VERSION_MAX_LENGTH,
        pattern=MODEL_VERSION_PATTERN,
        description="The registry version evaluated (what rollouts name as model_version)",
        examples=["17"],
    )
    suite: str = Field(pattern=SUITE_PATTERN, max_length=64, examples=["golden-set", "load-test"])
    passed: bool = Field(strict=True, description="Whether the suite passed its own thresholds")
    metrics: dict[MetricName, MetricValue] = Field(
        default_factory=dict,
        max_length=MAX_EVALUATION_METRICS,
        description=f"Up to {MAX_EVALUATION_METRICS} finite numbers, recorded as evidence",
        examples=[{"auc": 0.91, "ks": 0.42}],
    )
    report_url: ReportUrl | None = Field(
        default=None, description="https link to the full report (no credentials in it)"
    )
    commit: str | None = Field(
        default=None, pattern=GIT_COMMIT, description="The git commit CI evaluated (full id)"
    )
    artifact_digest: str | None = Field(
        default=None,
        pattern=ARTIFACT_DIGEST_PATTERN,
        description="The evaluated artifact's digest, sha256:<64 lower-case hex>; compared with "
        "the rollout's",
        examples=["sha256:" + "0" * 64],
    )

    @field_validator("report_url")
    @classmethod
    def _no_credentials(cls, value: AnyUrl | None) -> AnyUrl | None:
        # The link is shown to auditors and written to the ledger forever.
        if value is not None and (value.username or value.password):
            raise ValueError("must not carry a user name or password")
        return value


class EvaluationOut(BaseModel):
    seq: int
    recorded_at: datetime
    recorded_by: str
    model: str
    model_version: str
    suite: str
    passed: bool
    metrics: dict[str, float]
    report_url: str | None
    commit: str | None
    artifact_digest: str | None


class EvaluationListOut(BaseModel):
    evaluations: list[EvaluationOut]


# --- audit ---------------------------------------------------------------------------------


class EntryOut(BaseModel):
    seq: int
    recorded_at: str
    event_type: str
    schema_version: int
    actor: str
    model: str | None
    rollout_id: str | None
    revision: str | None
    data: dict[str, Any]
    payload: str
    prev_hash: str
    hash: str
    # A compact look's full data, rebuilt from its base entry (not hashed itself: its payload
    # and its base's are). Absent for every other entry. See docs/ledger.md.
    expanded: dict[str, Any] | None = None


class EventsOut(BaseModel):
    entries: list[EntryOut]
    next_cursor: str | None


class ServingRevisionOut(BaseModel):
    revision: str
    weight: float
    artifact_uri: str | None
    step: int | None
    model_version: str | None = None
    artifact_digest: str | None = None


class MirroredOut(BaseModel):
    """A revision that received *copies* of requests at the instant (a shadow run): it never
    served, so it is never among ``revisions``."""

    revision: str
    percent: float
    served: bool = False
    entry: EntryOut


class ServingOut(BaseModel):
    model: str
    at: datetime
    revisions: list[ServingRevisionOut]
    mirrored: list[MirroredOut] = Field(
        default_factory=list,
        description="shadow challengers receiving mirrored copies at that instant (never served)",
    )
    traffic_entry: EntryOut | None
    # "engine" (a driven rollout's change) or "observed" (the traffic observer saw it), and
    # who made it when observed (canary-analyzer, argo-rollouts, flagger, manual, other).
    source: str | None = None
    owner: str | None = None
    approvals: list[EntryOut]
    registrations: list[EntryOut]
    # The last analysis look behind the change: its rollout's, or the linked analysis session's.
    analysis: EntryOut | None = None
    # The latest promotion of each serving revision up to the change: how a baseline came to be
    # the stable revision (the rollout that promoted it), not only what the canary's was.
    promotions: list[EntryOut] = []


class VerifyOut(BaseModel):
    intact: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    problem: str | None
    summary: str
    # True when the chain was also compared with the newest signed checkpoint (configured
    # ledger.checkpoint_dir): a tail cut after it verifies on its own (docs/ledger.md).
    checkpoint_checked: bool = False


# --- Flagger -------------------------------------------------------------------------------


class FlaggerHookIn(BaseModel):
    """Flagger's webhook payload. Unknown keys are ignored: Flagger may add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(pattern=DNS1123_SUBDOMAIN, max_length=253)
    namespace: str = Field(pattern=DNS1123_LABEL, max_length=63)
    phase: str = Field(default="", max_length=64)
    checksum: str | None = Field(default=None, max_length=128)
    metadata: dict[str, str] = Field(default_factory=dict)


class HookOut(BaseModel):
    """JSON answer of a Flagger hook (Flagger copies non-2xx bodies into its events)."""

    decision: str
    reason: str


# --- ops -----------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: str
    detail: str = ""
