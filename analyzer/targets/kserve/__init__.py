"""Traffic target for KServe InferenceServices (Serverless mode, ``canaryTrafficPercent``)."""

from analyzer.targets.kserve.target import KServeTarget, KServeTargetSettings, parse_traffic_state

__all__ = ["KServeTarget", "KServeTargetSettings", "parse_traffic_state"]
