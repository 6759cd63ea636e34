"""The 0-100 score of an analysis: Kayenta's group-weighted sum (WeightedSumScorer), fail-closed.

The score is a summary for people and for Kayenta migrants; the analysis *verdict* decides.
Kayenta's rules, in order:

1. a critical result that did not pass (``critical`` set and any verdict but ``pass``)
   makes the score 0;
2. if half or more of the results are ``nodata`` (not required to have data), the score is 0;
3. otherwise each group scores ``100 x passes / counted`` and the groups are summed with their
   weights; a group whose results are all uncounted is neutral (counts as 100). Groups without a
   configured weight share ``100 - sum(configured weights)`` equally. Rounded half-up to 0.01.

How our results map onto Kayenta's labels (see ``docs/statistics-samples.md``):

=================================================  ============================  ===============
result                                             Kayenta label                 in its group
=================================================  ============================  ===============
verdict ``pass``                                   Pass                          pass
verdict ``fail``                                   High / Low                    counted, failed
classification ``nodata``, verdict ``error``       NodataFailMetric              counted, failed
classification ``nodata``, other verdicts          Nodata                        not counted
verdict ``error`` with data                        (Kayenta: Error, ignored)     counted, failed
verdict ``inconclusive`` with data                 (none)                        counted, failed
=================================================  ============================  ===============

The last two rows are deliberate differences: Kayenta drops errored metrics from the score (so a
crashing metric reads as harmless) and has no "not decided yet"; we count both against the
group, so only evidence of no harm raises the score. A metric's ``weight`` weighs it inside its
group (Kayenta: every metric weighs 1). Results without a group form one unnamed group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.result import MetricResult
from analyzer.domain.verdict import Classification, Verdict

NODATA_SHARE_LIMIT = 0.5
"""Kayenta's NODATA_THRESHOLD: this share of no-data results or more scores 0."""

_WEIGHT_SLACK = 1e-9


class _Tally(Enum):
    PASS = "pass"
    FAIL = "fail"
    NODATA = "nodata"


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupScore:
    """One group's share of passing results; ``no_data`` when nothing in it was counted."""

    name: str | None
    score: float
    no_data: bool
    weight: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ScoreReport:
    """The summary score with the group scores behind it and why it is what it is."""

    score: float
    groups: tuple[GroupScore, ...]
    reason: str


def score(
    results: Sequence[MetricResult], group_weights: Mapping[str, float] | None = None
) -> float:
    """Kayenta's summary score (0-100) of ``results``; see the module docstring for the rules."""
    return score_report(results, group_weights).score


def score_report(
    results: Sequence[MetricResult], group_weights: Mapping[str, float] | None = None
) -> ScoreReport:
    """The score together with its group scores and a one-sentence reason."""
    weights = dict(group_weights or {})
    _validate(results, weights)
    if not results:
        return ScoreReport(score=0.0, groups=(), reason="No metrics to score.")
    groups = _group_scores(results, weights)
    failed = [r for r in results if r.critical and _tally(r) is not _Tally.PASS]
    if failed:
        reason = f"Critical metric {failed[0].name} did not pass: {failed[0].reason}"
        return ScoreReport(score=0.0, groups=groups, reason=reason)
    nodata = sum(1 for r in results if _tally(r) is _Tally.NODATA)
    if nodata / len(results) >= NODATA_SHARE_LIMIT:
        reason = f"{nodata} of {len(results)} metrics have no data (50% or more)."
        return ScoreReport(score=0.0, groups=groups, reason=reason)
    total = sum((100.0 if g.no_data else g.score) * g.weight / 100 for g in groups)
    return ScoreReport(
        score=_round_half_up(total), groups=groups, reason="Group-weighted share of passes."
    )


def _validate(results: Sequence[MetricResult], weights: Mapping[str, float]) -> None:
    for name, weight in weights.items():
        if not weight >= 0:
            raise InvalidInputError("group weights must be >= 0", field=f"group_weights.{name}")
    if sum(weights.values()) > 100 + _WEIGHT_SLACK:
        # Kayenta does not check this; the score would leave 0-100 or give groups negative weight.
        raise InvalidInputError(
            "group weights must not sum to more than 100", field="group_weights"
        )
    for result in results:
        if not result.weight >= 0:
            raise InvalidInputError("metric weights must be >= 0", field=f"{result.name}.weight")


def _tally(result: MetricResult) -> _Tally:
    if result.classification is Classification.NODATA and result.verdict is not Verdict.ERROR:
        return _Tally.NODATA
    if result.verdict is Verdict.PASS:
        return _Tally.PASS
    return _Tally.FAIL


def _group_scores(
    results: Sequence[MetricResult], weights: Mapping[str, float]
) -> tuple[GroupScore, ...]:
    members: dict[str | None, list[MetricResult]] = {}
    for result in results:
        members.setdefault(result.group, []).append(result)
    unweighted = [name for name in members if name is None or name not in weights]
    shared = (100 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    groups = []
    for name, group in members.items():
        counted = [r for r in group if _tally(r) is not _Tally.NODATA]
        denominator = sum(r.weight for r in counted)
        passed = sum(r.weight for r in counted if _tally(r) is _Tally.PASS)
        no_data = denominator == 0
        weight = weights[name] if name is not None and name in weights else shared
        groups.append(
            GroupScore(
                name=name,
                score=0.0 if no_data else 100 * passed / denominator,
                no_data=no_data,
                weight=weight,
            )
        )
    return tuple(groups)


def _round_half_up(value: float) -> float:
    """Kayenta rounds with BigDecimal HALF_UP on the decimal string of the double."""
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
