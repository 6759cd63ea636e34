"""What a threadpool hop costs a FastAPI request: the Argo route's shape with its three
dependencies as plain ``def`` (each run in the threadpool, as before issue 20) or as ``async def``
(on the event loop, as now), the path function a plain ``def`` in both.

One uvicorn server in a child process (as deployed), a sequential keep-alive client here, so the
server's CPU per request (from /proc) is the HTTP path and nothing else: the dependencies do no
work. Variants alternate, ``--rounds`` times each; the medians are printed.

    .venv/bin/python bench/dependency_hops.py [--requests 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]

BODY = json.dumps(
    {"model": {"namespace": "risk", "name": "fraud"}, "canary": "fraud-00002",
     "baseline": "fraud-00001", "profile": "bench-5", "weight": 50, "rollout": "r"}
).encode()  # fmt: skip


class Body(BaseModel):
    model: dict[str, str]
    canary: str
    baseline: str
    profile: str
    weight: int
    rollout: str


def check_sync(request: Request) -> None:  # the control-character check's shape
    request.query_params.multi_items()


async def check_async(request: Request) -> None:
    request.query_params.multi_items()


def services_sync(request: Request) -> Any:
    return request.app.state


async def services_async(request: Request) -> Any:
    return request.app.state


def actor_sync(state: Annotated[Any, Depends(services_sync)]) -> str:  # the auth's shape
    return "argo"


async def actor_async(state: Annotated[Any, Depends(services_async)]) -> str:
    return "argo"


def analyses_sync(
    body: Body,
    state: Annotated[Any, Depends(services_sync)],
    who: Annotated[str, Depends(actor_sync)],
) -> dict[str, str]:
    return {"verdict": "pass", "canary": body.canary, "actor": who}


def analyses_async_deps(
    body: Body,
    state: Annotated[Any, Depends(services_async)],
    who: Annotated[str, Depends(actor_async)],
) -> dict[str, str]:
    return {"verdict": "pass", "canary": body.canary, "actor": who}


async def ready() -> dict[str, bool]:
    return {"ready": True}


def app_factory() -> FastAPI:
    """The app of the variant in ``HOPS_VARIANT``: ``sync`` or ``async`` dependencies."""
    sync = os.environ["HOPS_VARIANT"] == "sync"
    app = FastAPI(dependencies=[Depends(check_sync if sync else check_async)])
    app.post("/api/v1/analyses")(analyses_sync if sync else analyses_async_deps)
    app.get("/readyz")(ready)
    return app


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(variant: str, requests: int) -> dict[str, float]:
    # here, not at the top: the server process imports this module too, and needs none of it
    sys.path.insert(0, str(ROOT / "bench"))
    from api_load import cpu_seconds, percentile

    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "dependency_hops:app_factory", "--factory",
         "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env={**os.environ, "HOPS_VARIANT": variant},
    )  # fmt: skip
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 60
        while True:
            try:
                conn.request("GET", "/readyz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"content-type": "application/json"}

        def call() -> float:
            started = time.perf_counter()
            conn.request("POST", "/api/v1/analyses", BODY, headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            return (time.perf_counter() - started) * 1000

        for _ in range(300):  # warm-up
            call()
        before = sum(cpu_seconds(child.pid))
        walls = [call() for _ in range(requests)]
        spent = sum(cpu_seconds(child.pid)) - before
        return {
            "cpu_ms": spent * 1000 / requests,
            "p50_ms": statistics.median(walls),
            "p99_ms": percentile(walls, 0.99),
        }
    finally:
        child.terminate()
        child.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"sync": [], "async": []}
    for _ in range(args.rounds):
        for variant, runs in results.items():
            runs.append(run(variant, args.requests))
            print(json.dumps({"variant": variant, **runs[-1]}), flush=True)
    for variant, runs in results.items():
        summary = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        hops = 4 if variant == "sync" else 1
        print(json.dumps({"summary": variant, "threadpool_hops": hops, **summary,
                          "load_avg_1m": os.getloadavg()[0]}))  # fmt: skip


if __name__ == "__main__":
    main()
