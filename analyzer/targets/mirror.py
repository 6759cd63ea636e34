"""A shadow run driven through the traffic-target contract.

The rollout engine moves every strategy through :class:`~analyzer.targets.base.TrafficTarget`
(intent, call, confirm; settle with what the target shows after a crash). For a shadow run the
"weight" is the share of requests *mirrored* to the challenger, so :class:`ShadowTraffic` speaks
that contract in terms of a :class:`~analyzer.targets.base.MirrorTarget`: a step sets the
mirror, an abort removes it, and so does the finish ("shadow passed": nothing is promoted).
Live traffic never moves: the incumbent serves 100 % throughout, which ``read_weight`` reports
as the stable revision's share.
"""

from __future__ import annotations

from analyzer.domain.errors import FatalIntegrationError, NotFoundError
from analyzer.domain.model import ModelRef
from analyzer.domain.rollout import Rollout, Strategy
from analyzer.targets.base import (
    MirrorState,
    MirrorTarget,
    RevisionShare,
    TrafficState,
    TrafficTarget,
    check_weight,
)


class ShadowTraffic:
    """The traffic-target view of one shadow run's mirror (see the module docstring)."""

    def __init__(self, mirror: MirrorTarget, challenger: str) -> None:
        self._mirror = mirror
        self._challenger = challenger

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        check_weight(weight)
        if weight == 0:
            return self._state(self._mirror.stop_mirror(ref))
        return self._state(self._mirror.start_mirror(ref, self._challenger, weight))

    def read_weight(self, ref: ModelRef) -> TrafficState:
        return self._state(self._mirror.read_mirror(ref))

    def promote(self, ref: ModelRef) -> TrafficState:
        # "shadow passed": the challenger was never served and is not promoted by a shadow run
        return self._state(self._mirror.stop_mirror(ref))

    def abort(self, ref: ModelRef) -> TrafficState:
        return self._state(self._mirror.stop_mirror(ref))

    def _state(self, seen: MirrorState) -> TrafficState:
        ours = seen.mirror_revision == self._challenger
        percent = seen.mirror_percent if ours else 0
        serving = seen.serving_revision
        shares = (RevisionShare(revision=serving, percent=100),) if serving else ()
        return TrafficState(
            stable_revision=seen.serving_revision,
            canary_revision=self._challenger if ours else None,
            canary_weight=percent,
            requested_weight=percent if ours else None,
            settled=True,
            shares=shares,
        )


class NoMirror:
    """What a shadow run gets when no mirror target is configured: a clear refusal."""

    REASON = (
        "a shadow run needs a request mirror, and none is configured (set target.mirror to "
        "istio: KServe has no mirror field; see docs/strategies.md)"
    )

    def set_weight(self, ref: ModelRef, weight: int) -> TrafficState:
        raise FatalIntegrationError(self.REASON)

    def read_weight(self, ref: ModelRef) -> TrafficState:
        raise NotFoundError(self.REASON)

    def promote(self, ref: ModelRef) -> TrafficState:
        raise FatalIntegrationError(self.REASON)

    def abort(self, ref: ModelRef) -> TrafficState:
        raise NotFoundError(self.REASON)  # nothing was ever mirrored: nothing to take back


def target_for(
    rollout: Rollout, traffic: TrafficTarget, mirror: MirrorTarget | None
) -> TrafficTarget:
    """The target that moves ``rollout``: the mirror for a shadow run, else the traffic."""
    if rollout.strategy is not Strategy.SHADOW:
        return traffic
    if mirror is None:
        return NoMirror()
    return ShadowTraffic(mirror, rollout.canary_revision)
