"""Rollouts: one attempt to move a model's traffic from a baseline revision to a canary.

States: ``pending → progressing (step k) → promoted``, or ``→ aborted`` / ``→ failed``;
``paused`` is an overlay flag on ``pending``/``progressing``, not a state of its own, so resuming
returns exactly where the rollout was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef, Tier

# A registry version as MLflow ("17"), semantic versioning ("3.2.1-rc.1+build.5") or a date
# scheme ("2026.11.27") writes it. It is compared with a change request's field, recorded in the
# ledger and shown to auditors, so it is short and has no spaces, quotes or markup.
MODEL_VERSION_MAX_LENGTH = 128
MODEL_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"
# The artifact's content digest, as OCI registries and cosign write it.
ARTIFACT_DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_MODEL_VERSION = re.compile(MODEL_VERSION_PATTERN)
_ARTIFACT_DIGEST = re.compile(ARTIFACT_DIGEST_PATTERN)


def check_model_version(value: str | None, *, field_name: str = "model_version") -> None:
    """Refuse a registry version that is empty, too long or has characters outside
    ``A-Z a-z 0-9 . _ + -`` (or does not start with a letter or digit)."""
    if value is None:
        return
    if len(value) > MODEL_VERSION_MAX_LENGTH:
        raise InvalidInputError(
            f"is {len(value)} characters long; at most {MODEL_VERSION_MAX_LENGTH} are allowed",
            field=field_name,
        )
    if not _MODEL_VERSION.fullmatch(value):
        raise InvalidInputError(
            f"{value!r} is not a model version: use letters, digits and '.', '_', '+', '-', "
            "starting with a letter or digit (e.g. 17 or 3.2.1)",
            field=field_name,
        )


def check_artifact_digest(value: str | None, *, field_name: str = "artifact_digest") -> None:
    """Refuse a digest that is not ``sha256:`` followed by 64 lower-case hex digits."""
    if value is None:
        return
    if not _ARTIFACT_DIGEST.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidInputError(
            f"{shown!r} is not an artifact digest: expected 'sha256:' followed by 64 lower-case "
            "hex digits",
            field=field_name,
        )


# A cosign signature as `sign-blob` writes it: base64 of an ASN.1 DER ECDSA signature (about 96
# characters for P-256); the bound leaves room for P-384/P-521 and keeps junk out of the ledger.
SIGNATURE_MAX_LENGTH = 1024
SIGNATURE_PATTERN = r"^[A-Za-z0-9+/]+={0,2}$"
_SIGNATURE = re.compile(SIGNATURE_PATTERN)


def check_signature_text(value: str | None, *, field_name: str = "artifact_signature") -> None:
    """Refuse a signature that is not base64 text of a plausible length (its cryptographic
    validity is the signature gate's question, not an input check)."""
    if value is None:
        return
    if len(value) > SIGNATURE_MAX_LENGTH or not _SIGNATURE.fullmatch(value):
        raise InvalidInputError(
            f"is not a base64 signature of at most {SIGNATURE_MAX_LENGTH} characters",
            field=field_name,
        )


# A Sigstore bundle (JSON): a certificate chain, a Rekor entry with its proof, a signature —
# some 10 kB; the bound keeps a stray file out of the ledger.
BUNDLE_MAX_LENGTH = 64 * 1024


def check_bundle_text(value: str | None, *, field_name: str = "artifact_sigstore_bundle") -> None:
    """Refuse a Sigstore bundle that is not a JSON object of a plausible size (whether it
    verifies is the signature gate's question)."""
    if value is None:
        return
    if len(value) > BUNDLE_MAX_LENGTH:
        raise InvalidInputError(f"is longer than {BUNDLE_MAX_LENGTH} characters", field=field_name)
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise InvalidInputError(f"is not JSON: {exc}", field=field_name) from exc
    if not isinstance(parsed, dict) or "mediaType" not in parsed:
        raise InvalidInputError("is not a Sigstore bundle (a JSON object with a mediaType)",
                                field=field_name)  # fmt: skip


class RolloutState(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (RolloutState.PROMOTED, RolloutState.ABORTED, RolloutState.FAILED)


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """Hold the canary at ``weight`` % for at least ``dwell``, judging every analysis interval."""

    weight: int
    dwell: timedelta
    # Gate names (see gates.policy) that must be open *before* traffic moves to this step.
    gates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.weight <= 100:
            raise InvalidInputError(f"step weight {self.weight} is not in 1..100", field="weight")
        if self.dwell < timedelta(0):
            raise InvalidInputError("dwell must not be negative", field="dwell")


@dataclass(frozen=True, kw_only=True, slots=True)
class StepPlan:
    """Weights with dwell times; the last step must be 100 %."""

    steps: tuple[Step, ...]
    analysis_interval: timedelta = timedelta(minutes=1)
    # A step that has not produced a pass by max_bake is judged at its horizon (pass only if the
    # judge says pass; inconclusive at max_bake fails the rollout: never promote on no evidence).
    max_bake: timedelta = timedelta(minutes=30)
    consecutive_error_limit: int = 4

    def __post_init__(self) -> None:
        if not self.steps:
            raise InvalidInputError("a plan needs at least one step", field="plan.steps")
        weights = [s.weight for s in self.steps]
        if weights != sorted(set(weights)):
            raise InvalidInputError("step weights must strictly increase", field="plan.steps")
        if weights[-1] != 100:
            raise InvalidInputError("the last step must be 100 %", field="plan.steps")
        if len(weights) < 2:
            # Entering the first step needs no analysis (nothing serves the canary yet), so a
            # plan of 100 % alone would promote on no evidence at all.
            raise InvalidInputError(
                "a plan needs a canary step below 100 % before the promotion: the promotion is "
                "judged on the evidence gathered there",
                field="plan.steps",
            )
        if self.analysis_interval <= timedelta(0):
            raise InvalidInputError("analysis_interval must be positive", field="plan")
        if self.consecutive_error_limit < 1:
            raise InvalidInputError("consecutive_error_limit must be >= 1", field="plan")

    @classmethod
    def default(cls) -> StepPlan:
        dwell = timedelta(minutes=10)
        return cls(steps=tuple(Step(weight=w, dwell=dwell) for w in (10, 25, 50, 100)))


class MoveKind(StrEnum):
    STEP = "step"  # set the canary weight of a step
    PROMOTE = "promote"  # the canary becomes the stable revision at 100 %


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingMove:
    """A traffic move the engine asked the target for and has not confirmed yet.

    It is committed (with the evidence that justified it) before the target is called, so a
    process that dies between the call and the confirmation leaves it behind, and the next tick
    settles it from what the target really shows instead of guessing.
    """

    kind: MoveKind
    step: int
    weight: int
    requested_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "step": self.step,
            "weight": self.weight,
            "requested_at": self.requested_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingMove:
        return cls(
            kind=MoveKind(data["kind"]),
            step=int(data["step"]),
            weight=int(data["weight"]),
            requested_at=datetime.fromisoformat(data["requested_at"]),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Rollout:
    """The durable record of one rollout (a row of the ``rollouts`` table)."""

    id: str
    model: ModelRef
    tier: Tier
    baseline_revision: str
    canary_revision: str
    profile: str
    plan: StepPlan
    state: RolloutState
    step_index: int  # -1 while pending; index into plan.steps while progressing
    paused: bool
    initiator: str
    created_at: datetime
    updated_at: datetime
    step_started_at: datetime | None = None
    # When the first step was entered: the analysis window (cumulative evidence) starts here.
    analysis_started_at: datetime | None = None
    next_tick_at: datetime | None = None
    change_request: str | None = None
    artifact_uri: str | None = None
    # The registry version of the canary's model (e.g. MLflow version "17") and the artifact's
    # content digest: what a model-risk change request names, unlike the revision name.
    model_version: str | None = None
    artifact_digest: str | None = None
    consecutive_errors: int = 0
    reason: str | None = None
    version: int = 0
    judge_state: dict[str, Any] = field(default_factory=dict)
    # The canary weight the target last *confirmed* (None: nothing applied yet); it differs from
    # ``canary_weight`` while a change is unconfirmed (an abort the target did not take yet).
    applied_weight: int | None = None
    pending_move: PendingMove | None = None

    @property
    def confirmed(self) -> bool:
        """True when the target has confirmed what this record claims (nothing in flight)."""
        if self.pending_move is not None:
            return False
        if self.applied_weight is None:  # nothing of ours was ever applied
            return self.canary_weight == 0 or self.state is RolloutState.PENDING
        return self.applied_weight == self.canary_weight

    @property
    def canary_weight(self) -> int:
        """The weight this record claims the target has (0 unless progressing or promoted)."""
        if self.state is RolloutState.PROMOTED:
            return 100
        if self.state is RolloutState.PROGRESSING and self.step_index >= 0:
            return self.plan.steps[self.step_index].weight
        return 0
