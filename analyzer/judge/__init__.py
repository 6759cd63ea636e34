"""The canary judge: turns cumulative metric observations into verdicts (pure, sequential).

Public API::

    judge(profile, observations, state=None) -> (AnalysisResult, JudgeState)

``JudgeState`` is an immutable value with ``to_json()`` / ``JudgeState.from_json(d)`` that the
caller persists between looks. See ``docs/statistics.md`` for the methods.
"""

from analyzer.judge.pipeline import judge
from analyzer.judge.state import JudgeState, MetricState

__all__ = ["JudgeState", "MetricState", "judge"]
