"""The control surface of driven rollouts, as the API and CLI see it.

Implemented by :class:`analyzer.rollouts.service.RolloutService` on the database; the API codes
against this Protocol only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import (
    Rollout,
    RolloutState,
    StepPlan,
    check_artifact_digest,
    check_bundle_text,
    check_model_version,
    check_signature_text,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Actor:
    """Who acts: a subject from a verified token, with its roles and tenant namespaces."""

    subject: str
    roles: frozenset[str]
    # None = every namespace; otherwise the namespaces this actor may read or act on.
    namespaces: frozenset[str] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StartRollout:
    """What starting a rollout needs. ``model_version`` is the canary's registry version (what a
    change request names); ``artifact_digest`` is ``sha256:<64 hex>``. Both are checked here,
    so every caller (API, demo, a YAML spec) gets the same ``InvalidInputError`` naming the
    field."""

    model: ModelRef
    tier: Tier
    baseline_revision: str
    canary_revision: str
    profile: str
    plan: StepPlan | None = None
    change_request: str | None = None
    artifact_uri: str | None = None
    model_version: str | None = None
    artifact_digest: str | None = None
    # A cosign sign-blob signature (base64 DER, ECDSA P-256) over the artifact, when the caller
    # has it rather than the registry (docs/registry.md); recorded in revision_registered.
    artifact_signature: str | None = None
    # A Sigstore bundle (JSON text) for keyless verification by the signature gate; recorded
    # in revision_registered.
    artifact_sigstore_bundle: str | None = None

    def __post_init__(self) -> None:
        check_model_version(self.model_version)
        check_artifact_digest(self.artifact_digest)
        check_signature_text(self.artifact_signature)
        check_bundle_text(self.artifact_sigstore_bundle)


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordedApproval:
    """An approval as recorded: for which plan step (and its weight) of which rollout."""

    rollout: Rollout
    step: int
    weight: int


class RolloutControl(Protocol):
    """Start, read and steer rollouts. Every change is recorded in the ledger with its actor.

    Errors: ``NotFoundError`` (no such rollout), ``ConflictError`` (transition not allowed now,
    e.g. resuming a promoted rollout), ``PermissionDeniedError`` (e.g. the initiator approving
    their own rollout), ``InvalidInputError`` (bad request values).
    """

    def start(self, request: StartRollout, actor: Actor) -> Rollout:
        """Create a pending rollout; the scheduler moves it to its first step."""
        ...

    def list(
        self,
        *,
        model: ModelRef | None = None,
        state: RolloutState | None = None,
        namespaces: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[Rollout]:
        """Newest first; ``namespaces`` limits the rows (a tenant-scoped reader) *before* the
        limit, so another tenant's busy week cannot push a tenant's rollouts off the page."""
        ...

    def get(self, rollout_id: str) -> Rollout: ...

    def abort(self, rollout_id: str, actor: Actor, reason: str) -> Rollout:
        """Set the canary's traffic to 0 % now (not at the next tick). Idempotent."""
        ...

    def pause(self, rollout_id: str, actor: Actor, reason: str) -> Rollout: ...

    def resume(self, rollout_id: str, actor: Actor) -> Rollout: ...

    def approve(
        self, rollout_id: str, actor: Actor, comment: str, step: int | None = None
    ) -> RecordedApproval:
        """Record a four-eyes approval for ``step``, by default the next step the
        manual-approval gate will check. Refused for the rollout's initiator (403), for a step
        outside the plan (422) and for a step no remaining gate check will count (409)."""
        ...
