"""Traffic target for KServe InferenceServices (Serverless mode, ``canaryTrafficPercent``)."""

from analyzer.targets.kserve.status import parse_traffic_state
from analyzer.targets.kserve.target import KServeTarget, KServeTargetSettings

__all__ = ["KServeTarget", "KServeTargetSettings", "parse_traffic_state"]
