"""The kept-alive transport of the Prometheus client (keepalive.py), against a real HTTP server
on 127.0.0.1: connections reused, a connection the server closed while idle retried once,
chunked answers, errors as the client's taxonomy, proxies left to httpx. Every test runs with
both exchanges: the httptools one and the ``http.client`` fallback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from analyzer.domain.errors import FatalIntegrationError, RetryableError
from analyzer.metrics.prometheus import keepalive
from analyzer.metrics.prometheus.client import PrometheusClient, RetryPolicy
from analyzer.metrics.prometheus.keepalive import KeepAliveHttp, usable_for

VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {"a": "b"}, "value": [1.5, "42"]}]},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the answer says otherwise
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.client_address[1], body.decode()))
        status, payload, mode = (
            self.server.answers.pop(0) if self.server.answers else (200, VECTOR, "")
        )
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(raw), 7):
                piece = raw[start : start + 7]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(raw)))
            if mode == "close":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(raw)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[int, str]] = []
        self.answers: list[tuple[int, Any, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(params=["httptools", "http.client"], autouse=True)
def exchange(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which exchange ``KeepAliveHttp`` uses: httptools, or the fallback without it."""
    monkeypatch.setattr(keepalive, "HAVE_HTTPTOOLS", request.param == "httptools")
    return str(request.param)


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def _client(url: str) -> PrometheusClient:
    return PrometheusClient(
        base_url=url, http=None, timeout=2.0, retry=RetryPolicy(attempts=1), sleep=lambda _: None
    )


AT = datetime(2026, 12, 6, tzinfo=UTC)


def test_queries_reuse_one_connection_and_parse_plain_and_chunked_answers(
    server: _Server,
) -> None:
    client = _client(server.url)
    server.answers = [(200, VECTOR, ""), (200, VECTOR, "chunked"), (200, VECTOR, "")]
    answers = [client.instant("up", AT) for _ in range(3)]
    assert [a[0].points for a in answers] == [((1.5, 42.0),)] * 3
    assert len({port for port, _ in server.seen}) == 1  # one kept-alive connection
    assert "query=up" in server.seen[0][1]
    client.close()


def test_a_connection_the_server_closed_is_replaced(server: _Server) -> None:
    client = _client(server.url)
    server.answers = [(200, VECTOR, "close"), (200, VECTOR, "")]
    client.instant("up", AT)
    client.instant("up", AT)
    assert len({port for port, _ in server.seen}) == 2
    client.close()


def test_a_kept_connection_dropped_while_idle_is_retried_once_on_a_new_one(
    server: _Server,
) -> None:
    http = KeepAliveHttp(server.url)
    assert http.post("/api/v1/query", b"query=up", 2.0)[0] == 200
    conn = http._local.conn
    assert conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)  # as an idle timeout on the server's side would
    status, body = http.post("/api/v1/query", b"query=up", 2.0)
    assert (status, json.loads(body)) == (200, VECTOR)
    http.close()


def test_errors_keep_the_client_taxonomy(server: _Server) -> None:
    client = _client(server.url)
    server.answers = [
        (503, {"status": "error"}, ""),
        (400, {"status": "error", "errorType": "bad_data", "error": "parse"}, ""),
    ]
    with pytest.raises(RetryableError, match="HTTP 503"):
        client.instant("up", AT)
    with pytest.raises(FatalIntegrationError, match="bad_data: parse"):
        client.instant("up", AT)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(RetryableError, match="unreachable"):
        _client(f"http://127.0.0.1:{port}").instant("up", AT)


def test_a_hanging_server_times_out_as_retryable() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()  # accepts (the kernel's backlog), never answers
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        client = PrometheusClient(
            base_url=url, http=None, timeout=0.2, retry=RetryPolicy(attempts=1)
        )
        with pytest.raises(RetryableError, match="timed out"):
            client.instant("up", AT)


def test_https_and_proxied_urls_are_left_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert usable_for("http://prometheus.monitoring:9090")
    assert not usable_for("https://prometheus.example.com")
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert not usable_for("http://prometheus.monitoring:9090")
    monkeypatch.setenv("no_proxy", "prometheus.monitoring")
    assert usable_for("http://prometheus.monitoring:9090")
    monkeypatch.delenv("http_proxy")
    monkeypatch.delenv("no_proxy")
    monkeypatch.setenv("all_proxy", "http://proxy:3128")
    assert not usable_for("http://prometheus.monitoring:9090")
