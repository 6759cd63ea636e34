"""The evaluation gate: CI's evaluation suites must have passed for the exact model version.

Before a model version takes canary traffic, the suites its policy names (by default the
golden-set evaluation; often a load test too) must each have a recorded result for *this model
and this registry version*, and for every suite the **latest** result decides:

* it passed (a later failure withdraws an earlier pass: the newest word on a version counts);
* it is not older than ``max_age_days`` at ``context.now`` (a golden set moves on; a stale pass
  says little about today's data), and not dated after ``now`` (a clock or data error);
* when both the result and the rollout name an artifact digest (and ``require_digest_match``),
  they are equal: the suite ran on the bytes being deployed, not on a rebuild with the same
  version number.

A rollout that names no ``model_version`` cannot be looked up and is closed. Results are read
through :class:`EvaluationSource` (the ledger's ``evaluation_recorded`` entries, recorded by CI
through ``POST /api/v1/evaluations``); this module only judges them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from analyzer.domain.model import ModelRef
from gates.base import GateContext, GateDecision, JsonValue, closed, opened

# A suite name as CI writes it ("golden-set", "load-test", "fairness.v2"): short, no spaces.
SUITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RECORD_HINT = "CI records it with POST /api/v1/evaluations"


class EvaluationGateConfig(BaseModel):
    """Which suites must pass, how old a result may be, and whether digests must match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required_suites: tuple[str, ...] = Field(default=("golden-set",), min_length=1, max_length=20)
    max_age_days: int | None = Field(default=90, ge=1, le=3650)
    require_digest_match: bool = True

    @field_validator("required_suites")
    @classmethod
    def _suites(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for suite in value:
            if not re.fullmatch(SUITE_PATTERN, suite):
                raise ValueError(
                    f"{suite!r} is not a suite name: letters, digits and '.', '_', '-', "
                    "at most 64 characters"
                )
        duplicates = sorted({s for s in value if value.count(s) > 1})
        if duplicates:
            raise ValueError(f"suite listed more than once: {', '.join(duplicates)}")
        return value


@dataclass(frozen=True, kw_only=True, slots=True)
class EvaluationResult:
    """One suite's result for one model version, as CI recorded it (a ledger entry)."""

    seq: int
    model: ModelRef
    model_version: str
    suite: str
    passed: bool
    recorded_at: datetime
    recorded_by: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    report_url: str | None = None
    commit: str | None = None
    artifact_digest: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "seq": self.seq,
            "passed": self.passed,
            "recorded_at": self.recorded_at.isoformat(),
            "recorded_by": self.recorded_by,
            "metrics": dict(self.metrics),
            "report_url": self.report_url,
            "commit": self.commit,
            "artifact_digest": self.artifact_digest,
        }


class EvaluationSource(Protocol):
    """Where the gate reads recorded results from (the ledger implements it).

    Contract: ``results_for`` returns the results recorded for ``model`` at ``model_version``,
    in any order (the gate picks the latest per suite by time, then sequence number). It may
    raise when the store cannot be read; the gate is then closed.
    """

    def results_for(self, model: ModelRef, model_version: str) -> Sequence[EvaluationResult]: ...


def latest_per_suite(
    results: Sequence[EvaluationResult], model: ModelRef, model_version: str
) -> dict[str, EvaluationResult]:
    """The newest result of each suite for exactly this model and version."""
    latest: dict[str, EvaluationResult] = {}
    for result in results:
        if result.model != model or result.model_version != model_version:
            continue  # another version's pass says nothing about this one
        seen = latest.get(result.suite)
        if seen is None or (result.recorded_at, result.seq) > (seen.recorded_at, seen.seq):
            latest[result.suite] = result
    return latest


def suite_problem(
    suite: str,
    result: EvaluationResult | None,
    context: GateContext,
    config: EvaluationGateConfig,
) -> str | None:
    """Why ``suite`` keeps the gate closed, or None when its latest result counts."""
    what = f"{context.model} version {context.canary_version}"
    if result is None:
        return f"no {suite} evaluation recorded for {what}; {RECORD_HINT}"
    when = f"entry {result.seq}, {result.recorded_at.isoformat()}"
    if not result.passed:
        return f"the latest {suite} evaluation of {what} failed ({when})"
    if result.recorded_at.utcoffset() is None or result.recorded_at > context.now:
        return f"the latest {suite} evaluation of {what} is dated in the future ({when})"
    if config.max_age_days is not None:
        age = context.now - result.recorded_at
        if age > timedelta(days=config.max_age_days):
            return (
                f"the latest {suite} evaluation of {what} is {age.days} days old (at most "
                f"{config.max_age_days} allowed); run it again ({when})"
            )
    ours, theirs = context.artifact_digest, result.artifact_digest
    if config.require_digest_match and ours and theirs and ours != theirs:
        return (
            f"the latest {suite} evaluation of {what} ran on artifact {theirs}, but the rollout "
            f"deploys {ours} ({when})"
        )
    return None


class EvaluationGate:
    """Open once every required suite's latest result for the model version counts."""

    def __init__(
        self,
        source: EvaluationSource,
        config: EvaluationGateConfig | None = None,
        *,
        name: str = "evaluation",
    ) -> None:
        self._source = source
        self._config = config or EvaluationGateConfig()
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def check(self, context: GateContext) -> GateDecision:
        config = self._config
        evidence: dict[str, JsonValue] = {
            "model_version": context.canary_version,
            "artifact_digest": context.artifact_digest,
            "required_suites": list(config.required_suites),
            "max_age_days": config.max_age_days,
            "require_digest_match": config.require_digest_match,
        }
        version = context.canary_version
        if not version:
            return closed(
                self._name,
                context,
                "the rollout names no model version to look up evaluations; start it with "
                "model_version",
                evidence,
            )
        try:
            results = self._source.results_for(context.model, version)
        except Exception as exc:  # an unreadable store must not open the gate
            return closed(
                self._name,
                context,
                f"evaluations could not be read ({type(exc).__name__}); closed until they can",
                evidence,
            )
        latest = latest_per_suite(results, context.model, version)
        problems: list[str] = []
        suites: dict[str, JsonValue] = {}
        for suite in config.required_suites:
            result = latest.get(suite)
            suites[suite] = result.to_json() if result is not None else None
            problem = suite_problem(suite, result, context, config)
            if problem is not None:
                problems.append(problem)
        evidence["suites"] = suites
        if problems:
            return closed(self._name, context, "; ".join(problems), evidence)
        names = ", ".join(config.required_suites)
        return opened(
            self._name, context, f"{names} passed for {context.model} version {version}", evidence
        )
