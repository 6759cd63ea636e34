"""Looks in worker processes (``ProcessLooks``) against looks in threads (``ThreadLooks``).

Real spawned processes; the metric source is the synthetic one (built in each worker by a
picklable factory), wrapped so a canary name can make a worker die or overrun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analyzer.analyses.looks import CallerRuns, LookInput, ProcessLooks, ThreadLooks
from analyzer.config import Settings
from analyzer.domain.errors import ConfigurationError, InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.observation import Observation
from analyzer.domain.verdict import Verdict
from analyzer.judge import JudgeState
from analyzer.metrics.base import MetricQuery, TimeWindow
from analyzer.metrics.synthetic import RevisionBehaviour, SyntheticSource
from analyzer.profiles import parse_profile
from analyzer.wiring import build_looks

ROOT = Path(__file__).resolve().parents[3]
ORIGIN = datetime(2026, 11, 27, tzinfo=UTC)
MODEL = ModelRef(namespace="models", name="fraud")
LOADED = parse_profile(
    "name: t\nmetrics:\n  - use: knative/latency\n  - use: knative/errors\n"
    "  - use: business/decisions\n"
)


class ScriptedSource:
    """The synthetic world, except that canary ``die`` kills the worker and ``slow`` overruns."""

    def __init__(self) -> None:
        behaviour = RevisionBehaviour(weight=0.5)
        self._inner = SyntheticSource(
            seed=11,
            origin=ORIGIN,
            request_rate=40.0,
            revisions={
                "base": behaviour,
                "same": behaviour,
                "bad": RevisionBehaviour(weight=0.5, error_rate=0.03),
            },
        )

    def observe(self, spec: Any, query: MetricQuery, *, canary: str, **kw: Any) -> Observation:
        if canary == "die":
            os._exit(3)
        if canary == "slow":
            time.sleep(1.5)
        return self._inner.observe(spec, query, canary=canary, **kw)


def look(canary: str, minutes: int, state: JudgeState | None = None) -> LookInput:
    return LookInput(
        profile=LOADED.profile,
        queries=LOADED.queries,
        model=MODEL,
        baseline="base",
        canary=canary,
        window=TimeWindow(start=ORIGIN, end=ORIGIN + timedelta(minutes=minutes)),
        state=state or JudgeState(),
    )


@pytest.fixture(scope="module")
def workers() -> Iterator[ProcessLooks]:
    looks = ProcessLooks(ScriptedSource, processes=2, timeout=20.0)
    yield looks
    looks.close()


@pytest.mark.parametrize("canary", ["same", "bad"])
def test_a_look_in_a_worker_is_the_look_in_a_thread(workers: ProcessLooks, canary: str) -> None:
    threads = ThreadLooks(ScriptedSource())
    try:
        state_p = state_t = JudgeState()
        for minutes in (20, 40, 60):  # evidence accumulates across looks in both
            result_p, state_p = workers.run(look(canary, minutes, state_p))
            result_t, state_t = threads.run(look(canary, minutes, state_t))
            assert result_p == result_t
            assert state_p.to_json() == state_t.to_json()
        if canary == "bad":
            assert result_p.verdict is Verdict.FAIL
        else:  # an A/A canary: never failed, never an error (evidence may still be gathering)
            assert result_p.verdict in {Verdict.PASS, Verdict.INCONCLUSIVE}
    finally:
        threads.close()


def test_bad_identifiers_raise_in_the_caller_before_any_work(workers: ProcessLooks) -> None:
    with pytest.raises(InvalidInputError, match="canary"):
        workers.run(look('x"} or vector(1)', 20))


def test_a_dead_worker_answers_error_keeps_the_state_and_the_pool_recovers(
    workers: ProcessLooks,
) -> None:
    _, state = workers.run(look("same", 20))
    result, after = workers.run(look("die", 40, state))
    assert result.verdict is Verdict.ERROR
    assert "died" in result.reason
    assert after is state  # nothing of the failed look counted
    failed, failed_state = workers.run(look("bad", 40))  # a new pool, same answers as before
    assert failed.verdict is Verdict.FAIL
    # An analysis that failed stays failed when its next look dies: a fail is final.
    kept, after = workers.run(look("die", 60, failed_state))
    assert kept.verdict is Verdict.FAIL
    assert after is failed_state
    errors = next(m for m in kept.metrics if m.name == "errors")
    assert "a fail is final" in errors.reason
    assert "died" in errors.reason


def test_an_overrunning_look_answers_error_within_the_timeout() -> None:
    looks = ProcessLooks(ScriptedSource, processes=1, timeout=0.3)
    try:
        started = time.monotonic()
        result, state = looks.run(look("slow", 20))
        assert time.monotonic() - started < 1.2
        assert result.verdict is Verdict.ERROR
        assert "longer than 0.3 s" in result.reason
        assert state == JudgeState()
    finally:
        looks.close()


def broken_factory() -> ScriptedSource:
    raise RuntimeError("no source for you")


def test_workers_that_cannot_build_their_source_fail_at_start_up_saying_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match="look_processes=0"):
        ProcessLooks(broken_factory, processes=1)


ORPHAN_SCRIPT = """
import json, os, signal, sys
from tests.integration.analyses.test_looks import ScriptedSource
from analyzer.analyses.looks import ProcessLooks
looks = ProcessLooks(ScriptedSource, processes=2)
print(json.dumps(sorted(looks.worker_pids())), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no atexit: as the OOM killer would
"""


def test_unwarmed_workers_start_at_warm_up_and_a_look_before_it_waits_for_them(
    capfd: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    looks = ProcessLooks(ScriptedSource, processes=2, timeout=20.0, warm=False)
    try:
        # returns before any worker has done its imports (that takes about a second each)
        assert time.monotonic() - started < 0.5
        assert "workers_ready" not in capfd.readouterr().out
        result, _ = looks.run(look("bad", 40))  # before warm_up: waits, then judges as usual
        assert result.verdict is Verdict.FAIL
        looks.warm_up()
        assert "analysis.look.workers_ready" in capfd.readouterr().out
        assert len(looks.worker_pids()) == 2
    finally:
        looks.close()


def test_unwarmed_workers_that_cannot_start_fail_at_warm_up_saying_what_to_do() -> None:
    looks = ProcessLooks(broken_factory, processes=1, warm=False)
    with pytest.raises(ConfigurationError, match="look_processes=0"):
        looks.warm_up()


def test_workers_exit_when_the_api_process_is_killed(tmp_path: Path) -> None:
    # Output to a file, not a pipe: the workers inherit stdout, and a pipe would stay open
    # for as long as a leaked worker lives.
    out = tmp_path / "pids.json"
    with out.open("w") as sink:
        subprocess.run(
            [sys.executable, "-c", ORPHAN_SCRIPT], cwd=ROOT, stdout=sink, timeout=60, check=False
        )
    # the pids' line, not the workers' log lines
    pids = json.loads(next(x for x in out.read_text().splitlines() if x.startswith("[")))
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    assert alive == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_wiring_runs_prometheus_looks_in_processes_and_synthetic_ones_in_threads(
    capfd: pytest.CaptureFixture[str],
) -> None:
    source = ScriptedSource()
    synthetic = build_looks(Settings(metric_source="synthetic"), source)  # type: ignore[arg-type]
    assert isinstance(synthetic, ThreadLooks)
    off = Settings(metric_source="prometheus", prometheus={"look_processes": 0})  # type: ignore[arg-type]
    assert isinstance(build_looks(off, source), ThreadLooks)  # type: ignore[arg-type]
    on = Settings(
        metric_source="prometheus",
        log_level="debug",
        log_format="json",
        prometheus={"look_processes": 1, "url": "http://127.0.0.1:9"},  # type: ignore[arg-type]
    )
    looks = build_looks(on, source)  # type: ignore[arg-type]
    try:
        assert isinstance(looks, ProcessLooks)
        # the worker built its own Prometheus source from the settings: nothing listens on
        # port 9, so the look is judged on source errors, never passed
        result, _ = looks.run(look("same", 20))
        assert result.verdict is Verdict.ERROR
    finally:
        looks.close()
    # the worker logged as the service does (JSON lines), not with structlog's bare defaults
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    worker_lines = [line for line in lines if "prometheus." in line]
    assert worker_lines, lines
    for line in worker_lines:
        entry = json.loads(line)  # structlog's bare default would print "... [debug ] ..."
        assert {"event", "level", "timestamp"} <= entry.keys(), line


class ThreadRecordingSource(ScriptedSource):
    """Records the thread each metric was fetched on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def observe(self, spec: Any, query: MetricQuery, *, canary: str, **kw: Any) -> Observation:
        self.threads.append(threading.get_ident())
        return super().observe(spec, query, canary=canary, **kw)


@pytest.mark.parametrize("canary", ["same", "bad"])
def test_sequential_fetches_give_the_concurrent_look_on_one_thread(canary: str) -> None:
    recorded = ThreadRecordingSource()
    sequential = ThreadLooks(recorded, concurrent_fetches=False)
    concurrent = ThreadLooks(ScriptedSource())
    workers = ProcessLooks(ScriptedSource, processes=1, timeout=20.0, concurrent_fetches=False)
    try:
        state_s = state_c = state_w = JudgeState()
        for minutes in (20, 40):
            result_s, state_s = sequential.run(look(canary, minutes, state_s), timeout=10.0)
            result_c, state_c = concurrent.run(look(canary, minutes, state_c))
            result_w, state_w = workers.run(look(canary, minutes, state_w))
            assert result_s == result_c == result_w
            assert state_s.to_json() == state_c.to_json() == state_w.to_json()
        # every fetch of a look on the look's own thread, none on a pool's
        assert len(recorded.threads) == 2 * len(LOADED.profile.metrics)
        first_look = recorded.threads[: len(LOADED.profile.metrics)]
        assert len(set(first_look)) == 1
    finally:
        sequential.close()
        concurrent.close()
        workers.close()


def test_a_sequential_fetch_that_raises_reaches_the_caller_as_the_pool_would() -> None:
    def boom() -> int:
        raise ValueError("fetch failed")

    future = CallerRuns().submit(boom)
    assert future.done()
    with pytest.raises(ValueError, match="fetch failed"):
        future.result()
    assert CallerRuns().submit(lambda x: x + 1, 41).result() == 42
