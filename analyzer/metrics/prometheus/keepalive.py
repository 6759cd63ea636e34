"""POSTs to one plain-HTTP Prometheus over kept-alive connections, one per thread (issue 20).

A fresh Argo look asks Prometheus five queries; through ``httpx`` each request cost ~1 ms of
CPU (request and URL models, auth and redirect hooks, cookie extraction, h11 events), a third of
the look's CPU (docs/benchmarks.md, Argo AnalysisRuns at 1,000 a minute). The standard
library's ``http.client`` does the same exchange (keep-alive, chunked answers) for a fraction.

Used by :class:`~analyzer.metrics.prometheus.client.PrometheusClient` when no ``httpx`` client
is handed in, for ``http://`` URLs that no proxy setting covers (``https`` and proxied
Prometheus keep ``httpx``: its certificate bundle and proxy support). Queries are idempotent, so
a kept-alive connection the server closed while idle is retried once on a new connection; every
other failure is a :class:`RetryableError` for the client's bounded retries.
"""

from __future__ import annotations

import http.client
import threading
import urllib.request
from urllib.parse import urlsplit

from analyzer.domain.errors import RetryableError

_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


def usable_for(base_url: str) -> bool:
    """``base_url`` is plain HTTP with no proxy configured for its host."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()  # the *_proxy variables httpx honours too
    proxy = proxies.get("http") or proxies.get("all")
    return not proxy or bool(urllib.request.proxy_bypass(parts.hostname))


class KeepAliveHttp:
    """``post(path, body, timeout) -> (status, body)`` against ``base_url``; thread-safe."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain-HTTP URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn, reused = self._connection(timeout)
            try:
                conn.request("POST", self._prefix + path, body=body, headers=_HEADERS)
                response = conn.getresponse()
                content = response.read()
            except TimeoutError as exc:
                self._drop(conn)
                raise RetryableError(
                    f"timed out after {timeout:g} s ({type(exc).__name__})"
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(conn)
                if reused and attempt == 1:
                    continue  # closed by the server while idle: once more on a new connection
                raise RetryableError(f"unreachable: {type(exc).__name__}: {exc}") from exc
            if response.will_close:
                self._drop(conn)
            return response.status, content
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it is an open one being reused."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
            return conn, False
        if conn.sock is None:  # closed: the next request connects it again
            conn.timeout = timeout
            return conn, False
        conn.sock.settimeout(timeout)
        return conn, True

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            self._open.discard(conn)

    def close(self) -> None:
        """Close every connection (of any thread)."""
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()
