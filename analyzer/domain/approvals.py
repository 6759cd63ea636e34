"""Which gated step (or wave) a manual approval is recorded for: the same rule for rollouts and
fleet rollouts, so an approval is never stored where no gate check will count it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from analyzer.domain.errors import ConflictError


def counted_approval(
    asked: int | None,
    remaining: Sequence[int],
    *,
    describe: Callable[[int], str],
    nothing_left: str,
) -> int:
    """The step an approval counts for: ``asked`` when the manual-approval gate still checks
    it, the first of ``remaining`` (the steps it still checks, in order) when nothing is asked.

    ``ConflictError`` (``nothing_left``) when the gate checks no step any more, or naming the
    steps it does check when ``asked`` is not one of them; ``describe`` names a step.
    """
    if not remaining:
        raise ConflictError(nothing_left)
    if asked is None:
        return remaining[0]
    if asked not in remaining:
        gated = ", ".join(describe(k) for k in remaining)
        raise ConflictError(
            f"an approval for {describe(asked)} would never be counted: the manual-approval "
            f"gate still checks {gated}"
        )
    return asked
