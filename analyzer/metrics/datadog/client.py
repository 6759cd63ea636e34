"""A small typed client for Datadog's v1 metrics query API, with bounded retries at the edge.

``GET https://api.<site>/api/v1/query?from=<unix s>&to=<unix s>&query=<query>`` with the
``DD-API-KEY`` and ``DD-APPLICATION-KEY`` headers (the key needs the ``timeseries_query``
permission). The answer is ``{"status": "ok", "series": [{"scope", "tag_set", "pointlist":
[[ms, value|null], ...], "interval", ...}], ...}``. Why v1 and not v2's
``POST /api/v2/query/timeseries``: one GET per query whose answer names each group's tags
(``tag_set``) next to its points, which is all a per-revision count needs; v2 adds formulas
across queries that we do not use. Both are documented and rate-limited alike.

Errors (from :mod:`analyzer.domain.errors`):

* :class:`RetryableError`: timeouts, refused connections, HTTP 5xx, and 429 (rate limited):
  retried with backoff, a 429 waiting what ``X-RateLimit-Reset`` says (seconds until the limit
  resets) when that fits under ``max_rate_limit_wait``; re-raised when the attempts are spent
  or the reset is further away than a look can wait.
* :class:`FatalIntegrationError`: 400 (a query Datadog cannot parse), 401/403 (bad or
  under-privileged keys), any other 4xx, a body that is not the documented JSON; not retried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from analyzer.domain.errors import FatalIntegrationError, InvalidInputError, RetryableError
from analyzer.metrics.prometheus.client import RetryPolicy

QUERY_PATH = "/api/v1/query"
# Datadog's sites and their API hosts (docs.datadoghq.com/getting_started/site).
SITES = {
    "datadoghq.com": "https://api.datadoghq.com",
    "us3.datadoghq.com": "https://api.us3.datadoghq.com",
    "us5.datadoghq.com": "https://api.us5.datadoghq.com",
    "datadoghq.eu": "https://api.datadoghq.eu",
    "ap1.datadoghq.com": "https://api.ap1.datadoghq.com",
    "ap2.datadoghq.com": "https://api.ap2.datadoghq.com",
    "uk1.datadoghq.com": "https://api.uk1.datadoghq.com",
    "ddog-gov.com": "https://api.ddog-gov.com",
    "us2.ddog-gov.com": "https://api.us2.ddog-gov.com",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class DatadogRetryPolicy(RetryPolicy):
    """``attempts`` tries in all; backoff between them (as for Prometheus), or the rate limit's
    reset on a 429.

    ``max_rate_limit_wait``: the longest a 429 is waited out (its ``X-RateLimit-Reset``); a
    reset further away ends the retries at once (the metric is ``error`` for this look, and
    the next look asks again), so a rate-limited org never stalls a look past Argo's timeout.
    """

    max_rate_limit_wait: float = 2.0

    def __post_init__(self) -> None:
        RetryPolicy.__post_init__(self)  # zero-argument super() fails in a slots dataclass
        if self.max_rate_limit_wait < 0:
            raise InvalidInputError(
                "the rate-limit wait must be non-negative", field="retry.max_rate_limit_wait"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class DatadogSeries:
    """One answer series: its group tags (``key`` → value) and its ``(unix s, value)`` points.

    Null points (intervals without data) are dropped; ``interval`` is the rollup in seconds;
    ``query_index`` says which of the request's comma-separated queries the series answers.
    """

    tags: dict[str, str]
    points: tuple[tuple[float, float], ...]
    interval: float
    query_index: int = 0


class RateLimitedError(RetryableError):
    """HTTP 429; ``reset_seconds`` from ``X-RateLimit-Reset`` when Datadog sent it."""

    def __init__(self, message: str, reset_seconds: float | None) -> None:
        super().__init__(message)
        self.reset_seconds = reset_seconds


def _tags(item: dict[str, Any]) -> dict[str, str]:
    raw = item.get("tag_set")
    if raw is None:  # older answers only carry the comma-separated scope
        scope = str(item.get("scope", ""))
        raw = [] if scope in ("", "*") else scope.split(",")
    tags: dict[str, str] = {}
    for tag in raw:
        key, _, value = str(tag).partition(":")
        tags[key] = value
    return tags


def _points(item: dict[str, Any]) -> tuple[tuple[float, float], ...]:
    points = []
    for ts, value in item["pointlist"]:
        if value is None:
            continue
        points.append((float(ts) / 1000.0, float(value)))
    points.sort()
    return tuple(points)


def parse_query_response(body: Any) -> list[DatadogSeries]:
    """Parse a ``/api/v1/query`` body into series; ``FatalIntegrationError`` if malformed."""
    try:
        if body.get("status") not in ("ok", None):
            raise FatalIntegrationError(f"datadog: {body.get('error') or body.get('status')}")
        return [
            DatadogSeries(
                tags=_tags(item),
                points=_points(item),
                interval=float(item.get("interval") or 0),
                query_index=int(item.get("query_index") or 0),
            )
            for item in body["series"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FatalIntegrationError(f"malformed Datadog response: {exc!r}") from exc


def _reset_seconds(response: httpx.Response) -> float | None:
    raw = response.headers.get("X-RateLimit-Reset")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        return f"HTTP {response.status_code}: {'; '.join(str(e) for e in errors)[:300]}"
    return f"HTTP {response.status_code}"


class DatadogClient:
    """Timeseries queries against one Datadog site, retried per :class:`DatadogRetryPolicy`."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        application_key: str,
        http: httpx.Client,
        timeout: float,
        retry: DatadogRetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key or not application_key:
            raise InvalidInputError("Datadog needs an API key and an application key")
        self._url = base_url.rstrip("/") + QUERY_PATH
        self._headers = {
            "DD-API-KEY": api_key,
            "DD-APPLICATION-KEY": application_key,
            "Accept": "application/json",
        }
        self._http = http
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._log = structlog.get_logger()

    def query(self, query: str, start: datetime, end: datetime) -> list[DatadogSeries]:
        """Series of ``query`` over ``[start, end]`` (whole seconds, as the API takes)."""
        params = {
            "from": str(math.floor(start.timestamp())),
            "to": str(math.floor(end.timestamp())),
            "query": query,
        }
        backoffs = self._retry.delays()
        for attempt in range(1, self._retry.attempts + 1):
            started = time.perf_counter()
            try:
                series = self._once(params)
            except RetryableError as exc:
                delay = self._next_delay(exc, backoffs)
                self._log.warning(
                    "datadog.query.failed",
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
                "datadog.query.ok",
                attempt=attempt,
                series=len(series),
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            return series
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _next_delay(self, exc: RetryableError, backoffs: Iterator[float]) -> float | None:
        backoff = next(backoffs, None)
        if backoff is None:
            return None
        if isinstance(exc, RateLimitedError) and exc.reset_seconds is not None:
            if exc.reset_seconds > self._retry.max_rate_limit_wait:
                return None  # the limit resets after this look must have answered
            return max(backoff, exc.reset_seconds)
        return backoff

    def _once(self, params: dict[str, str]) -> list[DatadogSeries]:
        try:
            response = self._http.get(
                self._url, params=params, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            kind = type(exc).__name__
            raise RetryableError(f"timed out after {self._timeout:g} s ({kind})") from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError as exc:
                raise FatalIntegrationError("Datadog answered 200 with a non-JSON body") from exc
            return parse_query_response(body)
        detail = _error_detail(response)
        if response.status_code == 429:
            reset = _reset_seconds(response)
            raise RateLimitedError(f"rate limited ({detail}); resets in {reset} s", reset)
        if response.status_code >= 500:
            raise RetryableError(detail)
        if response.status_code in (401, 403):
            raise FatalIntegrationError(f"keys refused ({detail}): check the API/application key")
        raise FatalIntegrationError(detail)
