"""Where a fresh Argo look's CPU goes: ``AnalysisService`` in-process under cProfile.

Real: the Debian ``prometheus`` backfilled by ``promtool`` (two hours of 15 s scrapes, a baseline
and ``--sessions`` canaries), a scratch PostgreSQL database migrated by Alembic, the
``AnalysisService`` with its looks on threads (``ThreadLooks``) and the 5-metric bench profile
of ``bench/api_load.py``; cache off, so every call is a fresh look. After one warm-up look per
session, ``--rounds`` rounds call every session once with the clock 6 s later each round (as
AnalysisRuns at a 60 s interval compressed 10x; later looks are incremental). Prints the CPU
per look (``time.process_time``: all threads) and the profile's top functions by own time.

cProfile sees only the calling thread, and ``ThreadLooks`` runs the fetches and the judge on
its pools (their CPU shows as the caller's ``lock.acquire``). ``--inline`` runs the whole look
on the calling thread (one fetch after another), so the profile covers all of it.

    CANARY_ANALYZER_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/look_profile.py [--sessions 10] [--rounds 10] [--inline]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))

import promserver  # noqa: E402
from alembic import command  # noqa: E402
from api_load import PROFILE, percentile  # noqa: E402
from sqlalchemy import Engine, select  # noqa: E402

from analyzer.analyses.looks import (  # noqa: E402
    CallerRuns,
    LookInput,
    LookOutcome,
    ThreadLooks,
    _analyze,
)
from analyzer.analyses.service import AnalysisRequest, AnalysisService  # noqa: E402
from analyzer.analysis import run_analysis  # noqa: E402
from analyzer.db import alembic_config, make_engine  # noqa: E402
from analyzer.domain.model import ModelRef  # noqa: E402
from analyzer.ledger.store import Ledger  # noqa: E402
from analyzer.ledger.tables import ledger_entries  # noqa: E402
from analyzer.logging import configure_logging  # noqa: E402
from analyzer.metrics.prometheus import PrometheusSource  # noqa: E402
from analyzer.metrics.synthetic import RevisionBehaviour  # noqa: E402
from analyzer.profiles import parse_profile  # noqa: E402
from tests import pg  # noqa: E402


class InlineLooks:
    """A ``LookRunner`` that runs the look on the calling thread (profiling only)."""

    def __init__(self, source: PrometheusSource) -> None:
        self._source = source

    def run(self, look: LookInput, *, timeout: float | None = None) -> LookOutcome:
        return _analyze(run_analysis, self._source, look, CallerRuns())

    def warm_up(self) -> None:
        pass

    def close(self) -> None:
        pass


def print_entry_sizes(engine: Engine) -> None:
    """The stored payloads of the fresh looks: whole ones and compact ones (a repeated
    verdict written as the delta over the session's last whole look)."""
    t = ledger_entries.c
    with engine.connect() as conn:
        payloads = conn.execute(
            select(t.payload).where(t.event_type == "analysis_recorded")
        ).scalars()
        sizes: dict[bool, list[int]] = {True: [], False: []}
        for payload in payloads:
            sizes['"repeats":{' in payload].append(len(payload.encode()))
    for compact, found in sizes.items():
        if found:
            kind = "compact" if compact else "whole"
            print(f"{kind} looks: {len(found)}, payload median {statistics.median(found):.0f} B")


class Phases:
    """Where a fresh look's wall time goes: the service's steps, timed by wrapping them on
    this one service (the session row's lock, the fetch and judge, the compaction, the ledger
    entry with the row's update, the commit); "rest" is the look's wall time less theirs
    (the memo, BEGIN, the state's decoding, the answer)."""

    def __init__(self, service: AnalysisService, engine: Engine) -> None:
        self.current: dict[str, float] = {}
        self.looks: list[dict[str, float]] = []
        self._wrap(service, "_lock_session", "lock")
        self._wrap(service, "_judge", "fetch+judge")
        self._wrap(service._bases, "compact", "compaction")
        self._wrap(service._ledger, "append_with", "entry+row")
        self._wrap(engine.dialect, "do_commit", "commit")
        import analyzer.analysis as analysis

        self._wrap(analysis, "judge", "judge alone")

    def _wrap(self, owner: object, name: str, phase: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = (time.perf_counter() - started) * 1000
                self.current[phase] = self.current.get(phase, 0.0) + spent

        setattr(owner, name, timed)

    def look_done(self, wall_ms: float) -> None:
        parts = dict(self.current)
        own = sum(v for k, v in parts.items() if k != "judge alone")
        parts["rest"] = wall_ms - own
        parts["wall"] = wall_ms
        self.looks.append(parts)
        self.current.clear()

    def report(self) -> None:
        names = ["wall", "lock", "fetch+judge", "judge alone", "compaction", "entry+row"]
        names += ["commit", "rest"]
        print("phase         p50 ms   mean ms")
        for name in names:
            values = [look.get(name, 0.0) for look in self.looks]
            mean = statistics.fmean(values)
            print(f"{name:<12} {statistics.median(values):7.2f} {mean:9.2f}")


def prometheus_cpu(pid: int) -> float:
    """Prometheus' user+system CPU seconds so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--inline", action="store_true", help="the look on the calling thread")
    parser.add_argument(
        "--sequential", action="store_true",
        help="ThreadLooks with concurrent_fetches=False: the look's queries one after another",
    )  # fmt: skip
    parser.add_argument("--sort", default="tottime", help="pstats order: tottime, cumulative")
    parser.add_argument(
        "--phases", action="store_true",
        help="time each fresh look's parts by the wall clock (implies --no-profile)",
    )  # fmt: skip
    parser.add_argument(
        "--no-profile", action="store_true",
        help="measure the CPU per look without cProfile (its overhead is large on deep calls)",
    )  # fmt: skip
    args = parser.parse_args()
    args.no_profile = args.no_profile or args.phases
    configure_logging("warning")
    found = promserver.binaries()
    if found is None:
        sys.exit("needs the Debian prometheus package: apt-get install -y prometheus")
    base = RevisionBehaviour(weight=1.0)
    canaries = [f"fraud-{i + 2:05d}" for i in range(args.sessions)]
    end = promserver.aligned_end(15.0)
    scenario = promserver.Scenario(
        seed=3, origin=end - timedelta(hours=2), ticks=480, tick_seconds=15.0,
        request_rate=20.0, revisions={"fraud-00001": base, **dict.fromkeys(canaries, base)},
    )  # fmt: skip
    loaded = parse_profile(PROFILE)
    model = ModelRef(namespace=promserver.NAMESPACE, name=promserver.MODEL)
    with (
        tempfile.TemporaryDirectory() as tmp,
        pg.scratch_database(pg.maintenance_url(), durable=True) as db,
    ):
        work = Path(tmp)
        promserver.write_openmetrics(work / "data.om", scenario)
        promserver.backfill(found[1], work / "data.om", work / "data")
        prometheus = promserver.start(found[0], work / "data", work)
        url = db.render_as_string(hide_password=False)
        command.upgrade(alembic_config(url), "head")
        engine = make_engine(url)
        now = [end - timedelta(minutes=20)]
        source = PrometheusSource(base_url=prometheus.url)  # as `serve` builds it
        looks = (
            InlineLooks(source)
            if args.inline
            else ThreadLooks(source, concurrent_fetches=not args.sequential)
        )
        service = AnalysisService(
            engine, Ledger(engine, clock=lambda: now[0]), looks, clock=lambda: now[0],
            cache_seconds=0, lookback=timedelta(minutes=30),
        )  # fmt: skip
        try:
            requests = [
                AnalysisRequest(model=model, canary=c, baseline="fraud-00001",
                                profile_name="bench-5", profile=loaded, weight=50)
                for c in canaries
            ]  # fmt: skip
            for request in requests:  # each session's first look (whole window)
                # AnalysisRuns start at unrelated times: sessions of one baseline sharing a
                # window start would share its counter memory, and each read it whole again
                now[0] += timedelta(milliseconds=10)
                service.analyze(request, "argo")
            phases = Phases(service, engine) if args.phases else None
            profile = cProfile.Profile(time.process_time)
            cpu0, count = time.process_time(), 0
            prom0 = prometheus_cpu(prometheus.process.pid)
            if not args.no_profile:
                profile.enable()
            walls: list[float] = []
            for _ in range(args.rounds):
                now[0] += timedelta(seconds=6)
                for request in requests:
                    started = time.perf_counter()
                    service.analyze(request, "argo")
                    walls.append((time.perf_counter() - started) * 1000)
                    count += 1
                    if phases is not None:
                        phases.look_done(walls[-1])
            profile.disable()
            prom = (prometheus_cpu(prometheus.process.pid) - prom0) * 1000 / count
            print(f"CPU per fresh look: {(time.process_time() - cpu0) * 1000 / count:.1f} ms "
                  f"({count} looks; all threads); wall p50 {statistics.median(walls):.1f} ms, "
                  f"p99 {percentile(walls, 0.99):.1f} ms; Prometheus {prom:.1f} ms")  # fmt: skip
            print_entry_sizes(engine)
            if phases is not None:
                phases.report()
            if not args.no_profile:
                pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
        finally:
            service.close()
            looks.close()
            engine.dispose()
            prometheus.stop()


if __name__ == "__main__":
    main()
