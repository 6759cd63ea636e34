"""The evaluation gate over literal results: what opens it, each reason it stays closed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from pydantic import ValidationError

from analyzer.domain.model import ModelRef
from gates.base import GateDecision, check_safely
from gates.evaluation import EvaluationGate, EvaluationGateConfig, EvaluationResult
from tests.unit.gates.helpers import MODEL, NOW, context

VERSION = "3.2.0"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64
BOTH = EvaluationGateConfig(required_suites=("golden-set", "load-test"))


class Results:
    """A literal ``EvaluationSource``: hands back every result it holds, whatever is asked."""

    def __init__(self, *results: EvaluationResult, error: Exception | None = None) -> None:
        self.results = list(results)
        self.error = error
        self.asked: list[tuple[ModelRef, str]] = []

    def results_for(self, model: ModelRef, model_version: str) -> Sequence[EvaluationResult]:
        self.asked.append((model, model_version))
        if self.error is not None:
            raise self.error
        return self.results


def result(
    suite: str = "golden-set",
    *,
    passed: bool = True,
    seq: int = 10,
    age: timedelta = timedelta(days=1),
    version: str = VERSION,
    model: ModelRef = MODEL,
    digest: str | None = DIGEST,
) -> EvaluationResult:
    return EvaluationResult(
        seq=seq, model=model, model_version=version, suite=suite, passed=passed,
        recorded_at=NOW - age, recorded_by="ci-bot", metrics={"auc": 0.91, "ks": 0.42},
        report_url="https://ci.example/runs/1", commit="c" * 40, artifact_digest=digest,
    )  # fmt: skip


def ask(source: Results, config: EvaluationGateConfig = BOTH, **ctx: object) -> GateDecision:
    ctx.setdefault("artifact_digest", DIGEST)
    ctx.setdefault("target_weight", 10)
    ctx.setdefault("target_step", 0)
    return check_safely(EvaluationGate(source, config), context(**ctx))


def test_opens_when_every_required_suite_passed_for_this_version() -> None:
    source = Results(result("golden-set", seq=10), result("load-test", seq=11))
    decision = ask(source)
    assert decision.open, decision.reason
    assert decision.gate == "evaluation"
    assert decision.reason == f"golden-set, load-test passed for {MODEL} version {VERSION}"
    assert source.asked == [(MODEL, VERSION)]


def test_evidence_names_each_suites_entry() -> None:
    decision = ask(Results(result("golden-set", seq=10), result("load-test", seq=11)))
    golden = decision.evidence["suites"]["golden-set"]
    assert golden == {
        "seq": 10, "passed": True, "recorded_at": (NOW - timedelta(days=1)).isoformat(),
        "recorded_by": "ci-bot", "metrics": {"auc": 0.91, "ks": 0.42},
        "report_url": "https://ci.example/runs/1", "commit": "c" * 40, "artifact_digest": DIGEST,
    }  # fmt: skip
    assert decision.evidence["suites"]["load-test"]["seq"] == 11
    assert decision.evidence["model_version"] == VERSION
    assert decision.evidence["required_suites"] == ["golden-set", "load-test"]
    assert decision.evidence["max_age_days"] == 90


def test_a_missing_suite_closes_and_says_how_to_record_it() -> None:
    decision = ask(Results(result("golden-set")))
    assert not decision.open
    assert decision.reason == (
        f"no load-test evaluation recorded for {MODEL} version {VERSION}; "
        "CI records it with POST /api/v1/evaluations"
    )
    assert decision.evidence["suites"]["load-test"] is None
    assert decision.evidence["suites"]["golden-set"]["passed"] is True


def test_no_results_at_all_names_every_missing_suite() -> None:
    decision = ask(Results())
    assert not decision.open
    assert "no golden-set evaluation" in decision.reason
    assert "no load-test evaluation" in decision.reason


def test_the_latest_result_counts_a_later_failure_withdraws_an_earlier_pass() -> None:
    source = Results(
        result("golden-set", seq=10, age=timedelta(days=3)),
        result("golden-set", seq=12, passed=False, age=timedelta(days=1)),
        result("load-test", seq=11),
    )
    decision = ask(source)
    assert not decision.open
    assert decision.reason.startswith(f"the latest golden-set evaluation of {MODEL} version")
    assert "failed (entry 12" in decision.reason
    assert decision.evidence["suites"]["golden-set"]["seq"] == 12


def test_a_later_pass_after_a_failure_opens() -> None:
    source = Results(
        result("golden-set", seq=12, age=timedelta(days=1)),
        result("golden-set", seq=10, passed=False, age=timedelta(days=3)),
        result("load-test", seq=11),
    )
    assert ask(source).open


def test_same_instant_is_decided_by_sequence_number() -> None:
    same = timedelta(hours=2)
    source = Results(
        result("golden-set", seq=21, passed=False, age=same),
        result("golden-set", seq=20, age=same),
        result("load-test", seq=11),
    )
    decision = ask(source)
    assert not decision.open
    assert "entry 21" in decision.reason


def test_a_stale_pass_closes() -> None:
    source = Results(result("golden-set", age=timedelta(days=91)), result("load-test"))
    decision = ask(source)
    assert not decision.open
    assert "golden-set evaluation" in decision.reason
    assert "is 91 days old (at most 90 allowed); run it again" in decision.reason


def test_exactly_max_age_still_counts_and_no_limit_means_any_age() -> None:
    source = Results(result("golden-set", age=timedelta(days=90)), result("load-test"))
    assert ask(source).open
    ancient = Results(result("golden-set", age=timedelta(days=4000)))
    unlimited = EvaluationGateConfig(max_age_days=None)
    assert ask(ancient, unlimited).open


def test_a_result_dated_in_the_future_closes() -> None:
    source = Results(result("golden-set", age=-timedelta(minutes=5)), result("load-test"))
    decision = ask(source)
    assert not decision.open
    assert "dated in the future" in decision.reason


def test_a_digest_mismatch_closes() -> None:
    source = Results(result("golden-set", digest=OTHER_DIGEST), result("load-test"))
    decision = ask(source)
    assert not decision.open
    assert f"ran on artifact {OTHER_DIGEST}, but the rollout deploys {DIGEST}" in decision.reason


def test_digests_compare_only_when_both_are_known_and_required() -> None:
    mismatched = Results(result("golden-set", digest=OTHER_DIGEST), result("load-test"))
    assert ask(mismatched, BOTH.model_copy(update={"require_digest_match": False})).open
    assert ask(mismatched, artifact_digest=None).open  # the rollout names no digest
    unnamed = Results(result("golden-set", digest=None), result("load-test", digest=None))
    assert ask(unnamed).open


def test_a_rollout_without_a_model_version_closes() -> None:
    source = Results(result("golden-set"), result("load-test"))
    decision = ask(source, canary_version=None)
    assert not decision.open
    assert decision.reason.startswith("the rollout names no model version to look up evaluations")
    assert source.asked == []


def test_another_versions_pass_does_not_count() -> None:
    source = Results(
        result("golden-set", version="3.1.9"),
        result("load-test", version="3.1.9"),
        result("golden-set", version=VERSION, model=ModelRef(namespace="credit", name="other")),
    )
    decision = ask(source)
    assert not decision.open
    assert f"no golden-set evaluation recorded for {MODEL} version {VERSION}" in decision.reason
    assert decision.evidence["suites"] == {"golden-set": None, "load-test": None}


def test_an_unreadable_source_closes_with_the_reason() -> None:
    decision = ask(Results(error=ConnectionError("database gone")))
    assert not decision.open
    assert decision.reason == (
        "evaluations could not be read (ConnectionError); closed until they can"
    )


def test_default_config_requires_the_golden_set_only() -> None:
    config = EvaluationGateConfig()
    assert config.required_suites == ("golden-set",)
    assert config.max_age_days == 90
    assert config.require_digest_match is True
    assert ask(Results(result("golden-set")), config).open


@pytest.mark.parametrize(
    "values",
    [
        {"required_suites": []},
        {"required_suites": ["golden set"]},
        {"required_suites": ["golden-set", "golden-set"]},
        {"max_age_days": 0},
        {"unknown": 1},
    ],
)
def test_config_refuses_what_cannot_be_meant(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EvaluationGateConfig.model_validate(values)
