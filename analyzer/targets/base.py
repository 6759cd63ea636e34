"""The traffic-target contract shared by every integration.

A *traffic target* moves a model's live traffic between its stable (baseline) revision and its
canary revision. The rollout engine drives every target through :class:`TrafficTarget` alone, so
the contract below is what an implementation must honour; one contract test suite
(``tests/integration/targets/test_contract.py``) runs against each implementation.

Errors (all from :mod:`analyzer.domain.errors`):

* :class:`~analyzer.domain.errors.InvalidInputError`: a weight outside 0..100 (never retried).
* :class:`~analyzer.domain.errors.NotFoundError`: the model's object does not exist.
* :class:`~analyzer.domain.errors.RetryableError`: transient; the target already retried with
  bounded backoff (5xx, 409 conflicts on a stale ``resourceVersion``, timeouts, refused
  connections, a controller that has not yet observed or readied the change in time).
* :class:`~analyzer.domain.errors.FatalIntegrationError`: retrying will not help (other 4xx,
  unsupported deployment mode or operation, a canary revision that failed to become ready).

Whatever is raised, a target never reports a weight it did not observe: :meth:`read_weight`
reads the system's own view of the split, not what was last requested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef


@dataclass(frozen=True, kw_only=True, slots=True)
class RevisionShare:
    """One revision and the percentage of traffic it serves."""

    revision: str
    percent: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TrafficState:
    """The split a target observed, as the serving system itself reports it.

    ``canary_revision`` is ``None`` when no canary is in flight (nothing deployed beside the stable
    revision, or just promoted). ``canary_weight`` is the canary's observed share (0 without a
    canary). ``requested_weight`` is what the object's desired state asks for (``None`` when no
    canary weight is set), so a caller can tell "asked for 25, still serving 10". ``settled``
    is true when the serving system reports ready and its routing agrees with the desired state;
    a state that is not settled must not be used to judge the canary.
    """

    stable_revision: str | None
    canary_revision: str | None
    canary_weight: int
    requested_weight: int | None
    settled: bool
    shares: tuple[RevisionShare, ...] = ()

    @property
    def stable_weight(self) -> int:
        """The stable revision's share: everything the canary does not get."""
        return 100 - self.canary_weight

    def percent_of(self, revision: str) -> int:
        """The share ``revision`` serves (0 if it serves nothing)."""
        return sum(s.percent for s in self.shares if s.revision == revision)


def check_weight(weight: int) -> int:
    """Validate a canary weight (an ``int`` in 0..100) and return it."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise InvalidInputError(
            f"canary weight must be an integer 0..100, got {weight!r}", field="weight"
        )
    return weight


@runtime_checkable
class TrafficTarget(Protocol):
    """Moves a model's traffic between its stable and canary revisions.

    Every method is synchronous and returns only once the serving system has *applied and
    observed* the change (or raises). Every method is idempotent: repeating a call that succeeded
    changes nothing, so a scheduler tick that is replayed after a crash is safe.
    """

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        """Route ``weight`` % (0..100) of the model's traffic to the canary revision.

        Returns the observed state, whose ``canary_weight`` equals ``weight`` (at 100 too: the
        canary stays the canary until :meth:`promote`). Raises
        :class:`InvalidInputError` for a weight outside 0..100, :class:`FatalIntegrationError`
        when the target cannot set weights (it does not own the steps) or the canary revision
        failed, :class:`RetryableError` when the change could not be applied or verified in time.
        """
        ...

    def read_weight(self, ref: ModelRef) -> TrafficState:
        """Return the split the serving system currently reports (no side effects)."""
        ...

    def promote(self, ref: ModelRef) -> TrafficState:
        """Make the canary the new stable revision serving 100 % of traffic.

        Afterwards ``stable_revision`` is the former canary and ``canary_revision`` is ``None``.
        Promoting a model without a canary in flight is a no-op that returns the state.
        """
        ...

    def abort(self, ref: ModelRef) -> TrafficState:
        """Send all traffic back to the stable revision (canary at 0 %), and verify it."""
        ...


@runtime_checkable
class RegistersModels(Protocol):
    """A target that learns a model's revisions from the rollout itself (the in-memory target
    of the embedded default: it has no cluster to read them from)."""

    def register_rollout(
        self, ref: ModelRef, *, stable_revision: str, canary_revision: str
    ) -> None:
        """Make ``stable_revision`` serve 100 % with ``canary_revision`` deployed at 0 %,
        unless the model already has exactly these revisions."""
        ...


@runtime_checkable
class OwnsItsSteps(Protocol):
    """A target whose controller moves the canary weights itself (Argo Rollouts): it aborts and
    promotes, but a driven rollout's steps would fight its controller."""

    def driven_steps_refused(self, ref: ModelRef) -> str:
        """Why a rollout driven step by step cannot run on this target (the 422's message)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class MirrorState:
    """A model's request mirror as the mesh reports it.

    ``serving_revision``: where live requests go (the route's destination; the mirror never
    changes it). ``mirror_revision``: where *copies* go, their answers discarded (``None``: no
    mirror). ``mirror_percent``: the share of requests copied (0 without a mirror).
    """

    serving_revision: str | None
    mirror_revision: str | None
    mirror_percent: int


@runtime_checkable
class MirrorTarget(Protocol):
    """Copies a share of a model's requests to a challenger revision whose answers are discarded
    (a shadow run). Like :class:`TrafficTarget`: synchronous, idempotent, and it reports what
    the mesh holds, not what was last asked. A mesh without the model's route raises
    :class:`NotFoundError` naming what is missing; never a silent no-op."""

    def start_mirror(self, ref: ModelRef, revision: str, percent: int) -> MirrorState:
        """Mirror ``percent`` % (1..100) of ``ref``'s requests to ``revision``."""
        ...

    def stop_mirror(self, ref: ModelRef) -> MirrorState:
        """Remove the mirror (no-op when there is none)."""
        ...

    def read_mirror(self, ref: ModelRef) -> MirrorState: ...
