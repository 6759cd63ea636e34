"""Closed vocabularies of judgement: verdicts, classifications, metric kinds, directions."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """The outcome of judging one metric or a whole analysis.

    ``pass`` means the evidence rules out harm beyond tolerance; ``fail`` means evidence of harm
    beyond tolerance crossed its boundary; ``inconclusive`` means not enough evidence yet;
    ``error`` means data were missing or the source failed. Missing data never passes.
    """

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class Classification(StrEnum):
    """Kayenta-compatible classification of a metric (canary relative to baseline)."""

    PASS = "pass"
    HIGH = "high"
    LOW = "low"
    NODATA = "nodata"


class MetricKind(StrEnum):
    HISTOGRAM = "histogram"
    PROPORTION = "proportion"
    CATEGORICAL = "categorical"
    SAMPLES = "samples"
    THRESHOLD = "threshold"
    # the same request decided by incumbent and challenger (a shadow run): a paired table
    PAIRED = "paired"


class Direction(StrEnum):
    """Which change of the canary relative to baseline is harmful."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"
