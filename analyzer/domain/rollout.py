"""Rollouts: one attempt to move a model's traffic from a baseline revision to a canary.

States: ``pending → progressing (step k) → promoted``, or ``→ aborted`` / ``→ failed``;
``paused`` is an overlay flag on ``pending``/``progressing``, not a state of its own, so resuming
returns exactly where the rollout was. A shadow run ends ``shadow_passed`` instead of
``promoted`` (its challenger never served), or ``aborted`` when it failed.

The strategy is part of the plan (docs/strategies.md): ``canary`` (weights rise to 100 %),
``blue_green`` (one cut to 100 %, then a verification window judged against the previous
revision's time-matched window; re-pointed back on fail), ``shadow`` (the challenger gets a
mirrored copy of the step's share of requests and never serves) and ``pinned`` (a manual
cutover to 100 %, behind the promotion's gates, no analysis).
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
    # A shadow run whose challenger was judged fit on mirrored traffic: evidence, not a promotion
    # (nothing moved; a later canary's ``shadow`` gate reads it).
    SHADOW_PASSED = "shadow_passed"

    @property
    def terminal(self) -> bool:
        return self in (
            RolloutState.PROMOTED,
            RolloutState.ABORTED,
            RolloutState.FAILED,
            RolloutState.SHADOW_PASSED,
        )


class Strategy(StrEnum):
    """How a rollout moves traffic (the seed's table; docs/strategies.md says when to use which)."""

    CANARY = "canary"  # rising weights, judged concurrently against the baseline at each step
    BLUE_GREEN = "blue_green"  # one cut to 100 %, then a verification window; re-point on fail
    SHADOW = "shadow"  # mirrored requests only: the challenger never serves
    PINNED = "pinned"  # manual cutover to 100 % behind the promotion's gates, no analysis

    @property
    def judged(self) -> bool:
        """True when the strategy analyses the new revision before it finishes."""
        return self is not Strategy.PINNED

    @property
    def serves(self) -> bool:
        """False for shadow: the challenger receives copies and its answers are discarded."""
        return self is not Strategy.SHADOW


# Tiers whose models must be rolled out as canaries (the seed: "required for regulated ones");
# a shadow run moves no traffic, so it is allowed for every tier.
CANARY_ONLY_TIERS = frozenset({Tier.REGULATED})


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
    """Weights with dwell times and the strategy that moves them.

    ``canary``: weights strictly rise and the last is 100 %. ``blue_green``: one step at 100 %
    (the cut) whose dwell is the verification window; the previous revision's evidence is read
    ``baseline_offset`` earlier (default: the window's length, i.e. the window just before the
    cut). ``shadow``: one step whose weight is the share of requests mirrored to the challenger
    and whose dwell is the shadow window. ``pinned``: one step at 100 %, entered without analysis.
    """

    steps: tuple[Step, ...]
    analysis_interval: timedelta = timedelta(minutes=1)
    # A step that has not produced a pass by max_bake is judged at its horizon (pass only if the
    # judge says pass; inconclusive at max_bake fails the rollout: never promote on no evidence).
    max_bake: timedelta = timedelta(minutes=30)
    consecutive_error_limit: int = 4
    strategy: Strategy = Strategy.CANARY
    # blue_green: how far back the previous revision's time-matched window lies (None: the
    # verification window's length). A day or a week matches the hour (or weekday) too.
    baseline_offset: timedelta | None = None

    def __post_init__(self) -> None:
        if not self.steps:
            raise InvalidInputError("a plan needs at least one step", field="plan.steps")
        if self.analysis_interval <= timedelta(0):
            raise InvalidInputError("analysis_interval must be positive", field="plan")
        if self.consecutive_error_limit < 1:
            raise InvalidInputError("consecutive_error_limit must be >= 1", field="plan")
        if self.baseline_offset is not None and self.strategy is not Strategy.BLUE_GREEN:
            raise InvalidInputError(
                "only a blue_green plan has a baseline offset", field="plan.baseline_offset_seconds"
            )
        if self.strategy is not Strategy.CANARY:
            self._check_single_step()
            return
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

    def _check_single_step(self) -> None:
        name = self.strategy.value
        if len(self.steps) != 1:
            raise InvalidInputError(
                f"a {name} plan has exactly one step ({_ONE_STEP[self.strategy]}), not "
                f"{len(self.steps)}",
                field="plan.steps",
            )
        step = self.steps[0]
        if self.strategy is not Strategy.SHADOW and step.weight != 100:
            raise InvalidInputError(
                f"a {name} plan's step is the cut to 100 %, not {step.weight} %", field="plan.steps"
            )
        if self.strategy.judged and step.dwell < self.analysis_interval:
            raise InvalidInputError(
                f"the {name} window ({step.dwell}) must last at least one analysis interval "
                f"({self.analysis_interval}): it is what the verdict is judged on",
                field="plan.steps",
            )
        if self.baseline_offset is not None and self.baseline_offset < step.dwell:
            raise InvalidInputError(
                f"the baseline offset ({self.baseline_offset}) is shorter than the verification "
                f"window ({step.dwell}): the previous revision's window would reach past the cut, "
                "when it no longer served",
                field="plan.baseline_offset_seconds",
            )

    @property
    def verification_offset(self) -> timedelta:
        """blue_green: how far back the previous revision's time-matched window lies."""
        return self.baseline_offset or self.steps[-1].dwell

    def bake(self, step: int) -> timedelta:
        """The bake of step ``step``'s analysis: its dwell (at least two analysis intervals),
        ending an interval before ``max_bake``, by which a step without a pass fails."""
        bake = max(self.steps[step].dwell, 2 * self.analysis_interval)
        if self.max_bake > self.analysis_interval:
            bake = min(bake, self.max_bake - self.analysis_interval)
        return bake

    @classmethod
    def default(cls) -> StepPlan:
        dwell = timedelta(minutes=10)
        return cls(steps=tuple(Step(weight=w, dwell=dwell) for w in (10, 25, 50, 100)))

    @classmethod
    def for_strategy(cls, strategy: Strategy) -> StepPlan:
        """The plan a strategy runs when the request gives none."""
        if strategy is Strategy.CANARY:
            return cls.default()
        dwell = {
            Strategy.BLUE_GREEN: timedelta(minutes=15),
            Strategy.SHADOW: timedelta(minutes=30),
            Strategy.PINNED: timedelta(0),
        }[strategy]
        return cls(steps=(Step(weight=100, dwell=dwell),), strategy=strategy)


_ONE_STEP = {
    Strategy.BLUE_GREEN: "the cut to 100 %, its dwell the verification window",
    Strategy.SHADOW: "its weight the share of requests mirrored, its dwell the shadow window",
    Strategy.PINNED: "the cutover to 100 %",
}


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
class LookMark:
    """Where a rollout's looks stand in the ledger, so a look that repeats the last verdict is
    written as a compact entry over a full one (see ``analyzer/ledger/compact.py``).

    ``base_seq`` is the entry of the whole look the last look was compacted over; None when the
    last look was itself whole (its seq is assigned by the append, after this mark is saved: the
    rollout's latest look is then the base). ``verdicts`` is the canonical text of the last
    look's verdicts (overall and per metric), whole or compact.
    """

    base_seq: int | None
    step: int
    verdicts: str

    def to_json(self) -> dict[str, Any]:
        return {"base_seq": self.base_seq, "step": self.step, "verdicts": self.verdicts}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LookMark:
        base = data.get("base_seq")
        return cls(
            base_seq=None if base is None else int(base),
            step=int(data["step"]),
            verdicts=str(data["verdicts"]),
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
    last_look: LookMark | None = None

    @property
    def confirmed(self) -> bool:
        """True when the target has confirmed what this record claims (nothing in flight)."""
        if self.pending_move is not None:
            return False
        if self.applied_weight is None:  # nothing of ours was ever applied
            return self.canary_weight == 0 or self.state is RolloutState.PENDING
        return self.applied_weight == self.canary_weight

    @property
    def strategy(self) -> Strategy:
        return self.plan.strategy

    def serving_weight_at(self, step: int) -> int:
        """The share of live traffic the new revision serves at plan step ``step``: the step's
        weight, except for a shadow run, whose weight is a mirror (it serves 0 %). Gate policies
        ("before 100 %") are about serving, so they read this."""
        return 0 if self.strategy is Strategy.SHADOW else self.plan.steps[step].weight

    @property
    def canary_weight(self) -> int:
        """The weight this record claims the target has (0 unless progressing or promoted).

        For a shadow run it is the share of requests *mirrored* to the challenger (which serves
        none of them): the target the engine drives for it is the mirror."""
        if self.state is RolloutState.SHADOW_PASSED:
            return 0
        if self.state is RolloutState.PROMOTED:
            return 100
        if self.state is RolloutState.PROGRESSING and self.step_index >= 0:
            return self.plan.steps[self.step_index].weight
        return 0
