"""POSTs to one plain-HTTP Prometheus over kept-alive connections, one per thread (issue 20).

A fresh Argo look asked Prometheus five queries (two since its counters are read in one);
through ``httpx`` each request cost ~1 ms of CPU (request and URL models, auth and redirect
hooks, cookie extraction, h11 events), a third of the look's CPU (docs/benchmarks.md, Argo
AnalysisRuns at 1,000 a minute). The standard library's ``http.client`` did the same exchange
for a fraction, and most of what was left was its header handling (each header put and checked
one by one, the answer's headers parsed by ``email.feedparser``). So the exchange is written out
here: the request is bytes built once per path (only ``Content-Length`` and the body change),
and the answer is parsed by ``httptools.HttpResponseParser`` (llhttp, in C: status,
``Content-Length`` or chunked bodies, keep-alive). Where ``httptools`` cannot be imported,
``http.client`` does it as before.

Used by :class:`~analyzer.metrics.prometheus.client.PrometheusClient` when no ``httpx`` client
is handed in, for ``http://`` URLs that no proxy setting covers (``https`` and proxied
Prometheus keep ``httpx``: its certificate bundle and proxy support). Queries are idempotent, so
a kept-alive connection the server closed while idle is retried once on a new connection; every
other failure (a timeout, a refused connection, an answer cut short or malformed) is a
:class:`RetryableError` for the client's bounded retries. The exceptions behind them are the
ones ``http.client`` raised for the same failures (``RemoteDisconnected``, ``IncompleteRead``,
``TimeoutError``), so the messages read as before.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import urllib.request
from typing import Any, Protocol
from urllib.parse import urlsplit

from analyzer.domain.errors import RetryableError

try:
    import httptools

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - a dependency; http.client stands in without it
    HAVE_HTTPTOOLS = False

_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
_READ_SIZE = 65536
# after Content-Length's value: the rest of the request's head, as http.client wrote it
_HEAD_END = (
    "".join(f"\r\n{name}: {value}" for name, value in _HEADERS.items()) + "\r\n\r\n"
).encode()


def usable_for(base_url: str) -> bool:
    """``base_url`` is plain HTTP with no proxy configured for its host."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxies = urllib.request.getproxies()  # the *_proxy variables httpx honours too
    proxy = proxies.get("http") or proxies.get("all")
    return not proxy or bool(urllib.request.proxy_bypass(parts.hostname))


class _Connection(Protocol):
    """One kept-alive connection: ``exchange`` sends a POST and reads its whole answer."""

    @property
    def connected(self) -> bool:
        """A socket is open (the next exchange reuses it)."""
        ...

    def exchange(self, target: str, body: bytes, timeout: float) -> tuple[int, bytes, bool]:
        """``(status, body, the connection must close)``; raises ``OSError`` or
        ``http.client.HTTPException``."""
        ...

    def close(self) -> None: ...


class KeepAliveHttp:
    """``post(path, body, timeout) -> (status, body)`` against ``base_url``; thread-safe.

    ``lean``: the httptools exchange (the default when httptools is installed); False uses
    ``http.client``.
    """

    def __init__(self, base_url: str, *, lean: bool | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain-HTTP URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._lean = HAVE_HTTPTOOLS if lean is None else lean
        if self._lean and not HAVE_HTTPTOOLS:
            raise ValueError("the lean exchange needs httptools")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[_Connection] = set()

    def post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.connected
            try:
                status, content, will_close = conn.exchange(self._prefix + path, body, timeout)
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
            if will_close:
                self._drop(conn)
            return status, content
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _connection(self) -> _Connection:
        """This thread's connection (made, not yet connected, when it has none)."""
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = (
                _LeanConnection(self._host, self._port)
                if self._lean
                else _StdlibConnection(self._host, self._port)
            )
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
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


class _StdlibConnection:
    """The exchange by ``http.client`` (where httptools is not installed)."""

    def __init__(self, host: str, port: int) -> None:
        self._conn = http.client.HTTPConnection(host, port)

    @property
    def sock(self) -> socket.socket | None:
        return self._conn.sock

    @property
    def connected(self) -> bool:
        return self._conn.sock is not None

    def exchange(self, target: str, body: bytes, timeout: float) -> tuple[int, bytes, bool]:
        if self._conn.sock is None:
            self._conn.timeout = timeout  # the next request connects with it
        else:
            self._conn.sock.settimeout(timeout)
        self._conn.request("POST", target, body=body, headers=_HEADERS)
        response = self._conn.getresponse()
        return response.status, response.read(), response.will_close

    def close(self) -> None:
        self._conn.close()


class _LeanConnection:
    """The exchange written out: prebuilt request bytes, the answer parsed by httptools."""

    def __init__(self, host: str, port: int) -> None:
        _refuse_control_characters(host)
        self._address = (host, port)
        self._host_header = _host_header(host, port)
        self._heads: dict[str, bytes] = {}
        self.sock: socket.socket | None = None  # None until the first exchange, and once closed

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def exchange(self, target: str, body: bytes, timeout: float) -> tuple[int, bytes, bool]:
        head = self._heads.get(target)
        if head is None:  # before connecting, as http.client refuses a bad target
            head = self._heads[target] = self._head(target)
        sock = self.sock
        if sock is None:
            sock = socket.create_connection(self._address, timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = sock
        else:
            sock.settimeout(timeout)
        sock.sendall(b"%s%d%s%s" % (head, len(body), _HEAD_END, body))
        return _read_answer(sock)

    def _head(self, target: str) -> bytes:
        """The request up to the value of ``Content-Length``: http.client's lines, in its
        order, refused where it refused them (control characters; a target not ASCII)."""
        _refuse_control_characters(target)
        request_line = f"POST {target} HTTP/1.1".encode("ascii")
        return b"%s\r\nHost: %s\r\nAccept-Encoding: identity\r\nContent-Length: " % (
            request_line,
            self._host_header,
        )

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


_CONTROL_CHARACTERS = re.compile("[\x00-\x20\x7f]")


def _refuse_control_characters(text: str) -> None:
    # as http.client does (CVE-2019-9740, CVE-2019-18348)
    match = _CONTROL_CHARACTERS.search(text)
    if match:
        raise http.client.InvalidURL(
            f"URL can't contain control characters. {text!r} (found at least {match.group()!r})"
        )


def _host_header(host: str, port: int) -> bytes:
    """The Host header's value as http.client writes it: IDNA for a name that is not ASCII,
    an IPv6 address in brackets without its zone, the port unless it is 80."""
    try:
        encoded = host.encode("ascii")
    except UnicodeEncodeError:
        encoded = host.encode("idna")
    if b":" in encoded:
        encoded = b"[" + encoded.partition(b"%")[0] + b"]"
    return encoded if port == 80 else b"%s:%d" % (encoded, port)


class _Answer:
    """httptools' callbacks: the body's pieces and where the answer stands."""

    __slots__ = (
        "complete", "extra", "headers_done", "keep_alive", "length_known", "parser", "pieces",
    )  # fmt: skip

    def __init__(self) -> None:
        self.parser: Any = httptools.HttpResponseParser(self)
        self.pieces: list[bytes] = []
        self.headers_done = False
        self.complete = False
        self.length_known = False  # Content-Length or chunked: not read until the server closes
        self.extra = False  # bytes after the answer: the connection is out of step, close it
        self.keep_alive = False

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.length_known = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # here, not after the message: llhttp clears the flags once a message is complete
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, piece: bytes) -> None:
        if not self.complete:
            self.pieces.append(piece)

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if 100 <= self.parser.get_status_code() < 200:
            # informational (100 Continue): http.client skips it and reads the real answer
            self.headers_done = self.length_known = False
            self.pieces.clear()
            return
        self.complete = True


def _read_answer(sock: socket.socket) -> tuple[int, bytes, bool]:
    """One whole answer from ``sock``: status, body, and whether the connection must close."""
    answer = _Answer()
    parser = answer.parser
    try:
        received = 0
        while not answer.complete:
            data = sock.recv(_READ_SIZE)
            if not data:
                if answer.headers_done and not answer.length_known:
                    break  # a body delimited by the server closing the connection: all of it
                if not received:
                    raise http.client.RemoteDisconnected(
                        "Remote end closed connection without response"
                    )
                raise http.client.IncompleteRead(b"".join(answer.pieces))
            received += len(data)
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise http.client.HTTPException(f"malformed answer: {exc}") from exc
    finally:
        answer.parser = None  # the parser and its callbacks refer to each other: no GC cycle
    body = b"".join(answer.pieces)
    will_close = not answer.complete or answer.extra or not answer.keep_alive
    return parser.get_status_code(), body, will_close
