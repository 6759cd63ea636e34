"""A small typed client for Prometheus' HTTP query API, with bounded retries at the edge.

Why httpx and not ``prometheus-api-client``: we need per-request timeouts and a connection pool
shared with the rest of the service (injected, so tests can hand in a ``MockTransport``), typed
responses, and nothing else; ``prometheus-api-client`` wraps ``requests`` without a typed API and
pulls in pandas/matplotlib-era dependencies (``dateparser``, ``numpy`` pins) for helpers we do not
use. Two endpoints (``/api/v1/query``, ``/api/v1/query_range``) do not justify that weight.

Errors (from :mod:`analyzer.domain.errors`):

* :class:`RetryableError` — timeouts, refused connections, HTTP 5xx/429, Prometheus
  ``errorType`` ``timeout``/``canceled``/``unavailable``; retried here with backoff, re-raised
  when the attempts are spent.
* :class:`FatalIntegrationError` — HTTP 4xx (``bad_data``: the query is wrong), a body that is
  not the documented JSON; not retried.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import msgspec
import structlog

from analyzer.domain.errors import FatalIntegrationError, InvalidInputError, RetryableError
from analyzer.metrics.prometheus.keepalive import KeepAliveHttp, usable_for

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_RETRYABLE_ERROR_TYPES = frozenset({"timeout", "canceled", "unavailable", "internal"})


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff: ``attempts`` tries in all, waits capped at ``max_backoff``.

    The defaults keep a failing metric under ~7 s with a 2 s request timeout, inside Argo's
    default 10 s web-provider timeout.
    """

    attempts: int = 3
    initial_backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInputError("at least one attempt is needed", field="retry.attempts")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise InvalidInputError("backoff must be non-negative and non-shrinking", field="retry")

    def delays(self) -> Iterator[float]:
        """The waits between attempts (``attempts - 1`` of them)."""
        delay = self.initial_backoff
        for _ in range(self.attempts - 1):
            yield min(delay, self.max_backoff)
            delay *= self.multiplier


@dataclass(frozen=True, kw_only=True, slots=True)
class Series:
    """One result series: its labels and its ``(unix seconds, value)`` points in time order."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


def _parse_value(raw: Any) -> float:
    # Prometheus sends sample values as strings, including "NaN", "+Inf" and "-Inf".
    return float(raw)


def _parse_series(item: dict[str, Any], result_type: str) -> Series:
    labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
    if result_type == "vector":
        ts, raw = item["value"]
        return Series(labels=labels, points=((float(ts), _parse_value(raw)),))
    points = tuple((float(ts), _parse_value(raw)) for ts, raw in item["values"])
    return Series(labels=labels, points=points)


def parse_response(body: Any) -> list[Series]:
    """Parse a successful ``/api/v1/query(_range)`` body into series."""
    try:
        data = body["data"]
        result_type = data["resultType"]
        if result_type == "scalar":
            ts, raw = data["result"]
            return [Series(labels={}, points=((float(ts), _parse_value(raw)),))]
        if result_type not in ("vector", "matrix"):
            raise FatalIntegrationError(f"unsupported result type {result_type!r}")
        return [_parse_series(item, result_type) for item in data["result"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise FatalIntegrationError(f"malformed Prometheus response: {exc!r}") from exc


# Percent-encoding for form bodies by table lookup: urllib's per-character quoting was a fifth of
# the analyzer's CPU per look, since endpoint queries run to a few kilobytes.
_FORM_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FORM_TABLE = {
    byte: (chr(byte) if byte in _FORM_SAFE else "+" if byte == 0x20 else f"%{byte:02X}")
    for byte in range(256)
}


def form_encode(params: dict[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` body, equal to ``urllib.parse.urlencode``."""
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in params.items()).encode("ascii")


@functools.lru_cache(maxsize=512)
def _query_field(query: str) -> bytes:
    """``query=...`` form-encoded (cached: a session asks the same query text at every look,
    only its ``time`` changes; an endpoint query runs to a few kilobytes)."""
    return form_encode({"query": query})


def _quote(text: str) -> str:
    return text.encode("utf-8").decode("latin-1").translate(_FORM_TABLE)


def _unix(at: datetime) -> str:
    return f"{at.timestamp():.3f}"


class PrometheusClient:
    """Instant and range queries against one Prometheus, retried per :class:`RetryPolicy`.

    ``http``: the ``httpx`` client to send them with; None (the service's choice) sends them
    over kept-alive ``http.client`` connections when the URL allows (``keepalive.py``: a fifth
    of the CPU per request), else through an ``httpx`` client of its own.
    """

    def __init__(
        self,
        *,
        base_url: str,
        http: httpx.Client | None,
        timeout: float,
        retry: RetryPolicy,
        query_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._keepalive = (
            KeepAliveHttp(self._base) if http is None and usable_for(base_url) else None
        )
        self._owned = http is None and self._keepalive is None
        self._http = http if http is not None else httpx.Client() if self._owned else None
        self._timeout = timeout
        self._retry = retry
        # Prometheus' own evaluation timeout: a little under ours, so the server gives up first
        # and says why (errorType "timeout") instead of us seeing a bare read timeout.
        self._query_timeout = query_timeout if query_timeout is not None else timeout * 0.9
        self._timeout_field = form_encode(
            {"timeout": f"{self._query_timeout:.9f}".rstrip("0").rstrip(".")}
        )
        self._sleep = sleep
        self._log = structlog.get_logger()

    def instant(self, query: str, at: datetime) -> list[Series]:
        return self._call("/api/v1/query", query, {"time": _unix(at)})

    def range(self, query: str, start: datetime, end: datetime, step: float) -> list[Series]:
        params = {"start": _unix(start), "end": _unix(end), "step": f"{step:g}"}
        return self._call("/api/v1/query_range", query, params)

    def _call(self, path: str, query: str, params: dict[str, str]) -> list[Series]:
        # form_encode({"query": query, **params, "timeout": ...}), the query's part cached
        body = b"&".join((_query_field(query), form_encode(params), self._timeout_field))
        delays = self._retry.delays()
        for attempt in range(1, self._retry.attempts + 1):
            started = time.perf_counter()
            try:
                series = self._once(path, body)
            except RetryableError as exc:
                delay = next(delays, None)
                self._log.warning(
                    "prometheus.query.failed",
                    path=path,
                    query=query,
                    attempt=attempt,
                    attempts=self._retry.attempts,
                    error=str(exc),
                    retry_in=delay,
                )
                if delay is None:
                    raise
                self._sleep(delay)
                continue
            self._log.debug(
                "prometheus.query.ok",
                path=path,
                attempt=attempt,
                series=len(series),
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            return series
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _once(self, path: str, body: bytes) -> list[Series]:
        if self._keepalive is not None:
            status, content = self._keepalive.post(path, body, self._timeout)
            return _interpret(status, content)
        assert self._http is not None
        try:
            response = self._http.post(
                self._base + path, content=body, headers=_FORM, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            kind = type(exc).__name__
            raise RetryableError(f"timed out after {self._timeout:g} s ({kind})") from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"unreachable: {type(exc).__name__}: {exc}") from exc
        return _interpret(response.status_code, response.content)

    def close(self) -> None:
        """Close the connections this client opened (an ``httpx`` client handed in is the
        caller's)."""
        if self._keepalive is not None:
            self._keepalive.close()
        if self._owned and self._http is not None:
            self._http.close()


_decode = msgspec.json.Decoder()  # C-speed, ~2x json.loads on Prometheus' answers


class _Item(msgspec.Struct, kw_only=True):
    metric: dict[str, str] = {}
    value: tuple[float, str] | None = None  # a vector's sample
    values: list[tuple[float, str]] | None = None  # a matrix's samples


class _Data(msgspec.Struct):
    resultType: str  # noqa: N815 - Prometheus' name
    result: list[_Item]


class _Answer(msgspec.Struct):
    status: str
    data: _Data


_decode_answer = msgspec.json.Decoder(_Answer)


def _parse_typed(content: bytes) -> list[Series] | None:
    """A successful vector or matrix answer of the usual shape, its types checked by msgspec
    as it decodes (no Python pass over each label and sample); None for anything else (a
    scalar, a label value that is not a string, a malformed body...), which ``parse_response``
    then reads or refuses exactly as before."""
    try:
        answer = _decode_answer.decode(content)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    kind = answer.data.resultType
    if answer.status != "success" or kind not in ("vector", "matrix"):
        return None
    out = []
    try:
        for item in answer.data.result:
            if kind == "vector":
                if item.value is None:
                    return None
                ts, raw = item.value
                points: tuple[tuple[float, float], ...] = ((ts, float(raw)),)
            else:
                if item.values is None:
                    return None
                points = tuple((t, float(v)) for t, v in item.values)
            out.append(Series(labels=item.metric, points=points))
    except ValueError:  # a value float() refuses: parse_response says so
        return None
    return out


def _interpret(status: int, content: bytes) -> list[Series]:
    if status == 200 and (series := _parse_typed(content)) is not None:
        return series
    try:
        body = _decode.decode(content)
    except msgspec.DecodeError:
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
    if error_type in _RETRYABLE_ERROR_TYPES:
        raise RetryableError(detail)
    raise FatalIntegrationError(detail)
