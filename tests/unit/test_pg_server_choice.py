"""tests/pg.py picks the configured server, else a container when Docker answers, else local."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests import pg


class FakeDockerEngine(BaseHTTPRequestHandler):
    """Answers GET /_ping like dockerd ("OK"); anything else 404."""

    def do_GET(self) -> None:
        body = b"OK" if self.path == "/_ping" else b"page not found"
        self.send_response(200 if self.path == "/_ping" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def engine_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDockerEngine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_answering_engine_is_reachable(engine_url: str) -> None:
    assert pg.docker_reachable({"DOCKER_HOST": engine_url})


def test_no_engine_is_not_reachable(tmp_path: Any) -> None:
    assert not pg.docker_reachable({"DOCKER_HOST": f"tcp://127.0.0.1:{closed_port()}"})
    assert not pg.docker_reachable({"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"})
    assert not pg.docker_reachable({"DOCKER_HOST": "ssh://builder@host"})


def test_the_configured_server_wins_then_docker_then_local() -> None:
    configured = {"CANARY_ANALYZER_TEST_DATABASE_URL": "postgresql+psycopg://x@h/db"}
    assert pg.choose_server(configured, docker=True) == "env"
    assert pg.choose_server({}, docker=True) == "docker"
    assert pg.choose_server({}, docker=False) == "local"
