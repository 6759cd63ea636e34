"""A fake Datadog metrics query API over real HTTP (``GET /api/v1/query``).

Stdlib only (``http.server`` in a daemon thread on a random 127.0.0.1 port). What it mirrors
from Datadog's documented behaviour (docs.datadoghq.com/api/latest/metrics, rate-limits):

* ``GET /api/v1/query?from=<unix s>&to=<unix s>&query=<q>[,<q>...]``, answered with
  ``{"status": "ok", "res_type": "time_series", "from_date", "to_date" (ms), "query",
  "group_by", "series": [{"metric", "display_name", "scope", "tag_set", "expression",
  "pointlist": [[ms, value], ...], "start", "end", "interval", "length", "aggr",
  "query_index", "unit"}]}``. Several comma-separated queries answer in one body, each series
  naming its ``query_index``. A range with no points answers ``series: []``.
* The query subset the source uses: ``[aggr:]metric{scope}[ by {key,...}]`` then any of
  ``.as_count()``, ``.as_rate()``, ``.rollup(method[, seconds])``; ``aggr`` is ``sum``, ``avg``,
  ``min``, ``max`` (space aggregation), or ``p50``/``p75``/``p90``/``p95``/``p99``/``count`` on a
  distribution. Scopes: ``*``, ``key:value``, ``!key:value``, ``*`` wildcards in values, bare
  tags. Anything else answers **400** ``{"errors": ["Error parsing query: ..."]}``, as Datadog
  does for a query it cannot parse.
* Time aggregation: points are rolled up into intervals aligned to multiples of the interval
  (Unix time); the interval is the ``.rollup`` one, or Datadog's documented API default for the
  span (20 s up to an hour, 60 s up to 4 h, 300 s up to a day, ...), widened when the range would
  need more than 1500 points (as Datadog does). Distributions take ``.rollup(<interval>)``
  without an aggregator (an aggregator answers 400, as documented). Count metrics roll up by
  sum (``.as_rate()`` divides by the interval), gauges by the rollup method (``avg`` default),
  distributions by merging the values (percentiles here are exact; Datadog's DDSketch is within
  1 %). One difference, said plainly: the fake keeps only raw points inside ``(from, to]``
  before rolling up, where Datadog may count whole edge intervals.
* Auth: both ``DD-API-KEY`` and ``DD-APPLICATION-KEY`` must match, else **403**
  ``{"errors": ["Forbidden"]}``.
* Rate limits: every answer carries ``X-RateLimit-Limit``, ``-Period``, ``-Remaining``,
  ``-Reset`` (seconds until the period resets) and ``-Name``; past the limit, **429**
  ``{"errors": ["Too many requests"]}``.
* Fault injection for the next N query requests: a status (with optional headers and body),
  a delay (client timeouts) or a non-JSON body.

Every request is recorded (path, query parameters, headers) so tests can assert what was sent.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np

Kind = Literal["count", "gauge", "distribution"]
_PERCENTILES = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
_SPACE_AGGREGATORS = {"sum", "avg", "min", "max", "count", *_PERCENTILES}
_QUERY = re.compile(
    r"^\s*(?:(?P<aggr>[a-z0-9]+):)?(?P<metric>[A-Za-z][A-Za-z0-9_.]*)"
    r"\{(?P<scope>[^{}]*)\}"
    r"(?:\s+by\s+\{(?P<by>[^{}]*)\})?"
    r"(?P<functions>(?:\.[a-z_]+\([^()]*\))*)\s*$"
)
_FUNCTION = re.compile(r"\.([a-z_]+)\(([^()]*)\)")
MAX_POINTS = 1500


class QueryError(Exception):
    """A query the fake (like Datadog) cannot parse: answered 400."""


@dataclass
class FakeSeries:
    """One stored series: a metric name, its tags, and its raw points.

    ``count``: ``(unix s, increment)`` per submission (what the Agent's monotonic_count sends).
    ``gauge``: ``(unix s, value)``. ``distribution``: ``(unix s, one observed value)``.
    """

    metric: str
    tags: dict[str, str]
    kind: Kind
    times: np.ndarray
    values: np.ndarray


@dataclass
class Fault:
    """What to do to the next ``times`` query requests instead of answering normally."""

    status: int = 500
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class _Query:
    aggr: str
    metric: str
    scope: tuple[str, ...]
    by: tuple[str, ...]
    as_count: bool
    as_rate: bool
    rollup_method: str | None
    rollup_seconds: int | None
    text: str


def split_queries(text: str) -> list[str]:
    """Top-level comma-separated queries (commas inside ``{}``/``()`` belong to a query)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "{(":
            depth += 1
        elif char in "})":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def parse_query(text: str) -> _Query:
    match = _QUERY.match(text)
    if not match:
        raise QueryError(f"Error parsing query: unexpected syntax in {text!r}")
    aggr = match.group("aggr") or "avg"
    if aggr not in _SPACE_AGGREGATORS:
        raise QueryError(f"Error parsing query: unknown aggregator {aggr!r}")
    scope = tuple(s.strip() for s in match.group("scope").split(",") if s.strip())
    by = tuple(s.strip() for s in (match.group("by") or "").split(",") if s.strip())
    as_count = as_rate = False
    rollup_method: str | None = None
    rollup_seconds: int | None = None
    for name, args in _FUNCTION.findall(match.group("functions")):
        arguments = [a.strip() for a in args.split(",") if a.strip()]
        if name == "as_count" and not arguments:
            as_count = True
        elif name == "as_rate" and not arguments:
            as_rate = True
        elif name == "rollup" and len(arguments) == 1 and arguments[0].isdigit():
            rollup_seconds = _rollup_interval(arguments[0])  # distributions: interval only
            rollup_method = "interval-only"
        elif name == "rollup" and 1 <= len(arguments) <= 2:
            rollup_method = arguments[0]
            if rollup_method not in ("sum", "avg", "min", "max", "count"):
                raise QueryError(f"Error parsing query: unknown rollup method {rollup_method!r}")
            if len(arguments) == 2:
                rollup_seconds = _rollup_interval(arguments[1])
        else:
            raise QueryError(f"Error parsing query: unsupported function .{name}({args})")
    return _Query(
        aggr, match.group("metric"), scope, by, as_count, as_rate, rollup_method,
        rollup_seconds, text.strip(),
    )  # fmt: skip


def _rollup_interval(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise QueryError(f"Error parsing query: bad rollup interval {text!r}")
    return int(text)


def _scope_matches(scope: Sequence[str], tags: Mapping[str, str]) -> bool:
    for item in scope:
        if item == "*":
            continue
        negated = item.startswith("!")
        key, sep, pattern = item.lstrip("!").partition(":")
        present = key in tags and (not sep or fnmatch.fnmatchcase(tags[key], pattern))
        if present == negated:
            return False
    return True


# Datadog's default API rollup interval by queried span (docs: dashboards/functions/rollup).
_DEFAULT_INTERVALS = ((3600, 20), (4 * 3600, 60), (86400, 300), (2 * 86400, 600), (7 * 86400, 3600))


def _interval(query: _Query, start: int, end: int) -> int:
    span = max(1, end - start)
    default = next((i for limit, i in _DEFAULT_INTERVALS if span <= limit), 14400)
    interval = query.rollup_seconds or default
    while span / interval > MAX_POINTS:  # Datadog widens an interval that needs too many points
        interval *= 2
    return interval


class FakeDatadog:
    """The fake API. ``with FakeDatadog(...) as fake:`` serves on ``fake.url``."""

    def __init__(
        self,
        *,
        api_key: str = "fake-api-key",
        application_key: str = "fake-app-key",
        rate_limit: int = 100_000,
        rate_limit_period: int = 3600,
    ) -> None:
        self.api_key = api_key
        self.application_key = application_key
        self.rate_limit = rate_limit
        self.rate_limit_period = rate_limit_period
        self.series: list[FakeSeries] = []
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._used_in_period = 0
        self._period_start = time.monotonic()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- data and faults -----------------------------------------------------------------

    def add(
        self,
        metric: str,
        tags: Mapping[str, str],
        kind: Kind,
        times: Sequence[float] | np.ndarray,
        values: Sequence[float] | np.ndarray,
    ) -> None:
        times_array = np.asarray(times, dtype=np.float64)
        order = np.argsort(times_array, kind="stable")
        self.series.append(
            FakeSeries(
                metric, dict(tags), kind, times_array[order],
                np.asarray(values, dtype=np.float64)[order],
            )
        )  # fmt: skip

    def fail_next(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._used_in_period = 0

    def query_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/api/v1/query"]

    # --- the query engine ----------------------------------------------------------------

    def answer(self, query_text: str, start: int, end: int) -> dict[str, Any]:
        """The body ``GET /api/v1/query`` answers (raises ``QueryError`` for a bad query)."""
        queries = [parse_query(q) for q in split_queries(query_text)]
        series: list[dict[str, Any]] = []
        for index, query in enumerate(queries):
            series += self._evaluate(query, index, start, end)
        group_by = sorted({key for q in queries for key in q.by})
        return {
            "status": "ok",
            "res_type": "time_series",
            "resp_version": 1,
            "query": query_text,
            "from_date": start * 1000,
            "to_date": end * 1000,
            "group_by": group_by,
            "message": "",
            "series": series,
        }

    def _evaluate(self, query: _Query, index: int, start: int, end: int) -> list[dict[str, Any]]:
        interval = _interval(query, start, end)
        groups: dict[tuple[str, ...], list[FakeSeries]] = {}
        for stored in self.series:
            if stored.metric != query.metric or not _scope_matches(query.scope, stored.tags):
                continue
            key = tuple(stored.tags.get(k, "N/A") for k in query.by)
            groups.setdefault(key, []).append(stored)
        out = []
        for key, members in sorted(groups.items()):
            points = self._group_points(query, members, start, end, interval)
            if not points:
                continue
            tag_set = [f"{k}:{v}" for k, v in zip(query.by, key, strict=True)]
            scope_tags = [s for s in query.scope if s != "*"] + tag_set
            out.append({
                "metric": query.metric,
                "display_name": query.metric,
                "expression": query.text,
                "scope": ",".join(scope_tags) or "*",
                "tag_set": tag_set,
                "pointlist": [[float(ts * 1000), value] for ts, value in points],
                "start": points[0][0] * 1000,
                "end": (points[-1][0] + interval) * 1000 - 1,
                "interval": interval,
                "length": len(points),
                "aggr": query.aggr,
                "query_index": index,
                "unit": None,
            })  # fmt: skip
        return out

    def _group_points(
        self, query: _Query, members: list[FakeSeries], start: int, end: int, interval: int
    ) -> list[tuple[int, float]]:
        """One group's points: each series rolled up in time, then aggregated across series."""
        per_bucket: dict[int, list[float]] = {}
        raw_values: dict[int, list[np.ndarray]] = {}
        for stored in members:
            inside = (stored.times > start) & (stored.times <= end)
            times, values = stored.times[inside], stored.values[inside]
            if times.size == 0:
                continue
            buckets = (np.floor(times / interval) * interval).astype(np.int64)
            for bucket in np.unique(buckets):
                chosen = values[buckets == bucket]
                if stored.kind == "distribution":
                    raw_values.setdefault(int(bucket), []).append(chosen)
                    continue
                per_bucket.setdefault(int(bucket), []).append(
                    self._time_rollup(query, stored.kind, chosen, interval)
                )
        if raw_values and query.rollup_method not in (None, "interval-only"):
            raise QueryError(
                "Error parsing query: distribution metrics take no rollup aggregator "
                "(.rollup(<interval>))"
            )
        if per_bucket and query.rollup_method == "interval-only":
            raise QueryError("Error parsing query: .rollup needs an aggregator")
        if raw_values:
            return [
                (bucket, self._distribution_value(query, np.concatenate(parts)))
                for bucket, parts in sorted(raw_values.items())
            ]
        return [
            (bucket, self._space_aggregate(query.aggr, values))
            for bucket, values in sorted(per_bucket.items())
        ]

    @staticmethod
    def _time_rollup(query: _Query, kind: Kind, values: np.ndarray, interval: int) -> float:
        if kind == "count":
            total = float(values.sum())
            return total / interval if query.as_rate else total
        method = query.rollup_method or "avg"
        if method == "count":
            return float(values.size)
        return float({"sum": np.sum, "avg": np.mean, "min": np.min, "max": np.max}[method](values))

    @staticmethod
    def _space_aggregate(aggr: str, values: list[float]) -> float:
        if aggr in _PERCENTILES or aggr == "count":
            raise QueryError(f"Error parsing query: {aggr} needs a distribution metric")
        return float({"sum": np.sum, "avg": np.mean, "min": np.min, "max": np.max}[aggr](values))

    @staticmethod
    def _distribution_value(query: _Query, values: np.ndarray) -> float:
        if query.aggr in _PERCENTILES:
            return float(np.percentile(values, _PERCENTILES[query.aggr]))
        if query.aggr == "count":
            return float(values.size)
        return float({"sum": np.sum, "avg": np.mean, "min": np.min, "max": np.max}[query.aggr](
            values
        ))  # fmt: skip

    # --- rate limiting and faults --------------------------------------------------------

    def _rate_limit_headers(self) -> tuple[bool, dict[str, str]]:
        """Count this request against the period; whether it is over, and the headers."""
        with self._lock:
            elapsed = time.monotonic() - self._period_start
            if elapsed >= self.rate_limit_period:
                self._period_start += elapsed - elapsed % self.rate_limit_period
                self._used_in_period = 0
                elapsed = time.monotonic() - self._period_start
            self._used_in_period += 1
            over = self._used_in_period > self.rate_limit
            remaining = max(0, self.rate_limit - self._used_in_period)
            reset = max(0, math.ceil(self.rate_limit_period - elapsed))
        return over, {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Period": str(self.rate_limit_period),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Name": "query_timeseries",
        }

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            return fault

    # --- the server ------------------------------------------------------------------------

    def __enter__(self) -> FakeDatadog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are separate writes

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._send(self, 404, {"errors": ["Not found"]})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.requests.append(RecordedRequest(parts.path, params, headers))
        if parts.path != "/api/v1/query":
            self._send(handler, 404, {"errors": ["Not found"]})
            return
        if (
            headers.get("dd-api-key") != self.api_key
            or headers.get("dd-application-key") != self.application_key
        ):
            self._send(handler, 403, {"errors": ["Forbidden"]})
            return
        over, limit_headers = self._rate_limit_headers()
        fault = self._take_fault()
        if fault is not None:
            self._fault(handler, fault, limit_headers)
            return
        if over:
            self._send(handler, 429, {"errors": ["Too many requests"]}, limit_headers)
            return
        try:
            start, end = int(params["from"]), int(params["to"])
            body = self.answer(params["query"], start, end)
        except KeyError as exc:
            self._send(handler, 400, {"errors": [f"missing parameter {exc.args[0]}"]})
            return
        except ValueError:
            self._send(handler, 400, {"errors": ["from and to must be integers"]})
            return
        except QueryError as exc:
            self._send(handler, 400, {"errors": [str(exc)]}, limit_headers)
            return
        self._send(handler, 200, body, limit_headers)

    def _fault(
        self, handler: BaseHTTPRequestHandler, fault: Fault, limit_headers: dict[str, str]
    ) -> None:
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        headers = {**limit_headers, **fault.headers}
        if fault.body is not None:
            self._send_raw(handler, fault.status, fault.body.encode(), "text/html", headers)
            return
        errors = {429: "Too many requests", 403: "Forbidden"}.get(fault.status, "Internal error")
        self._send(handler, fault.status, {"errors": [errors]}, headers)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        FakeDatadog._send_raw(
            handler, status, json.dumps(body).encode(), "application/json", headers or {}
        )

    @staticmethod
    def _send_raw(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        content_type: str,
        headers: Mapping[str, str],
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)


def iter_points(series: Mapping[str, Any]) -> Iterator[tuple[float, float | None]]:
    """``(unix s, value)`` of an answered series (a helper for tests reading raw answers)."""
    for ts, value in series["pointlist"]:
        yield ts / 1000.0, value
