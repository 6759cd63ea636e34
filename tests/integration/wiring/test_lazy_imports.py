"""``serve``'s start-up loads only what its settings use (issue 20: ready ≤ 3 s).

The Kubernetes client (~0.2 s of CPU) and the targets over it are imported by the builder that
needs them, and scipy.special (~0.2 s) when a statistic first runs: a ``serve`` with the
Prometheus source and the memory target loads neither, nor does the CLI. Checked in a fresh
interpreter, since this test session has long imported both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.postgres

SCRIPT = """
import json, sys

def loaded():
    return sorted({m.split(".")[0] for m in sys.modules} & {"kubernetes", "scipy", "fastapi"})

import analyzer.cli
after_cli = loaded()
from analyzer.api.server import build_app
from analyzer.config import load_settings
from analyzer.wiring import build_service
settings = load_settings()
service = build_service(settings, warm_looks=False)
build_app(settings, service=service)
after_app = loaded()
judge_loaded = "analyzer.judge" in sys.modules
from analyzer.stats import lazy_special
half = float(lazy_special.ndtr(0.0))
service.close()
print(json.dumps({"cli": after_cli, "app": after_app, "judge": judge_loaded, "half": half,
                  "special": "scipy.special" in sys.modules}))
"""


def test_serve_with_prometheus_loads_neither_the_kubernetes_client_nor_scipy(pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env |= {
        "CANARY_ANALYZER_DATABASE_URL": pg_url,
        "CANARY_ANALYZER_METRIC_SOURCE": "prometheus",
        "CANARY_ANALYZER_PROMETHEUS__URL": "http://127.0.0.1:9",
        "CANARY_ANALYZER_TRAFFIC_TARGET": "memory",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["cli"] == []  # `--help`, `token create`: not even FastAPI
    assert found["app"] == ["fastapi"]  # the app was built ...
    assert found["judge"]  # ... with the judge, whose scipy waits for its first use
    assert found["half"] == 0.5
    assert found["special"]
