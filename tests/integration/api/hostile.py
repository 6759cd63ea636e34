"""A catalogue of hostile inputs and the property every answer must keep (issue 13).

Used by ``test_fuzz_every_route.py`` (a fixed sweep in CI) and ``bench/fuzz_api.py`` (a long
Hypothesis run). The property: no 5xx, and every 2xx body parses as what it says it is (JSON
routes JSON without NaN, HTML pages a whole HTML document, CSV exports rows of one width, NDJSON
one JSON value per line), and a streamed body arrives whole (the client raises otherwise).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts


@dataclass(frozen=True)
class Raw:
    """A value already percent-encoded (bytes that are not valid UTF-8, for instance)."""

    encoded: str


EDGE_INSTANTS = (
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59.999999-23:59",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-12:00",
    "1970-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-03-04T24:00:00Z",
    "2026-03-04T02:13:00+24:00",
    "2026-03-04T02:13:00",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "2026-03-04T02:13:00.99999999999Z",
)
CONTROL = ("\x00", "a\x00b", "\x01", "\n", "\r\n", "\x1b[2J", "\x7f", "\t")
NUMBERS = (
    "-1", "0", "-0", "2147483648", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "1" + "0" * 400, "1e308", "1e999", "NaN", "Infinity", "0x10",
    "1_000", "4.5",
)  # fmt: skip
STRINGS = (
    "", " ", "x" * 8000, "../../etc/passwd", "' OR 1=1--", "%", "%00", "\U0001f642",
    "\u202egnp.exe", "<script>alert(1)</script>", "{{7*7}}", "a/b/c", "risk-prod/",
    "/fraud", "null", "[]", "risk-prod/fraud", "RISK-PROD/Fraud",
)  # fmt: skip
RAW = (Raw("%FF%FE"), Raw("%ED%A0%80"), Raw("%C0%AF"), Raw("%"), Raw("%zz"))
QUERY_VALUES: tuple[str | Raw, ...] = (*EDGE_INSTANTS, *CONTROL, *NUMBERS, *STRINGS, *RAW)
PATH_VALUES: tuple[str | Raw, ...] = (
    *CONTROL[:4], *NUMBERS[:10], *STRINGS[:12], *RAW, "..", ".",
)  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# JSON values put in place of one field of a valid body.
JSON_VALUES: tuple[Any, ...] = (
    None, True, False, -1, 0, 2**63, 2**64, -(2**63) - 1, 10**400, 1e308, -0.0, 0.1,
    "", " ", "x" * 5000, "\U0001f642", "<script>", "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00", [], {}, [None], {"": None}, _nested(40), _nested(70),
    "\u202e", "a\nb",
)  # fmt: skip
# Whole bodies, as bytes, for the JSON routes.
RAW_BODIES: tuple[tuple[bytes, str | None], ...] = (
    (b"", "application/json"),
    (b"null", "application/json"),
    (b"[]", "application/json"),
    (b"{", "application/json"),
    (b'{"a": NaN, "b": -Infinity, "c": 1e999}', "application/json"),
    (b'{"model": "\\u0000"}', "application/json"),
    (b'{"model": "\\ud800"}', "application/json"),
    (b"[" * 900 + b"]" * 900, "application/json"),
    (b'{"k":' * 900 + b"1" + b"}" * 900, None),
    (b"\xff\xfe\x00", "application/json"),
    (b'{"comment": "x"}', "text/plain"),
    (b"a=1&b=2", "application/x-www-form-urlencoded"),
)
FORM_BODIES: tuple[bytes, ...] = (
    b"", b"token=%00", b"token=" + b"x" * 5000, b"next=%2F%2Fevil.example&token=a",
    b"next=javascript:alert(1)", b"csrf=&token=&next=", b"%FF=%FE", b"a=" + b"&a=" * 50,
    b"token=\xff\xfe", b"next=/ui/%0d%0aSet-Cookie:x=1",
)  # fmt: skip


def encoded(value: str | Raw) -> str:
    return value.encoded if isinstance(value, Raw) else quote(value, safe="")


@dataclass
class RouteShape:
    """One route as FastAPI declares it: its method, path and parameter names."""

    method: str
    path: str
    path_params: tuple[str, ...] = ()
    query_params: tuple[str, ...] = ()
    body: bool = False
    form: bool = False
    examples: dict[str, str] = field(default_factory=dict)


def route_shapes(app: FastAPI) -> list[RouteShape]:
    """Every route of ``app`` (API and UI, included routers flattened) with its parameters."""
    shapes = []
    for context in iter_route_contexts(app.routes):
        methods = sorted(getattr(context, "methods", None) or ())
        dependant = getattr(context, "dependant", None)
        for method in methods:
            if method == "HEAD":
                continue
            if dependant is None:
                shapes.append(RouteShape(method=method, path=str(context.path)))
                continue
            found: dict[str, list[str]] = {"path": [], "query": [], "body": []}
            _walk(dependant, found)
            shapes.append(
                RouteShape(
                    method=method,
                    path=str(context.path),
                    path_params=tuple(dict.fromkeys(found["path"])),
                    query_params=tuple(dict.fromkeys(found["query"])),
                    body=bool(found["body"]),
                    form=method == "POST" and not found["body"],
                )
            )
    return shapes


def _walk(dependant: Any, found: dict[str, list[str]]) -> None:
    pending = [dependant]  # a loop, not recursion: dependency trees are shallow but unbounded
    while pending:
        current = pending.pop()
        found["path"].extend(p.alias for p in current.path_params)
        found["query"].extend(p.alias for p in current.query_params)
        found["body"].extend(p.alias for p in current.body_params)
        pending.extend(current.dependencies)


def body_variants(base: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """``base`` with each field (and each field of a nested object) replaced by hostile values,
    then with each field removed, then with an unknown field added."""
    for key, original in base.items():
        for value in JSON_VALUES:
            yield key, {**base, key: value}
        if isinstance(original, dict):
            for inner in original:
                for value in JSON_VALUES[:12]:
                    yield f"{key}.{inner}", {**base, key: {**original, inner: value}}
        yield f"-{key}", {k: v for k, v in base.items() if k != key}
    yield "+unknown", {**base, "unknown\u0000": 1}


class _StrictHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def body_problem(response: httpx.Response) -> str | None:
    """Why ``response`` breaks the property, or None when it keeps it."""
    if response.status_code >= 500:
        return f"status {response.status_code}: {response.text[:200]!r}"
    if not 200 <= response.status_code < 300:
        return None
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    text = response.text
    try:
        if kind == "application/json":
            json.loads(text, parse_constant=_no_constants)
        elif kind == "application/x-ndjson":
            for line in text.splitlines():
                json.loads(line, parse_constant=_no_constants)
        elif kind == "text/html":
            if not text.lstrip().lower().startswith("<!doctype html"):
                return "an HTML answer that is not a document"
            parser = _StrictHtml()
            parser.feed(text)
            parser.close()
            if "html" not in parser.tags or not text.rstrip().lower().endswith("</html>"):
                return "an HTML document cut short"
        elif kind == "text/csv":
            rows = list(csv.reader(io.StringIO(text)))
            if not rows or len({len(r) for r in rows}) != 1:
                return "a CSV export with rows of different widths"
    except ValueError as exc:
        return f"a {kind} answer that does not parse: {exc}"
    return None
