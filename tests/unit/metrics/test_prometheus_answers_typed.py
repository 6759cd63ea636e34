"""Prometheus' answers read by the typed msgspec decoder give what the generic reading gave
(issue 20): the same series, or the same refusal, for answers drawn widely (usual and odd
shapes, every result type, labels and samples of the wrong type, error bodies)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.domain.errors import FatalIntegrationError, RetryableError
from analyzer.metrics.prometheus import client
from analyzer.metrics.prometheus.client import Series, _interpret, parse_response


def reference(status: int, content: bytes) -> list[Series]:
    """``_interpret`` as it was before the typed decoder (verbatim but for names)."""
    try:
        body = client._decode.decode(content)
    except client.msgspec.DecodeError:
        body = None
    if status == 200 and isinstance(body, dict) and body.get("status") == "success":
        return parse_response(body)
    error_type = body.get("errorType", "") if isinstance(body, dict) else ""
    message = (
        body.get("error", "")
        if isinstance(body, dict)
        else content[:200].decode("utf-8", errors="replace")
    )
    detail = f"HTTP {status} {error_type}: {message}".strip()
    if status >= 500 or status == 429:
        raise RetryableError(detail)
    if error_type in client._RETRYABLE_ERROR_TYPES:
        raise RetryableError(detail)
    raise FatalIntegrationError(detail)


def outcome(read: Any, status: int, content: bytes) -> str:
    try:
        return repr(read(status, content))  # repr: NaN samples compare equal
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten (``one_of`` would draw ``odd`` half the time)."""
    return st.integers(0, 9).flatmap(lambda i: usual if i else odd)


usual_ts = st.one_of(st.integers(0, 2_000_000_000), st.floats(0, 2e9, allow_nan=False))
timestamps = mostly(usual_ts, st.sampled_from(["1.5", True, None]))
usual_value = st.sampled_from(["1", "0", "42.5", "NaN", "+Inf", "-Inf", "1e3"])
odd_value = st.one_of(st.sampled_from(["abc", ""]), st.integers(0, 10), st.none())
values = mostly(usual_value, odd_value)
label_values = mostly(st.text(max_size=5), st.integers(0, 3))
label_names = st.sampled_from(["a", "le", "__name__", "canary_analyzer_tag"])
metrics = st.dictionaries(label_names, label_values)
usual_sample = st.tuples(timestamps, values).map(list)
odd_sample = st.lists(st.one_of(timestamps, values), max_size=3)
samples = mostly(usual_sample, odd_sample)


@st.composite
def item(draw: st.DrawFn, kind: str) -> Any:
    out: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        out["metric"] = draw(metrics)
    if kind == "vector" or draw(st.integers(0, 9)) == 0:
        out["value"] = draw(samples)
    if kind == "matrix" or draw(st.integers(0, 9)) == 0:
        out["values"] = draw(st.lists(samples, max_size=3))
    if draw(st.integers(0, 9)) == 0:
        out["histogram"] = [1, {}]
    return out


@st.composite
def answer(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([b"", b"not json", b"[1,2]", b'"x"', b"null"]))
    kind = draw(st.sampled_from(["vector"] * 3 + ["matrix"] * 2 + ["scalar", "string", "x"]))
    if kind in ("scalar", "string"):
        result: Any = draw(usual_sample)
    else:
        result = draw(st.lists(item(kind), max_size=3))
    data: Any = {"resultType": kind, "result": result}
    if draw(st.integers(0, 19)) == 0:
        data = draw(st.sampled_from([None, [], {"result": []}, {"resultType": "vector"}]))
    status = draw(st.sampled_from(["success", "success", "success", "error"]))
    body: Any = {"status": status, "data": data}
    if draw(st.integers(0, 9)) == 0:
        body |= {"errorType": draw(st.sampled_from(["bad_data", "timeout"])), "error": "x"}
    if draw(st.integers(0, 9)) == 0:
        body["warnings"] = ["w"]
    return json.dumps(body).encode()


@settings(max_examples=800, deadline=None)
@given(status=st.sampled_from([200, 200, 200, 400, 422, 429, 503]), content=answer())
def test_typed_reading_is_the_generic_one(status: int, content: bytes) -> None:
    assert outcome(_interpret, status, content) == outcome(reference, status, content)


def test_usual_answers_take_the_typed_path() -> None:
    vector = {"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [1, "NaN"]}]}
    matrix = {"resultType": "matrix", "result": [{"values": [[1.5, "2"], [3, "+Inf"]]}]}
    for data in (vector, matrix):
        content = json.dumps({"status": "success", "data": data}).encode()
        assert client._parse_typed(content) is not None
        assert repr(_interpret(200, content)) == repr(reference(200, content))
