"""Traffic target for Argo Rollouts: read status, abort, promote (Argo owns the steps)."""

from analyzer.targets.argo.target import (
    ArgoRolloutTarget,
    ArgoTargetSettings,
    RolloutStatus,
    parse_rollout_status,
)

__all__ = ["ArgoRolloutTarget", "ArgoTargetSettings", "RolloutStatus", "parse_rollout_status"]
