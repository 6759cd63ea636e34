"""Log lines from many threads, ours (structlog) and libraries' (stdlib logging), stay whole
JSON lines: one handler, one lock, one renderer. Run in a child process (logging is global)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, threading, structlog
from analyzer.logging import configure_logging
configure_logging("debug", "json")
ours, theirs = structlog.get_logger("analyzer.test"), logging.getLogger("httpcore.connection")
def work(n):
    for i in range(200):
        ours.debug("prometheus.query.ok", thread=n, i=i, path="/api/v1/query", pad="x" * 300)
        theirs.debug("connect_tcp.started host=%s port=%d thread=%d", "127.0.0.1", 9, n)
threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def test_concurrent_lines_from_structlog_and_stdlib_are_whole_json_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    lines = done.stderr.splitlines()
    entries = [json.loads(line) for line in lines]  # raises on an interleaved line
    assert len(entries) == 8 * 200 * 2
    ours = [e for e in entries if e["event"] == "prometheus.query.ok"]
    theirs = [e for e in entries if e["event"].startswith("connect_tcp.started")]
    assert len(ours) == len(theirs) == 1600
    assert all(e["level"] == "debug" and "timestamp" in e for e in entries)
    assert {e["logger"] for e in theirs} == {"httpcore.connection"}
