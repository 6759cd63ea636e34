"""The one rule for which gated step (rollouts) or wave (fleets) an approval is stored for."""

import pytest

from analyzer.domain.approvals import counted_approval
from analyzer.domain.errors import ConflictError


def _describe(k: int) -> str:
    return f"wave {k + 1}"


def test_nothing_asked_counts_for_the_first_gated_step() -> None:
    assert counted_approval(None, [2, 4], describe=_describe, nothing_left="x") == 2


def test_an_asked_step_the_gate_still_checks_is_kept() -> None:
    assert counted_approval(4, [2, 4], describe=_describe, nothing_left="x") == 4


def test_an_asked_step_the_gate_does_not_check_is_refused_naming_those_it_does() -> None:
    with pytest.raises(ConflictError) as caught:
        counted_approval(3, [2, 4], describe=_describe, nothing_left="x")
    assert str(caught.value) == (
        "an approval for wave 4 would never be counted: the manual-approval gate still checks "
        "wave 3, wave 5"
    )


def test_no_gated_step_left_is_a_conflict_with_the_callers_words() -> None:
    with pytest.raises(ConflictError, match=r"^no wave left$"):
        counted_approval(None, [], describe=_describe, nothing_left="no wave left")
