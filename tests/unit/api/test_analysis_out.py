"""The Argo endpoint's answer is built as JSON directly (no model validated and dumped per call):
it must be exactly what ``AnalysisOut`` would have rendered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analyzer.analyses.service import AnalysisAnswer
from analyzer.api.analyses import out
from analyzer.api.schemas import AnalysisIn, AnalysisOut
from analyzer.metrics.base import TimeWindow

START = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)


def _answer(result: dict[str, Any], end: datetime) -> AnalysisAnswer:
    return AnalysisAnswer(
        result=result,
        session_id=3,
        look=4,
        cached=False,
        window=TimeWindow(start=START, end=end),
        ledger_seq=77,
    )


RESULTS = [
    {"verdict": "pass", "score": 100, "reason": "all good", "alpha": 0.05, "metrics": []},
    {
        "verdict": "inconclusive",
        "score": 12.5,
        "reason": "not yet",
        "alpha": 0.01,
        "warnings": ["few requests", "ünïcode"],
        "metrics": [{"name": "errors", "n": {"canary": 10}, "e_value": 1.25e-07, "ci": [0, 1]}],
        "bake": {"looks": 10, "seconds": 540.0, "elapsed": 0.5, "horizon_reached": False},
    },
    {"verdict": "error", "score": None, "reason": "no data", "alpha": None},
]


@pytest.mark.parametrize("result", RESULTS)
@pytest.mark.parametrize("end", [START + timedelta(minutes=5), START + timedelta(seconds=1.0005)])
def test_the_answer_is_what_the_model_renders(result: dict[str, Any], end: datetime) -> None:
    body = AnalysisIn.model_validate(
        {
            "model": {"namespace": "risk-prod", "name": "fraud"},
            "canary": "fraud-00002",
            "baseline": "fraud-00001",
            "profile": "knative",
            "rollout": "fraud-rollout",
        }
    )
    built = out(body, "knative", _answer(result, end))
    rendered = AnalysisOut.model_validate(built).model_dump(mode="json")
    assert json.dumps(built) == json.dumps(rendered)
