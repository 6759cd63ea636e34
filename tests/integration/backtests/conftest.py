"""A real Prometheus holding the 20 recorded canaries of ``history.py`` (module docstring there).

Without ``prometheus``/``promtool`` the tests skip locally and fail under ``CI`` (as the other
Prometheus suites do).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import history
import promserver


@pytest.fixture(scope="session")
def recorded() -> promserver.Scenario:
    return history.scenario()


@pytest.fixture(scope="session")
def history_prometheus(
    recorded: promserver.Scenario, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[promserver.RunningPrometheus]:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        message = "prometheus/promtool not on PATH (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    running = history.start_prometheus(tmp_path_factory.mktemp("history"), recorded)
    try:
        yield running
    finally:
        running.stop()
