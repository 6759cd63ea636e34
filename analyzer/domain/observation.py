"""What a metric source hands the judge: cumulative evidence per revision for one metric.

Every observation is *cumulative since the start of the analysis window* (Prometheus counter
increases), never a delta since the previous look: the judge derives deltas itself when it needs
them, so a missed look loses nothing. A source that cannot produce evidence returns
:class:`MissingObservation` with the reason; the judge turns it into ``error``/``nodata``, never a
pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analyzer.domain.errors import InvalidInputError


@dataclass(frozen=True, kw_only=True, slots=True)
class EventCount:
    """``events`` out of ``total`` (errors out of requests, false positives out of legit txns)."""

    events: int
    total: int

    def __post_init__(self) -> None:
        if self.events < 0 or self.total < 0:
            raise InvalidInputError("counts must be non-negative")
        if self.events > self.total:
            raise InvalidInputError(f"events ({self.events}) exceed total ({self.total})")


@dataclass(frozen=True, kw_only=True, slots=True)
class HistogramObservation:
    """Per-bucket (not cumulative-over-``le``) request counts per revision.

    ``bounds`` are the buckets' upper bounds in increasing order; the last is ``math.inf``.
    """

    bounds: tuple[float, ...]
    baseline: tuple[int, ...]
    canary: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.bounds) < 2:
            raise InvalidInputError("a histogram needs at least two buckets", field="bounds")
        if any(
            not upper > lower for lower, upper in zip(self.bounds, self.bounds[1:], strict=False)
        ):
            raise InvalidInputError("bucket bounds must be strictly increasing", field="bounds")
        if not math.isinf(self.bounds[-1]):
            raise InvalidInputError('the last bucket bound must be "+Inf"', field="bounds")
        for arm, counts in (("baseline", self.baseline), ("canary", self.canary)):
            if len(counts) != len(self.bounds):
                raise InvalidInputError(
                    f"{len(counts)} counts for {len(self.bounds)} buckets", field=arm
                )
            if any(c < 0 for c in counts):
                raise InvalidInputError("bucket counts must be non-negative", field=arm)


@dataclass(frozen=True, kw_only=True, slots=True)
class ProportionObservation:
    baseline: EventCount
    canary: EventCount


@dataclass(frozen=True, kw_only=True, slots=True)
class CategoricalObservation:
    """Counts per category, in the order of ``categories`` (ordinal metrics: least severe first)."""

    categories: tuple[str, ...]
    baseline: tuple[int, ...]
    canary: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.categories) < 2:
            raise InvalidInputError("at least two categories are needed", field="categories")
        if len(set(self.categories)) != len(self.categories):
            raise InvalidInputError("category names must be unique", field="categories")
        for arm, counts in (("baseline", self.baseline), ("canary", self.canary)):
            if len(counts) != len(self.categories):
                raise InvalidInputError(
                    f"{len(counts)} counts for {len(self.categories)} categories", field=arm
                )
            if any(c < 0 for c in counts):
                raise InvalidInputError("category counts must be non-negative", field=arm)


@dataclass(frozen=True, kw_only=True, slots=True)
class PairedObservation:
    """Requests decided by both the incumbent and the challenger (a shadow run's mirrored
    requests): ``pairs[i][j]`` counts requests the incumbent decided ``categories[i]`` and the
    challenger ``categories[j]``. The diagonal agrees; everything else is a disagreement."""

    categories: tuple[str, ...]
    pairs: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if len(self.categories) < 2:
            raise InvalidInputError("at least two categories are needed", field="categories")
        if len(set(self.categories)) != len(self.categories):
            raise InvalidInputError("category names must be unique", field="categories")
        k = len(self.categories)
        if len(self.pairs) != k or any(len(row) != k for row in self.pairs):
            raise InvalidInputError(
                f"pairs must be a {k} x {k} table (incumbent rows, challenger columns)",
                field="pairs",
            )
        if any(c < 0 for row in self.pairs for c in row):
            raise InvalidInputError("pair counts must be non-negative", field="pairs")

    @property
    def total(self) -> int:
        return sum(sum(row) for row in self.pairs)

    @property
    def disagreements(self) -> int:
        return self.total - sum(self.pairs[i][i] for i in range(len(self.categories)))

    def count(self, incumbent: str, challenger: str) -> int:
        return self.pairs[self.categories.index(incumbent)][self.categories.index(challenger)]


@dataclass(frozen=True, kw_only=True, slots=True)
class SamplesObservation:
    """Raw values per revision (one point per interval and instance, as Kayenta takes them).

    May contain NaN; the metric's ``nan_strategy`` decides what happens to them.
    """

    baseline: tuple[float, ...]
    canary: tuple[float, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ThresholdObservation:
    """A single value of the canary (and, when available, of the baseline) for an SLO bound."""

    canary: float
    baseline: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class MissingObservation:
    """No usable evidence: the source failed or returned nothing. Never judged as a pass.

    ``source_error`` is true when the source itself failed (timeout, 5xx, unreachable) and false
    when it answered but had no data (empty selector, NaN, a revision with no traffic yet).
    """

    reason: str
    source_error: bool = False


Observation = (
    HistogramObservation
    | ProportionObservation
    | CategoricalObservation
    | PairedObservation
    | SamplesObservation
    | ThresholdObservation
    | MissingObservation
)
