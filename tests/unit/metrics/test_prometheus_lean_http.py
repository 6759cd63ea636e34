"""The httptools exchange of keepalive.py reads every answer as ``http.client`` did (issue 20).

Over a socket pair, the same bytes (``Content-Length`` or chunked, any split into reads, any
status, ``Connection: close``, HTTP/1.0, a body until the server closes) give the same status,
body and close-or-keep as ``http.client.HTTPResponse``. Against a raw server on 127.0.0.1: a
slow server past the timeout, a malformed answer, an answer cut short, a 100 Continue, and bytes
after the answer, each as ``http.client`` would have it (a ``RetryableError``, never a crash).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.domain.errors import RetryableError
from analyzer.metrics.prometheus import keepalive
from analyzer.metrics.prometheus.keepalive import KeepAliveHttp, _read_answer


def _send_in_pieces(sock: socket.socket, raw: bytes, cuts: list[int], close: bool) -> None:
    start = 0
    for cut in [*sorted(c for c in cuts if 0 < c < len(raw)), len(raw)]:
        sock.sendall(raw[start:cut])
        start = cut
        time.sleep(0)  # the reader may see the pieces one by one
    if close:
        sock.shutdown(socket.SHUT_WR)


def _lean(raw: bytes, cuts: list[int], close: bool) -> tuple[int, bytes, bool]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        writer = threading.Thread(target=_send_in_pieces, args=(theirs, raw, cuts, close))
        writer.start()
        try:
            return _read_answer(ours)
        finally:
            writer.join()


def _stdlib(raw: bytes, close: bool) -> tuple[int, bytes, bool]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(raw)
        if close:
            theirs.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(ours, method="POST")
        response.begin()
        return response.status, response.read(), response.will_close


def _answer(
    status: int, body: bytes, *, chunks: list[int] | None, version: str, headers: list[str]
) -> bytes:
    lines = [f"{version} {status} Whatever", "Content-Type: application/json", *headers]
    if chunks is None:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    else:
        lines.append("Transfer-Encoding: chunked")
        pieces, start = [], 0
        for cut in [*sorted(c for c in chunks if 0 < c < len(body)), len(body)]:
            if cut > start:
                piece = body[start:cut]
                pieces.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            start = cut
        payload = b"".join(pieces) + b"0\r\n\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@settings(max_examples=150, deadline=None)
@given(
    status=st.sampled_from([200, 204, 400, 422, 429, 500, 503]),
    body=st.binary(max_size=3000),
    chunked=st.booleans(),
    chunks=st.lists(st.integers(0, 3000), max_size=6),
    cuts=st.lists(st.integers(0, 3200), max_size=8),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    connection=st.sampled_from([[], ["Connection: close"], ["Connection: keep-alive"]]),
    read_size=st.sampled_from([1, 7, 100, 65536]),
)
def test_answers_read_as_http_client_reads_them(
    status: int,
    body: bytes,
    chunked: bool,
    chunks: list[int],
    cuts: list[int],
    version: str,
    connection: list[str],
    read_size: int,
) -> None:
    if status == 204:
        body, chunked = b"", False  # no body, and no framing for one
    raw = _answer(
        status, body, chunks=chunks if chunked else None, version=version, headers=connection
    )
    close = "Connection: close" in connection
    expected = _stdlib(raw, close)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keepalive, "_READ_SIZE", read_size)  # answers in short reads too
        assert _lean(raw, cuts, close) == expected
    assert expected[:2] == (status, body)


@pytest.mark.parametrize("cuts", [[], [5], [30, 31, 32]])
def test_a_body_delimited_by_the_server_closing_is_read_whole(cuts: list[int]) -> None:
    raw = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"status":"success"}'
    assert _lean(raw, cuts, close=True) == _stdlib(raw, close=True) == (
        200, b'{"status":"success"}', True
    )  # fmt: skip


@dataclass
class RawServer:
    """Answers each request on 127.0.0.1 with the next scripted bytes (as they are: broken
    ones too), after ``delay`` seconds; ``b""`` closes the connection without answering."""

    script: list[tuple[float, bytes]]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            while self.script:
                request = _read_request(conn)
                if request is None:
                    return
                self.requests.append(request)
                delay, raw = self.script.pop(0)
                time.sleep(delay)
                if not raw:
                    return
                try:
                    conn.sendall(raw)
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    server = RawServer(script=[])
    yield server
    server.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


def test_the_request_is_what_http_client_sent(raw_server: RawServer) -> None:
    raw_server.script = [(0, OK), (0, OK)]
    for lean in (True, False):
        http = KeepAliveHttp(raw_server.url + "/prom/", lean=lean)
        assert http.post("/api/v1/query", b"query=up&time=1.000", 2.0) == (200, b"{}")
        http.close()
    port = raw_server.url.rsplit(":", 1)[1]
    assert raw_server.requests == 2 * [
        b"POST /prom/api/v1/query HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{port}\r\n".encode()
        + b"Accept-Encoding: identity\r\n"
        b"Content-Length: 19\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Accept: application/json\r\n\r\nquery=up&time=1.000"
    ]


def test_a_slow_server_past_the_timeout_is_retryable_and_the_next_query_reconnects(
    raw_server: RawServer,
) -> None:
    raw_server.script = [(0.6, OK), (0, OK)]
    http = KeepAliveHttp(raw_server.url)
    with pytest.raises(RetryableError, match=r"timed out after 0.2 s \(TimeoutError\)"):
        http.post("/api/v1/query", b"query=up", 0.2)
    assert http.post("/api/v1/query", b"query=up", 2.0) == (200, b"{}")
    assert raw_server.connections == 2  # the timed-out connection was not reused
    http.close()


def test_a_server_stalling_mid_body_times_out(raw_server: RawServer) -> None:
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"
    raw_server.script = [(0, short), (0, OK)]  # the server keeps the connection open
    http = KeepAliveHttp(raw_server.url)
    with pytest.raises(RetryableError, match="timed out"):
        http.post("/api/v1/query", b"query=up", 0.2)
    http.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_a_malformed_answer_is_retryable(raw_server: RawServer, raw: bytes) -> None:
    raw_server.script = [(0, raw)]
    http = KeepAliveHttp(raw_server.url)
    with pytest.raises(RetryableError, match="unreachable: HTTPException: malformed answer"):
        http.post("/api/v1/query", b"query=up", 1.0)
    http.close()


def test_an_answer_cut_short_is_retryable(raw_server: RawServer) -> None:
    # the server closes after its answer (its script is over): EOF 8 bytes short of the body
    raw_server.script = [(0, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")]
    http = KeepAliveHttp(raw_server.url)
    with pytest.raises(RetryableError, match="unreachable: IncompleteRead"):
        http.post("/api/v1/query", b"query=up", 1.0)
    http.close()


def test_a_first_connection_closed_without_an_answer_is_not_retried(
    raw_server: RawServer,
) -> None:
    raw_server.script = [(0, b""), (0, OK)]
    http = KeepAliveHttp(raw_server.url)
    with pytest.raises(RetryableError, match="RemoteDisconnected"):
        http.post("/api/v1/query", b"query=up", 1.0)
    assert raw_server.connections == 1  # only a reused connection earns the second try
    http.close()


def test_a_kept_connection_closed_by_the_server_is_retried_once(raw_server: RawServer) -> None:
    raw_server.script = [(0, OK), (0, b""), (0, OK)]  # the second request: closed, no answer
    http = KeepAliveHttp(raw_server.url)
    assert http.post("/api/v1/query", b"query=up", 1.0) == (200, b"{}")
    assert http.post("/api/v1/query", b"query=up", 1.0) == (200, b"{}")
    assert raw_server.connections == 2
    http.close()


def test_a_100_continue_is_skipped(raw_server: RawServer) -> None:
    raw_server.script = [(0, b"HTTP/1.1 100 Continue\r\n\r\n" + OK), (0, OK)]
    http = KeepAliveHttp(raw_server.url)
    assert http.post("/api/v1/query", b"query=up", 1.0) == (200, b"{}")
    assert http.post("/api/v1/query", b"query=up", 1.0) == (200, b"{}")
    assert raw_server.connections == 1
    http.close()


def test_bytes_after_the_answer_close_the_connection(raw_server: RawServer) -> None:
    raw_server.script = [(0, OK + b"HTTP/1.1 200 OK\r\n"), (0, OK)]
    http = KeepAliveHttp(raw_server.url)
    assert http.post("/api/v1/query", b"query=up", 1.0) == (200, b"{}")
    assert http.post("/api/v1/query", b"query=up", 1.0) == (200, b"{}")
    assert raw_server.connections == 2  # not read as the next query's answer
    http.close()


def test_error_bodies_are_returned_whole(raw_server: RawServer) -> None:
    error = b'{"status":"error","errorType":"bad_data","error":"parse error"}'
    raw_server.script = [
        (0, b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error)),
        (0, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"),
    ]
    http = KeepAliveHttp(raw_server.url)
    assert http.post("/api/v1/query", b"query=up", 1.0) == (400, error)
    assert http.post("/api/v1/query", b"query=up", 1.0) == (503, b"busy")
    http.close()


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", 80),
        ("127.0.0.1", 9090),
        ("prometheus.monitoring", 9090),
        ("::1", 9090),
        ("fe80::1%eth0", 80),
        ("bücher.example", 80),
    ],
)
def test_the_host_header_is_http_clients(host: str, port: int) -> None:
    conn = http.client.HTTPConnection(host, port)
    conn.putrequest("POST", "/api/v1/query")
    sent = [line for line in conn._buffer if line.startswith(b"Host: ")]  # type: ignore[attr-defined]
    assert sent == [b"Host: " + keepalive._host_header(host, port)]


@pytest.mark.parametrize("lean", [True, False])
def test_control_characters_in_the_path_are_refused_as_http_client_refused_them(
    lean: bool,
) -> None:
    client = KeepAliveHttp("http://127.0.0.1:9/a b", lean=lean)
    with pytest.raises(RetryableError, match="unreachable: InvalidURL: URL can't contain control"):
        client.post("/api/v1/query", b"query=up", 1.0)
    client.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}",
    ],
)
def test_where_llhttp_is_stricter_than_http_client(raw: bytes) -> None:
    """Answers no HTTP/1.1 server should send, which http.client read: malformed here (a
    RetryableError for the client), as docs/metrics.md says. Prometheus sends none of them."""
    assert _stdlib(raw, close=True)[:2] == (200, b"{}")
    with pytest.raises(http.client.HTTPException, match="malformed answer"):
        _lean(raw, [], close=True)
