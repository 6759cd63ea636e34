"""Counter increases (with resets), le parsing and cumulative-to-per-bucket conversion."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.metrics.prometheus.client import PrometheusClient, RetryPolicy, Series, form_encode
from analyzer.metrics.prometheus.convert import (
    PART_LABEL,
    UnusableData,
    check_fresh,
    counter_increase,
    endpoint_query,
    increases_from_endpoints,
    parse_le,
    per_bucket_counts,
    series_key,
    sum_increases_by,
    sum_values_by,
)


def test_increase_from_the_reference_sample_before_the_window() -> None:
    points = [(90.0, 100.0), (100.0, 110.0), (115.0, 130.0), (130.0, 160.0)]
    assert counter_increase(points, start=100.0) == 50.0


def test_counter_reset_counts_the_new_value_as_increase() -> None:
    # 100 -> 130 (+30), restart -> 5 (+5), -> 25 (+20)
    points = [(100.0, 100.0), (115.0, 130.0), (130.0, 5.0), (145.0, 25.0)]
    assert counter_increase(points, start=100.0) == 55.0


def test_two_resets_in_a_row() -> None:
    points = [(0.0, 50.0), (10.0, 3.0), (20.0, 1.0), (30.0, 4.0)]
    assert counter_increase(points, start=0.0) == 3.0 + 1.0 + 3.0


def test_series_born_inside_the_window_counts_from_zero() -> None:
    assert counter_increase([(110.0, 7.0), (125.0, 9.0)], start=100.0) == 9.0


def test_nan_counter_sample_is_unusable() -> None:
    with pytest.raises(UnusableData, match="NaN"):
        counter_increase([(100.0, 1.0), (110.0, math.nan)], start=90.0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0.005", 0.005), ("5", 5.0), ("1e+03", 1000.0), ("+Inf", math.inf), ("Inf", math.inf)],
)
def test_parse_le(raw: str, expected: float) -> None:
    assert parse_le(raw) == expected


@pytest.mark.parametrize("raw", ["fast", "NaN", "-Inf", ""])
def test_parse_le_refuses_garbage(raw: str) -> None:
    with pytest.raises(UnusableData):
        parse_le(raw)


def test_per_bucket_from_cumulative_in_any_label_order() -> None:
    cumulative = {"+Inf": 100.0, "0.1": 60.0, "0.05": 20.0, "1": 95.0}
    bounds, counts = per_bucket_counts(cumulative, strict=True)
    assert bounds == (0.05, 0.1, 1.0, math.inf)
    assert counts == (20, 40, 35, 5)
    assert sum(counts) == 100


def test_missing_inf_bucket_is_a_partial_histogram() -> None:
    with pytest.raises(UnusableData, match=r"\+Inf"):
        per_bucket_counts({"0.1": 5.0, "1": 7.0}, strict=True)


def test_decreasing_cumulative_is_partial_in_strict_mode() -> None:
    with pytest.raises(UnusableData, match="partial histogram"):
        per_bucket_counts({"0.1": 50.0, "1": 40.0, "+Inf": 60.0}, strict=True)


def test_decreasing_cumulative_is_flattened_for_extrapolated_counts() -> None:
    _, counts = per_bucket_counts({"0.1": 50.4, "1": 49.6, "+Inf": 60.2}, strict=False)
    assert counts == (50, 0, 10)


def test_duplicate_bounds_are_refused() -> None:
    with pytest.raises(UnusableData, match="duplicate"):
        per_bucket_counts({"1": 1.0, "1.0": 2.0, "+Inf": 3.0}, strict=True)


def test_sum_increases_by_label_across_pods() -> None:
    series = [
        Series(labels={"le": "0.1", "pod": "a"}, points=((0.0, 1.0), (10.0, 4.0))),
        Series(labels={"le": "0.1", "pod": "b"}, points=((0.0, 2.0), (10.0, 1.0))),  # reset
        Series(labels={"le": "+Inf", "pod": "a"}, points=((0.0, 1.0), (10.0, 9.0))),
    ]
    assert sum_increases_by(series, "le", start=0.0) == {"0.1": 4.0, "+Inf": 8.0}


def test_series_without_the_grouping_label_is_unusable() -> None:
    with pytest.raises(UnusableData, match="no 'decision' label"):
        sum_increases_by([Series(labels={}, points=((1.0, 1.0),))], "decision", start=0.0)


def test_non_finite_instant_value_is_unusable() -> None:
    with pytest.raises(UnusableData, match="non-finite"):
        sum_values_by([Series(labels={"le": "1"}, points=((1.0, math.nan),))], "le")


def test_stale_series_are_refused() -> None:
    series = [Series(labels={}, points=((100.0, 1.0), (400.0, 2.0)))]
    check_fresh(series, end=600.0, staleness=300.0, what="r")
    with pytest.raises(UnusableData, match="stale"):
        check_fresh(series, end=800.0, staleness=300.0, what="r")


def _part(part: str, value: float, **labels: str) -> Series:
    return Series(labels={PART_LABEL: part, **labels}, points=((1.0, value),))


ALIVE = _part("alive", 1.0)


def test_endpoint_increases_group_and_count_new_series_from_zero() -> None:
    series = [
        _part("last", 30.0, le="0.1", pod="a"),
        _part("ref", 10.0, le="0.1", pod="a"),
        _part("last", 5.0, le="0.1", pod="b"),  # born inside the window
        _part("last", 8.0, le="0.1", pod="c"),  # went away inside the window: counted
        _part("ref", 2.0, le="0.1", pod="c"),
        _part("ref", 50.0, le="0.1", pod="d"),  # gone before the window: contributes nothing
        _part("resets", 0.0, le="0.1", pod="a"),
        ALIVE,
    ]
    assert increases_from_endpoints(series, "le") == {"0.1": 20.0 + 5.0 + 6.0}


@pytest.mark.parametrize(
    "series",
    [
        [_part("last", 3.0), _part("ref", 10.0), _part("resets", 1.0), ALIVE],  # a reset
        [_part("last", 3.0), _part("ref", 10.0), _part("resets", 0.0), ALIVE],  # went down
        [_part("last", 13.0), _part("ref", 10.0)],  # nothing fresh at the end: stale?
        [_part("ref", 10.0), ALIVE],  # no sample inside the window
    ],
)
def test_endpoint_increases_defer_to_raw_reads_when_not_exact(series: list[Series]) -> None:
    assert increases_from_endpoints(series, None) is None


def test_endpoint_query_parts() -> None:
    query = endpoint_query('m{r="x"}', 3600, 600, 300)
    assert 'last_over_time(m{r="x"}[3600s])' in query
    assert 'last_over_time(m{r="x"}[600s] offset 3600s)' in query
    assert 'resets(m{r="x"}[4200s])' in query
    assert 'count(last_over_time(m{r="x"}[300s]))' in query
    assert query.count(" or ") == 3


@given(st.dictionaries(st.text(min_size=1), st.text(), min_size=1, max_size=4))
def test_form_encoding_matches_urllib(params: dict[str, str]) -> None:
    assert form_encode(params).decode("ascii") == urlencode(params)


@settings(max_examples=50, deadline=None)
@given(
    query=st.text(min_size=1, max_size=200),
    at=st.floats(0, 2e9, allow_nan=False),
    timeout=st.floats(0.01, 30, allow_nan=False),
)
def test_a_clients_bodies_are_the_urlencoded_params(query: str, at: float, timeout: float) -> None:
    """The query's part of the body is cached (issue 20): asked twice, with other times, the
    bodies are still ``urlencode`` of the parameters in their order."""
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        data = {"resultType": "vector", "result": []}
        return httpx.Response(200, json={"status": "success", "data": data})

    http = httpx.Client(transport=httpx.MockTransport(answer))
    client = PrometheusClient(
        base_url="http://prometheus:9090", http=http, timeout=timeout, retry=RetryPolicy()
    )
    start, end = datetime.fromtimestamp(at, UTC), datetime.fromtimestamp(at + 60.5, UTC)
    limit = f"{timeout * 0.9:.9f}".rstrip("0").rstrip(".")
    for when in (start, end):
        client.instant(query, when)
        assert bodies.pop().decode() == urlencode(
            {"query": query, "time": f"{when.timestamp():.3f}", "timeout": limit}
        )
    client.range(query, start, end, 15.0)
    assert bodies.pop().decode() == urlencode(
        {"query": query, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}",
         "step": "15", "timeout": limit}
    )  # fmt: skip


label_names = st.sampled_from(
    ["__name__", "le", "a", "canary_analyzer_tag", "canary_analyzerx", "b"]
)


@given(st.dictionaries(label_names, st.text(max_size=3)), st.randoms())
def test_series_key_is_the_sorted_labels_without_name_and_tags(
    labels: dict[str, str], random: Any
) -> None:
    """Cached per label items (issue 20): the same key as the filter-and-sort it was, whatever
    the labels' order."""
    expected = tuple(
        sorted(
            (k, v)
            for k, v in labels.items()
            if k != "__name__" and not k.startswith("canary_analyzer_")
        )
    )
    shuffled = list(labels.items())
    random.shuffle(shuffled)
    for _ in range(2):
        assert series_key(labels) == expected
        assert series_key(dict(shuffled)) == expected
