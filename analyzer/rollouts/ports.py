"""What the rollout engine needs from the outside, as small Protocols.

Wiring (``analyzer/wiring.py``) builds the concrete implementations: the analyzer from the
profile registry, a metric source and the judge; the gate checker from the tier policy and the
gates of ``gates/``. Both follow the failures-are-data rule: an analyzer that cannot fetch its
metrics returns an ``error`` verdict; a gate checker that cannot decide answers closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from analyzer.domain.events import LedgerEvent
from analyzer.domain.result import AnalysisResult
from analyzer.domain.rollout import Rollout


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysisOutcome:
    result: AnalysisResult
    judge_state: dict[str, Any]


class RolloutAnalyzer(Protocol):
    def analyze(self, rollout: Rollout, *, since: datetime, now: datetime) -> AnalysisOutcome:
        """Judge the canary against the baseline on evidence from ``since`` to ``now``.

        ``rollout.judge_state`` carries the sequential state of the previous look.
        """
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class GateCheck:
    open: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


class GateChecker(Protocol):
    def check(self, rollout: Rollout, *, target_step: int, now: datetime) -> GateCheck:
        """Are the gates of ``target_step`` open for this rollout now? Never raises."""
        ...


class OpenGates:
    """A gate checker for models whose policy requires no gates (and for tests)."""

    def check(self, rollout: Rollout, *, target_step: int, now: datetime) -> GateCheck:
        return GateCheck(open=True, reason="no gates required")


class TickObserver(Protocol):
    """Told what each committed tick wrote to the ledger (the serving process feeds its
    ``/metrics`` from it: target and gate errors, verdicts, appends). Called after the commit;
    an observer that raises is logged and ignored, never a reason to redo a tick."""

    def recorded(self, events: Sequence[LedgerEvent]) -> None: ...
