"""README's quick start, run exactly as written, ends in a judged example and a signed-in /ui/.

The commands are read from README.md between the quickstart markers, so the README is the
test. The first line (create the virtualenv and `pip install -e .`) is what CI's ``.ci/run``
does from scratch before any test runs; here the lines after it run in bash with this
checkout's virtualenv first on PATH, a temporary HOME (so the embedded SQLite default lands in
a fresh directory) and a free port; nothing else is set. Then Chromium opens /ui/, is sent to
the login page, signs in with the token the README's `eval` exported, and sees the signed-in
page.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
INSTALL = "python3 -m venv .venv && . .venv/bin/activate && pip install -e ."


def quickstart_lines() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(
        r"<!-- quickstart:begin -->\n```bash\n(.*?)```\n<!-- quickstart:end -->", readme, re.S
    )
    assert block, "README.md lost its quickstart markers"
    return [line for line in block.group(1).splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class QuickStart:
    url: str
    out: Path
    process: subprocess.Popen[bytes]

    def stdout(self) -> str:
        return (self.out / "stdout").read_text(encoding="utf-8")


def test_the_quick_start_is_five_commands_starting_with_the_install() -> None:
    lines = quickstart_lines()
    assert len(lines) <= 5
    assert lines[0] == INSTALL
    assert "pip install -q" not in lines[0]  # pip shows its progress to a first-time user


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[QuickStart]:
    lines = quickstart_lines()
    port = free_port()
    out = tmp_path / "out"
    out.mkdir()
    script = "\n".join(
        [
            "set -euo pipefail",
            *lines[1:-1],
            'printf "%s" "$CANARY_ANALYZER_TOKEN" > "$QUICKSTART_OUT/token"',
            lines[-1],
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env.update(
        HOME=str(tmp_path / "home"),
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
        CANARY_ANALYZER_API__PORT=str(port),  # the README's default 8080 may be taken here
        QUICKSTART_OUT=str(out),
    )
    with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            ["bash", "-c", script], cwd=REPO, env=env, stdout=stdout, stderr=stderr,
            start_new_session=True,  # serve and its look workers: one group to stop at the end
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # a loaded 2-core machine; usually a few seconds
        try:
            while True:
                assert process.poll() is None, (out / "stderr").read_text()
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "serve did not become ready"
                time.sleep(0.2)
            yield QuickStart(url=url, out=out, process=process)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_a_fresh_home_reaches_a_judged_example_and_a_signed_in_page(
    browser: Any, quickstart: QuickStart
) -> None:
    judged = [json.loads(line) for line in quickstart.stdout().splitlines() if line.startswith("{")]
    assert [j["verdict"] for j in judged] == ["pass"]
    token = (quickstart.out / "token").read_text(encoding="utf-8")
    assert token.startswith("ca_")

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{quickstart.url}/ui/")
    assert page.url.startswith(f"{quickstart.url}/ui/login")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{quickstart.url}/ui/")
    assert page.locator(".subject").inner_text() == "me"
    context.close()
