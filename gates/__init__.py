"""Promotion gates behind one Protocol (see ``gates.base`` and ``docs/gates.md``)."""

from gates.base import GateContext, GateDecision, PromotionGate, check_safely
from gates.policy import GateEvaluation, GatePolicy, GatePolicyConfig, evaluate_gates

__all__ = [
    "GateContext",
    "GateDecision",
    "GateEvaluation",
    "GatePolicy",
    "GatePolicyConfig",
    "PromotionGate",
    "check_safely",
    "evaluate_gates",
]
