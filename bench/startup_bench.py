"""How long ``canary-analyzer serve`` takes to answer, and how much memory it then holds.

Starts the real ``serve`` command (``python -m analyzer.cli serve``) with the Prometheus source
and the shipped default of two look worker processes, on a data directory migrated once
(SQLite, or ``--database-url`` for PostgreSQL), and measures, per run (``--source synthetic``:
the embedded default, no metric settings at all, no look workers):

* **ready**: from ``Popen`` to the first ``200`` from ``/readyz`` (the database is reachable and
  migrated; what a Kubernetes readiness probe asks), and the CPU time the process had used by
  then (on a loaded machine wall time mostly measures the queue for a core);
* **workers warm**: from ``Popen`` until every look worker process exists and has finished its
  imports (read from the ``analysis.look.workers_ready`` log line; Prometheus source only),
  and the CPU the workers had used by then;
* **RSS** once idle (``--settle`` seconds after ready, and after the workers are warm): the
  serving process and its look workers (``/proc/<pid>/status`` ``VmRSS``), and apart from them
  multiprocessing's resource tracker (a small helper process the spawned pool starts).

The Prometheus source reads a real Prometheus: by default one started by this bench on an empty
TSDB (the ``prometheus`` binary on PATH; no look runs during the measurement, so it only has to
be there), or ``--prometheus-url``. Its CPU over the runs is reported. ``--compare DIR``
interleaves runs of another checkout's ``serve`` (e.g. ``git archive main`` unpacked in DIR),
so both see the same machine noise.

A run that is not ready within ``--ready-timeout`` seconds stops the bench with the serve's
log and who holds its port. The port is chosen free just before ``serve`` binds it; another
process taking it in between makes ``serve`` exit 3, and the run is retried on another port.

    .venv/bin/python bench/startup_bench.py [--runs 7] [--settle 4] [--database-url URL]
        [--source prometheus|synthetic] [--prometheus-url URL] [--compare DIR] [--json out.json]
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


def is_worker(pid: int) -> bool:
    """A look worker (spawned by ``ProcessLooks``), not the resource tracker."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def start_prometheus(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A real Prometheus on an empty TSDB (no scrape targets), ready."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\nscrape_configs: []\n")
    process = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("prometheus did not become ready within 60 s")


def base_env(
    data_dir: str, database_url: str | None, source: str, prometheus_url: str | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    env["CANARY_ANALYZER_DATA_DIR"] = data_dir
    if database_url:
        env["CANARY_ANALYZER_DATABASE_URL"] = database_url
    # "synthetic": the embedded default exactly as `serve` runs it without any settings.
    if source == "prometheus":
        assert prometheus_url is not None
        env["CANARY_ANALYZER_METRIC_SOURCE"] = "prometheus"
        env["CANARY_ANALYZER_PROMETHEUS__URL"] = prometheus_url
    return env


class PortTaken(Exception):  # noqa: N818 -- a condition the caller retries
    """``serve`` exited 3: another process bound the port between our check and its bind."""


def one_run(
    env: dict[str, str], settle: float, checkout: Path, *, workers: bool, ready_timeout: float
) -> dict[str, float]:
    for _ in range(3):
        with tempfile.TemporaryFile() as log:
            try:
                return _run(env, settle, log, checkout, workers=workers, timeout=ready_timeout)
            except PortTaken:
                print("port taken before serve bound it; retrying on another", flush=True)
    raise SystemExit("three ports in a row were taken before serve bound them")


def _holders(port: int) -> str:
    """Who listens on ``port`` (ss), for the report of a run that never got ready."""
    try:
        found = subprocess.run(
            ["ss", "-ltnp", f"sport = :{port}"], check=False, capture_output=True, text=True
        )
    except FileNotFoundError:
        return "(ss not installed)"
    return found.stdout.strip() or found.stderr.strip()


def _run(
    env: dict[str, str],
    settle: float,
    log: IO[bytes],
    checkout: Path,
    *,
    workers: bool,
    timeout: float,
) -> dict[str, float]:
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
                if proc.returncode == 3 and b"address already in use" in log.read().lower():
                    raise PortTaken
                log.seek(0)
                raise SystemExit(f"serve exited {proc.returncode}:\n{log.read().decode()}")
            if time.monotonic() - started > timeout:
                log.seek(0)
                raise SystemExit(
                    f"serve (pid {proc.pid}, port {port}) not ready after {timeout:.0f} s; "
                    f"listening on the port: {_holders(port)!r}; its log:\n{log.read().decode()}"
                )
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if answer.status_code == 200:
                    ready_at = time.monotonic()
                    ready_cpu = cpu_seconds(proc.pid)
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        # Only the Prometheus source has look workers; waiting for their line otherwise
        # waited out the whole deadline each run (7 runs took ~8 minutes).
        warm_at, warm_cpu = None, float("nan")
        deadline = ready_at + 60
        while workers and warm_at is None and time.monotonic() < deadline:
            log.seek(0)
            if b"workers_ready" in log.read():
                warm_at = time.monotonic()
                warm_cpu = sum(cpu_seconds(c) for c in children(proc.pid) if is_worker(c))
            else:
                time.sleep(0.02)
        time.sleep(settle)
        main = rss_kib(proc.pid)
        kids = children(proc.pid)
        worker_rss = [rss_kib(c) for c in kids if is_worker(c)]
        other_rss = [rss_kib(c) for c in kids if not is_worker(c)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return {
        "ready_s": ready_at - started,
        # CPU spent until ready: steadier than wall time on a loaded machine (no queueing).
        "ready_cpu_s": ready_cpu,
        "workers_warm_s": (warm_at - started) if warm_at else float("nan"),
        "workers_cpu_s": warm_cpu,
        "rss_main_mb": main / 1024,
        "rss_workers_mb": sum(worker_rss) / 1024,
        "rss_total_mb": (main + sum(worker_rss)) / 1024,
        "rss_tracker_mb": sum(other_rss) / 1024,
        "workers": len(worker_rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--settle", type=float, default=4.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--source", choices=["prometheus", "synthetic"], default="prometheus")
    parser.add_argument("--prometheus-url", default=None, help="default: start one (empty TSDB)")
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--compare", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    checkouts = {"this": ROOT} | ({"compare": args.compare} if args.compare else {})
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
    prometheus = None
    with tempfile.TemporaryDirectory() as data_dir:
        url = args.prometheus_url
        if args.source == "prometheus" and url is None:
            prometheus, url = start_prometheus(Path(data_dir))
            print(f"prometheus (empty TSDB) at {url}", flush=True)
        try:
            env = base_env(data_dir, args.database_url, args.source, url)
            migrate = [sys.executable, "-m", "analyzer.cli", "migrate"]
            subprocess.run(migrate, env=env, check=True, capture_output=True, cwd=ROOT)
            prom_cpu0 = cpu_seconds(prometheus.pid) if prometheus else 0.0
            for i in range(args.runs):
                # Alternate which checkout goes first: on a loaded machine the first of a pair
                # measured consistently slower (cold page cache), whichever it was.
                order = list(checkouts.items())
                for name, checkout in order if i % 2 == 0 else reversed(order):
                    run = one_run(env, args.settle, checkout, workers=args.source == "prometheus",
                                  ready_timeout=args.ready_timeout)  # fmt: skip
                    runs[name].append(run)
                    shown = ", ".join(f"{k} {v:.2f}" for k, v in run.items())
                    print(f"{name} run {i + 1}: {shown}", flush=True)
            prom_cpu = (cpu_seconds(prometheus.pid) - prom_cpu0) if prometheus else float("nan")
        finally:
            if prometheus is not None:
                prometheus.terminate()
                prometheus.wait(timeout=30)
    summary = {
        name: {k: statistics.median(r[k] for r in found) for k in found[0]}
        for name, found in runs.items()
    }
    for name, medians in summary.items():
        print(f"{name} median: " + ", ".join(f"{k} {v:.2f}" for k, v in medians.items()))
    print(f"prometheus CPU over all runs: {prom_cpu:.2f} s")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": summary, "load": load}, indent=2))


if __name__ == "__main__":
    main()
