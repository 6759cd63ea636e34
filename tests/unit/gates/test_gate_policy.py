"""Per-tier gate policies, per-model overrides, evaluation and the Flagger answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef, Tier
from gates.base import GateContext, check_safely
from gates.flagger import confirm_promotion_answer
from gates.policy import (
    CHANGE_WINDOW,
    MANUAL_APPROVAL,
    SERVICENOW_CHANGE,
    GatePolicy,
    GatePolicyConfig,
    GateRequirement,
    evaluate_gates,
)
from tests.unit.gates.helpers import MODEL, FixedGate, context

CONFIG = GatePolicyConfig()


@pytest.mark.parametrize(
    ("tier", "weight", "required"),
    [
        (Tier.REGULATED, 50, ()),
        (Tier.REGULATED, 100, (SERVICENOW_CHANGE, MANUAL_APPROVAL)),
        (Tier.HOT_PATH, 10, (CHANGE_WINDOW,)),
        (Tier.HOT_PATH, 100, (CHANGE_WINDOW,)),
        (Tier.STANDARD, 50, ()),
        (Tier.STANDARD, 100, (CHANGE_WINDOW,)),
        (Tier.LONG_TAIL, 100, ()),
    ],
)
def test_default_policy_per_tier(tier: Tier, weight: int, required: tuple[str, ...]) -> None:
    assert CONFIG.policy_for(MODEL, tier).required_for(weight) == required


def test_a_model_can_have_its_own_policy() -> None:
    config = GatePolicyConfig.model_validate(
        {
            "models": {
                "credit/pd-scorer": {
                    "requirements": [
                        {"gate": "manual-approval", "from_weight": 25},
                        {"gate": "change-window", "from_weight": 0},
                    ]
                }
            }
        }
    )
    policy = config.policy_for(MODEL, Tier.REGULATED)
    assert policy.required_for(10) == (CHANGE_WINDOW,)
    assert policy.required_for(25) == (MANUAL_APPROVAL, CHANGE_WINDOW)
    other = ModelRef(namespace="credit", name="limit-model")
    assert config.policy_for(other, Tier.REGULATED).required_for(25) == ()


def test_a_tier_default_can_be_replaced() -> None:
    config = GatePolicyConfig.model_validate(
        {"tiers": {"long-tail": {"requirements": [{"gate": "change-window"}]}}}
    )
    assert config.policy_for(MODEL, Tier.LONG_TAIL).required_for(100) == (CHANGE_WINDOW,)
    assert config.policy_for(MODEL, Tier.STANDARD).required_for(100) == (CHANGE_WINDOW,)


def test_invalid_policies_are_rejected() -> None:
    with pytest.raises(ValidationError, match="more than once"):
        GatePolicy(requirements=(GateRequirement(gate="a"), GateRequirement(gate="a")))
    with pytest.raises(ValidationError):
        GateRequirement(gate="a", from_weight=101)
    with pytest.raises(ValidationError):
        GatePolicyConfig.model_validate({"tiers": {"platinum": {}}})
    with pytest.raises((ValidationError, InvalidInputError)):
        GatePolicyConfig.model_validate({"models": {"not a model": {}}})


REGULATED = CONFIG.policy_for(MODEL, Tier.REGULATED)


def test_evaluation_is_open_only_when_every_required_gate_is_open() -> None:
    gates = {
        SERVICENOW_CHANGE: FixedGate(SERVICENOW_CHANGE),
        MANUAL_APPROVAL: FixedGate(MANUAL_APPROVAL),
    }
    result = evaluate_gates(REGULATED, gates, context())
    assert result.open
    assert [d.gate for d in result.decisions] == [SERVICENOW_CHANGE, MANUAL_APPROVAL]


def test_one_closed_gate_closes_the_evaluation_and_all_gates_are_still_asked() -> None:
    change = FixedGate(SERVICENOW_CHANGE, is_open=False)
    approval = FixedGate(MANUAL_APPROVAL)
    result = evaluate_gates(
        REGULATED, {SERVICENOW_CHANGE: change, MANUAL_APPROVAL: approval}, context()
    )
    assert not result.open
    assert result.reason == "servicenow-change: not yet"
    assert approval.calls == 1
    assert [d.gate for d in result.closed_decisions()] == [SERVICENOW_CHANGE]


def test_required_gate_without_implementation_is_closed() -> None:
    result = evaluate_gates(REGULATED, {MANUAL_APPROVAL: FixedGate(MANUAL_APPROVAL)}, context())
    assert not result.open
    assert "servicenow-change is required but not configured" in result.reason


def test_gate_that_raises_is_closed_not_propagated() -> None:
    broken = FixedGate(SERVICENOW_CHANGE, error=RuntimeError("boom"))
    gates = {SERVICENOW_CHANGE: broken, MANUAL_APPROVAL: FixedGate(MANUAL_APPROVAL)}
    result = evaluate_gates(REGULATED, gates, context())
    assert not result.open
    assert result.decisions[0].evidence["error"] == "RuntimeError"


def test_step_below_the_threshold_needs_no_gate() -> None:
    result = evaluate_gates(REGULATED, {}, context(target_weight=50, target_step=2))
    assert result.open
    assert result.required == ()
    assert "no gates required" in result.reason


def test_evaluation_serialises_to_json() -> None:
    import json

    result = evaluate_gates(REGULATED, {}, context())
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["open"] is False
    assert payload["decisions"][0]["checked_at"] == "2026-11-25T14:00:00+00:00"


def test_flagger_confirm_promotion_answers_200_when_open_and_403_with_reason_when_closed() -> None:
    open_result = evaluate_gates(GatePolicy(), {}, context())
    assert confirm_promotion_answer(open_result).status_code == 200
    closed_result = evaluate_gates(REGULATED, {}, context())
    answer = confirm_promotion_answer(closed_result)
    assert answer.status_code == 403
    assert answer.body.startswith("promotion held: servicenow-change: gate servicenow-change")
    assert answer.media_type.startswith("text/plain")


def test_flagger_body_is_bounded() -> None:
    many = GatePolicy(requirements=tuple(GateRequirement(gate=f"g{i:03d}") for i in range(100)))
    answer = confirm_promotion_answer(evaluate_gates(many, {}, context()))
    assert answer.status_code == 403
    assert len(answer.body) <= 1000


def test_context_refuses_a_naive_time() -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        context(now=datetime(2026, 11, 25, 14, 0))
    with pytest.raises(InvalidInputError):
        context(target_weight=101)


def test_check_safely_survives_a_gate_whose_name_raises() -> None:
    class NamelessGate:
        @property
        def name(self) -> str:
            raise RuntimeError("no name")

        def check(self, ctx: GateContext) -> object:
            return "not a decision"

    decision = check_safely(NamelessGate(), context())  # type: ignore[arg-type]
    assert not decision.open
    assert decision.gate == "NamelessGate"
    assert decision.checked_at == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
