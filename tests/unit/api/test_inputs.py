"""The shared input validators, without a server: edges of time, control characters, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from analyzer.api.inputs import (
    MAX_JSON_DEPTH,
    _scanned_body_problem,
    control_character_in,
    json_body_problem,
    utc_instant,
)
from analyzer.domain.errors import InvalidInputError


@pytest.mark.parametrize(
    "text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-23:59"]
)
def test_instants_whose_utc_form_leaves_the_calendar_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="1 to 9999") as caught:
        utc_instant(datetime.fromisoformat(text), "since")
    assert caught.value.field == "since"


def test_instants_at_the_edge_that_still_convert_are_kept_in_utc() -> None:
    late = utc_instant(datetime.fromisoformat("9999-12-31T23:59:59+01:00"), "at")
    assert late == datetime(9999, 12, 31, 22, 59, 59, tzinfo=UTC)
    early = utc_instant(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=-1))), "at")
    assert early is not None
    assert early.tzinfo is UTC
    with pytest.raises(InvalidInputError, match="time zone"):
        utc_instant(datetime(2026, 1, 1), "at")


def test_control_characters_are_named() -> None:
    assert control_character_in("risk-prod/fraud") is None
    assert control_character_in("a\x00b") == "U+0000"
    assert control_character_in("\x7f") == "U+007F"
    assert control_character_in("tab\there") == "U+0009"


def _nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


def test_depth_is_measured_without_recursion_even_far_past_the_recursion_limit() -> None:
    assert json_body_problem(_nested(MAX_JSON_DEPTH)) is None
    assert "deeper than 64" in (json_body_problem(_nested(MAX_JSON_DEPTH + 1)) or "")
    assert json_body_problem(_nested(200_000)) is not None


def test_brackets_inside_strings_do_not_count() -> None:
    body = json.dumps({"note": "[" * 500 + '\\"{' * 100}).encode()
    assert json_body_problem(body) is None


@pytest.mark.parametrize(
    ("escape", "refused"),
    [
        ("\\u0000", True),
        ("\\ud800", True),
        ("\\udc00", True),
        ("\\ud800\\u0041", True),
        ("\\ud83d\\ude00", False),
        ("\\\\u0000", False),  # an escaped backslash, then the text u0000
        ("\\u00e9", False),
        ("\\n\\t\\u0001", False),
    ],
)
def test_nul_and_lone_surrogates_are_refused_in_strings(escape: str, refused: bool) -> None:
    body = ('{"a": "x' + escape + 'y"}').encode()
    assert (json_body_problem(body) is not None) is refused


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": {"namespace": "risk", "name": "fraud"}, "canary": "c", "weight": 50}',
        _nested(MAX_JSON_DEPTH),
        _nested(MAX_JSON_DEPTH + 1),
        b'{"a": "\\u0000"}',
        b'{"a": "\\\\u0000"}',
        b'{"a": "\\ud800"}',
        b'{"a": "[[[[", "b": [1, {"c": 2}]}',
        b'{"a": "' + b"[" * 100 + b'"}',  # brackets in a string: the byte scan decides
        b"",
    ],
)
def test_the_fast_path_agrees_with_the_byte_scan(body: bytes) -> None:
    assert json_body_problem(body) == _scanned_body_problem(body, MAX_JSON_DEPTH)
