"""Canaries inferred from revision traffic alone (pure), and the discovery query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analyzer.backtests.discover import infer_canaries, traffic_query
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.profiles import load_preset, parse_profile

T0 = datetime(2026, 3, 4, 2, 0, tzinfo=UTC).timestamp()
MODEL = ModelRef(namespace="risk", name="fraud")
MINUTE = timedelta(minutes=1)


def series(active: range, total: int = 40, requests: float = 100.0) -> list[tuple[float, float]]:
    return [(T0 + 60 * k, requests if k in active else 0.0) for k in range(total)]


def test_a_promotion_and_a_rollback_are_found_with_their_windows() -> None:
    activity = {
        "fraud-00001": series(range(0, 20)),  # serves until fraud-00002 is promoted at 20
        "fraud-00002": series(range(10, 40)),  # canary from 10, alone from 20
        "fraud-00003": series(range(30, 35), requests=10.0),  # canary at 30, rolled back at 35
    }
    first, second = infer_canaries(activity, model=MODEL, step=MINUTE, interval=MINUTE * 2,
                                   max_looks=60)  # fmt: skip
    assert (first.baseline, first.canary) == ("fraud-00001", "fraud-00002")
    assert first.happened is not None
    assert first.happened.outcome == "promoted"
    # from the step before its first traffic to the last step both served (t = 19 min)
    assert first.looks[0].start.timestamp() == T0 + 60 * 9
    assert len(first.looks) == 5  # 10 minutes of overlap, a look every 2 minutes
    assert {look.start for look in first.looks} == {first.looks[0].start}
    assert (second.baseline, second.canary) == ("fraud-00002", "fraud-00003")
    assert second.happened is not None
    assert second.happened.outcome == "aborted"
    assert second.happened.stopped


def test_the_first_revision_is_no_canary_and_looks_are_capped() -> None:
    activity = {"a-1": series(range(0, 40)), "a-2": series(range(5, 40))}
    (only,) = infer_canaries(activity, model=MODEL, step=MINUTE, interval=MINUTE, max_looks=7)
    assert only.canary == "a-2"
    assert len(only.looks) == 7
    assert only.happened is not None
    assert only.happened.outcome == "in progress"
    assert infer_canaries({"a-1": series(range(0, 40))}, model=MODEL, step=MINUTE,
                          interval=MINUTE, max_looks=7) == []  # fmt: skip


def test_label_values_that_are_not_revision_names_are_ignored() -> None:
    activity = {"a-1": series(range(0, 40)), 'x"}': series(range(5, 40))}
    assert infer_canaries(activity, model=MODEL, step=MINUTE, interval=MINUTE, max_looks=7) == []


def test_the_traffic_query_drops_the_revision_matcher() -> None:
    knative = traffic_query(load_preset("knative"), MODEL)
    assert knative.label == "revision_name"
    assert "{revision}" not in knative.selector
    assert 'namespace_name="risk"' in knative.selector
    assert knative.promql(60).startswith("sum by (revision_name) (increase({__name__=~")
    business = traffic_query(load_preset("business"), MODEL)
    assert business.label == "revision"
    assert 'model="fraud"' in business.selector
    assert ",}" not in business.selector


def test_a_regex_revision_matcher_cannot_be_discovered() -> None:
    with pytest.raises(InvalidInputError, match="exact matcher"):
        traffic_query(load_preset("kserve"), MODEL)
    samples_only = parse_profile(
        "name: s\nmetrics:\n  - name: cpu\n    kind: samples\n"
        "    query: {expr: 'avg(cpu{revision=\"{revision}\"})'}\n"
    )
    with pytest.raises(InvalidInputError, match="no traffic counter"):
        traffic_query(samples_only, MODEL)
