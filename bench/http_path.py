"""What the HTTP path alone costs a fresh Argo call: ``POST /api/v1/analyses`` through the app
as ``serve`` builds it (``create_app``: every middleware, the static-token check, the body's
validation, the profile's resolution, the answer's JSON and the API's own metrics), with an
analysis service that answers at once with a real 5-metric result (the bench profile of
``bench/api_load.py`` judged over the synthetic source), so the look, its queries and its
writes cost nothing here.

One uvicorn process (as deployed, uvloop + httptools), a sequential keep-alive client in this
process; the server's CPU per call from /proc (user + system), ``--rounds`` rounds of
``--requests`` calls after a warm-up; medians printed. Subtracted from the endpoint's CPU per
fresh call (``bench/api_load.py``), it leaves the look and its writes.

    .venv/bin/python bench/http_path.py [--requests 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_load import PROFILE, TOKEN  # noqa: E402

BODY = json.dumps(
    {"model": {"namespace": "risk", "name": "fraud-scorer"}, "canary": "fraud-00002",
     "baseline": "fraud-00001", "profile": "bench-5", "weight": 50, "rollout": "bench-1"}
).encode()  # fmt: skip


def _result() -> dict[str, Any]:
    """A real 5-metric result: the bench profile judged over the synthetic source."""
    from analyzer.analyses.service import json_safe
    from analyzer.analysis import run_analysis
    from analyzer.domain.model import ModelRef
    from analyzer.metrics.base import TimeWindow
    from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
    from analyzer.profiles import parse_profile

    loaded = parse_profile(PROFILE)
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    same = RevisionBehaviour(weight=1.0)
    source = SyntheticSource(
        seed=3, origin=origin, revisions={"fraud-00001": same, "fraud-00002": same},
        request_rate=20.0,
    )  # fmt: skip
    window = TimeWindow(start=origin, end=origin + timedelta(minutes=20))
    model = ModelRef(namespace="risk", name="fraud-scorer")
    result, _ = run_analysis(
        loaded.profile, loaded.queries, source, model, "fraud-00001", "fraud-00002", window
    )
    return dict(json_safe(result.to_json()))


def app_factory() -> Any:
    """The API with an analysis service that answers at once (uvicorn ``--factory``)."""
    from prometheus_client import CollectorRegistry

    from analyzer.analyses.catalog import ProfileCatalog
    from analyzer.analyses.service import AnalysisAnswer
    from analyzer.api.app import create_app
    from analyzer.api.flagger import PolicyGateEvaluator
    from analyzer.api.server import freeze_startup_objects
    from analyzer.config import ApiSettings, RateLimitSettings, Settings, StaticTokenSettings
    from analyzer.db import make_engine
    from analyzer.ledger.store import Ledger
    from analyzer.logging import configure_logging
    from analyzer.metrics.base import TimeWindow
    from analyzer.rollouts.service import RolloutService
    from analyzer.targets.memory.target import InMemoryTarget
    from gates.policy import GatePolicyConfig

    configure_logging("warning")
    now = datetime.now(UTC)
    answer = AnalysisAnswer(
        result=_result(), session_id=1, look=3, cached=False,
        window=TimeWindow(start=now - timedelta(minutes=30), end=now), ledger_seq=42,
    )  # fmt: skip

    class AnswersAtOnce:
        def analyze(self, request: Any, actor: str, *, received: float | None = None) -> Any:
            return answer

        def close(self) -> None:
            pass

    profiles = Path(os.environ["HTTP_PATH_PROFILES"])
    settings = Settings(
        api=ApiSettings(
            static_tokens=(StaticTokenSettings(subject="argo", roles=("analysis",), token=TOKEN),),
            rate_limit_analysis=RateLimitSettings(per_second=10_000, burst=10_000),
            profiles_dir=profiles,
        )
    )
    engine = make_engine("sqlite://")
    ledger = Ledger(engine)
    app = create_app(
        settings, engine=engine, ledger=ledger,
        rollouts=RolloutService(engine, ledger, InMemoryTarget()),
        analyses=AnswersAtOnce(),  # type: ignore[arg-type]
        gate_evaluator=PolicyGateEvaluator(GatePolicyConfig(), {}),
        profiles=ProfileCatalog(profiles), registry=CollectorRegistry(),
    )  # fmt: skip
    freeze_startup_objects()
    return app


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench-5.yaml").write_text(PROFILE)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "http_path:app_factory", "--factory",
             "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            env={**os.environ, "HTTP_PATH_PROFILES": tmp, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        try:
            headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            conn = _connect(port)
            for _ in range(300):  # warm-up
                status, _ = _post(conn, headers)
            if status != 200:
                sys.exit(f"the warm-up call answered {status}")
            runs = []
            for _ in range(args.rounds):
                cpu, walls = _cpu_seconds(child.pid), []
                for _ in range(args.requests):
                    started = time.perf_counter()
                    _, size = _post(conn, headers)
                    walls.append(time.perf_counter() - started)
                spent = _cpu_seconds(child.pid) - cpu
                run = {
                    "server_cpu_ms": round(spent * 1000 / args.requests, 3),
                    "p50_ms": round(statistics.median(walls) * 1000, 3),
                    "answer_bytes": size,
                }  # fmt: skip
                print(json.dumps(run), flush=True)
                runs.append(run)
            print(json.dumps({
                "summary": "http path", "requests": args.requests, "rounds": args.rounds,
                "server_cpu_ms": statistics.median(r["server_cpu_ms"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }))  # fmt: skip
        finally:
            child.terminate()
            child.wait(15)


def _connect(port: int) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 60
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/readyz")
            conn.getresponse().read()
            return conn
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _post(conn: http.client.HTTPConnection, headers: dict[str, str]) -> tuple[int, int]:
    conn.request("POST", "/api/v1/analyses", body=BODY, headers=headers)
    response = conn.getresponse()
    return response.status, len(response.read())


if __name__ == "__main__":
    main()
