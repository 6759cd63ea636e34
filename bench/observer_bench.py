"""Traffic observer at scale: N watched InferenceServices, one traffic change per second.

    PYTHONPATH=. .venv/bin/python bench/observer_bench.py \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test --objects 1000 --seconds 180

The fake apiserver (tests/fakes, real HTTP on 127.0.0.1) and the "person" who changes traffic
run in a child process, so this process is the service's observer alone: list+watch over HTTP,
the translators, and the exactly-once recording on a scratch PostgreSQL database (migrated by
Alembic). Each change is ``canaryTrafficPercent`` of one InferenceService (round robin) with the
KServe controller's reconcile right after; the child sends (object, percent, wall time before the
write) to this process, which takes the committed ``traffic_changed`` entry's time when
``record`` returns. Reported: the initial sync (list of N objects → N entries + N revision
registrations), then lag from change to committed entry (p50/p99/max) and this process's CPU
(process time / wall) over the steady phase. PostgreSQL's own CPU is not included.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
from typing import Any

from sqlalchemy import text

from analyzer.db import make_engine
from analyzer.ledger.store import Ledger
from analyzer.observer import ObservedTrafficRecorder, Outcome, Recorded, TrafficObserver
from analyzer.targets.observed import ObservedSplit

NAMESPACE = "bench"


def cluster(objects: int, seconds: float, rate: float, ready: Any, changes: Any) -> None:
    """The child: a fake apiserver with ``objects`` InferenceServices and a person changing one
    of them ``rate`` times per second for ``seconds``."""
    from tests.fakes.kube_api import INFERENCE_SERVICES, KubeApiFake

    with KubeApiFake() as kube:
        kube.watches.bookmark_interval = 60.0  # as the real apiserver
        for i in range(objects):
            name = f"model-{i:04d}"
            kube.seed(INFERENCE_SERVICES, {
                "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"predictor": {"model": {"storageUri": f"s3://models/{name}/v1"}}},
            })  # fmt: skip
            kube.kserve.reconcile(NAMESPACE, name)
            kube.store.write(INFERENCE_SERVICES, NAMESPACE, name, lambda o, n=name: {
                **o, "spec": {"predictor": {"model": {"storageUri": f"s3://models/{n}/v2"},
                                            "canaryTrafficPercent": 10}}},
                status=False, manager="kubectl-edit")  # fmt: skip
            kube.kserve.reconcile(NAMESPACE, name)
        ready.put(kube.url)
        ready.get()  # the observer has synced
        start, count = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            name = f"model-{count % objects:04d}"
            percent = 20 + (count // objects) % 70  # a new split every time
            changed_at = time.time()
            kube.person_sets_canary_percent(NAMESPACE, name, percent)
            changes.put((name, percent, changed_at))
            count += 1
            time.sleep(max(0.0, start + count / rate - time.monotonic()))
        time.sleep(3)
        changes.put(None)


def scratch(admin_url: str, name: str) -> str:
    from alembic import command
    from sqlalchemy.engine import make_url

    from analyzer.db import alembic_config

    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    command.upgrade(alembic_config(url), "head")
    return url


class Lags:
    def __init__(self) -> None:
        self.committed: dict[tuple[str, int], float] = {}
        self.lock = threading.Lock()

    def __call__(self, seen: ObservedSplit, result: Recorded) -> None:
        if result.outcome is Outcome.RECORDED:
            with self.lock:
                self.committed.setdefault((seen.name, seen.canary_weight), time.time())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=1.0, help="traffic changes per second")
    args = parser.parse_args()
    url = scratch(args.url, "ca_bench_observer")
    engine = make_engine(url)
    context = multiprocessing.get_context("spawn")
    ready, changes = context.Queue(), context.Queue()
    child = context.Process(
        target=cluster, args=(args.objects, args.seconds, args.rate, ready, changes)
    )
    child.start()
    kube_url = ready.get(timeout=600)
    from kubernetes import client as k8s

    config = k8s.Configuration(host=kube_url)
    config.retries = False
    lags = Lags()
    observer = TrafficObserver(
        k8s.ApiClient(config), ObservedTrafficRecorder(engine, Ledger(engine)),
        kinds=["inferenceservices"], namespaces=[NAMESPACE], on_recorded=lags,
    )  # fmt: skip
    started = time.monotonic()
    observer.start()
    observer.wait_synced(timeout=600)
    synced = time.monotonic() - started
    ready.put("go")
    wall0, cpu0 = time.monotonic(), time.process_time()
    sent: list[tuple[str, int, float]] = []
    while (item := changes.get(timeout=args.seconds + 120)) is not None:
        sent.append(item)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    observer.stop()
    child.join(30)
    with lags.lock:
        found = [lags.committed.get((n, p)) for n, p, _ in sent]
    measured = [c - t for (_, _, t), c in zip(sent, found, strict=True) if c is not None]
    missing = sum(1 for c in found if c is None)
    with engine.connect() as conn:
        entries = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
    engine.dispose()
    load = os.getloadavg()
    print(f"objects {args.objects}, changes {len(sent)} over {wall:.0f} s, initial sync "
          f"{synced:.1f} s, ledger entries {entries}")  # fmt: skip
    print(f"lag change->committed entry: p50 {statistics.median(measured) * 1000:.0f} ms, "
          f"p99 {pct(measured, 0.99) * 1000:.0f} ms, max {max(measured) * 1000:.0f} ms, "
          f"missing {missing}")  # fmt: skip
    print(f"observer process CPU: {cpu:.1f} s over {wall:.0f} s wall = {100 * cpu / wall:.1f} % "
          f"of one core; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
