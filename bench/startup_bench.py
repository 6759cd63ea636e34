"""How long ``canary-analyzer serve`` takes to answer, and how much memory it then holds.

Starts the real ``serve`` command (``python -m analyzer.cli serve``) with the Prometheus source
and the shipped default of two look worker processes, on a data directory migrated once
(SQLite, or ``--database-url`` for PostgreSQL), and measures, per run (``--source synthetic``:
the embedded default, no metric settings at all):

* **ready**: from ``Popen`` to the first ``200`` from ``/readyz`` (the database is reachable and
  migrated; what a Kubernetes readiness probe asks), and the CPU time the process had used by
  then (on a loaded machine wall time mostly measures the queue for a core);
* **workers warm**: from ``Popen`` until every look worker process exists and has finished its
  imports (read from the ``analysis.look.workers_ready`` log line);
* **RSS** once idle (``--settle`` seconds after ready): the serving process and its children
  (the look workers), summed from ``/proc/<pid>/status`` ``VmRSS``.

Nothing needs to listen on the Prometheus URL: no look runs during the measurement.
``--compare DIR`` interleaves runs of another checkout's ``serve`` (e.g. ``git archive main``
unpacked in DIR), so both see the same machine noise.

    .venv/bin/python bench/startup_bench.py [--runs 7] [--settle 4] [--database-url URL]
        [--source prometheus|synthetic] [--compare DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (/proc/<pid>/stat utime and stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def base_env(data_dir: str, database_url: str | None, source: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_DATA_DIR"] = data_dir
    if database_url:
        env["CANARY_ANALYZER_DATABASE_URL"] = database_url
    # "synthetic": the embedded default exactly as `serve` runs it without any settings.
    if source == "prometheus":
        env["CANARY_ANALYZER_METRIC_SOURCE"] = "prometheus"
        env["CANARY_ANALYZER_PROMETHEUS__URL"] = "http://127.0.0.1:9"
    return env


def one_run(env: dict[str, str], settle: float, checkout: Path) -> dict[str, float]:
    with tempfile.TemporaryFile() as log:
        return _run(env, settle, log, checkout)


def _run(env: dict[str, str], settle: float, log: IO[bytes], checkout: Path) -> dict[str, float]:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer.cli", "serve", "--port", str(port)],
        env=env | {"PYTHONPATH": str(checkout)}, stdout=log, stderr=subprocess.STDOUT,
        cwd=checkout,
    )  # fmt: skip
    try:
        ready_at = None
        while ready_at is None:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"serve exited {proc.returncode}:\n{log.read().decode()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    ready_at = time.monotonic()
                    ready_cpu = cpu_seconds(proc.pid)
            except httpx.HTTPError:
                time.sleep(0.02)
        warm_at = None
        deadline = ready_at + 60
        while warm_at is None and time.monotonic() < deadline:
            log.seek(0)
            if b"workers_ready" in log.read():
                warm_at = time.monotonic()
            else:
                time.sleep(0.02)
        time.sleep(settle)
        main = rss_kib(proc.pid)
        workers = [rss_kib(c) for c in children(proc.pid)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return {
        "ready_s": ready_at - started,
        # CPU spent until ready: steadier than wall time on a loaded machine (no queueing).
        "ready_cpu_s": ready_cpu,
        "workers_warm_s": (warm_at - started) if warm_at else float("nan"),
        "rss_main_mb": main / 1024,
        "rss_workers_mb": sum(workers) / 1024,
        "rss_total_mb": (main + sum(workers)) / 1024,
        "processes": 1 + len(workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--source", choices=["prometheus", "synthetic"], default="prometheus")
    parser.add_argument("--compare", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    checkouts = {"this": ROOT} | ({"compare": args.compare} if args.compare else {})
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as data_dir:
        env = base_env(data_dir, args.database_url, args.source)
        migrate = [sys.executable, "-m", "analyzer.cli", "migrate"]
        subprocess.run(migrate, env=env, check=True, capture_output=True, cwd=ROOT)
        for i in range(args.runs):
            # Alternate which checkout goes first: on a loaded machine the first of a pair
            # measured consistently slower (cold page cache), whichever it was.
            order = list(checkouts.items())
            for name, checkout in order if i % 2 == 0 else reversed(order):
                run = one_run(env, args.settle, checkout)
                runs[name].append(run)
                print(f"{name} run {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in run.items()))
    summary = {
        name: {k: statistics.median(r[k] for r in found) for k in found[0]}
        for name, found in runs.items()
    }
    for name, medians in summary.items():
        print(f"{name} median: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()))
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": summary, "load": load}, indent=2))


if __name__ == "__main__":
    main()
