"""The worker hop's hard cases (``ProcessLooks`` over ``WorkerPool``), made deterministic by a
source whose ``gated-*`` canaries block in the worker until the test opens their gate.

Real spawned processes. Each gated look first writes its worker's pid to a file, so the test
knows which process holds it (to kill it, or to know it has arrived).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from analyzer.analyses.looks import LookOutcome, LookOverran, ProcessLooks, ThreadLooks
from analyzer.domain.observation import Observation
from analyzer.domain.verdict import Verdict
from analyzer.metrics.base import MetricQuery
from tests.integration.analyses.test_looks import ScriptedSource, look

ROOT = Path(__file__).resolve().parents[3]


class GatedSource(ScriptedSource):
    """Canary ``gated-<x>`` behaves as ``same`` once the file ``open-<x>`` exists, not before.

    A file, not a ``multiprocessing.Event``: a worker killed while waiting on an event's
    condition leaves it unable to notify the other waiters.
    """

    def __init__(self, directory: str) -> None:
        super().__init__()
        self._directory = Path(directory)

    def observe(self, spec: Any, query: MetricQuery, *, canary: str, **kw: Any) -> Observation:
        if canary.startswith("gated-"):
            (self._directory / canary).write_text(str(os.getpid()))
            gate = self._directory / f"open-{canary.removeprefix('gated-')}"
            while not gate.exists():
                time.sleep(0.005)
            canary = "same"
        return super().observe(spec, query, canary=canary, **kw)


class Gates:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def open(self, name: str) -> None:
        (self._directory / f"open-{name}").touch()


@pytest.fixture
def gates(tmp_path: Path) -> Gates:
    return Gates(tmp_path)


@pytest.fixture
def gated(tmp_path: Path) -> partial[GatedSource]:
    return partial(GatedSource, str(tmp_path))


def holder(directory: Path, canary: str, seconds: float = 30.0) -> int:
    """The pid of the worker that has started the gated look ``canary``."""
    deadline = time.monotonic() + seconds
    while not (directory / canary).exists():
        assert time.monotonic() < deadline, f"{canary} never reached a worker"
        time.sleep(0.01)
    while not (text := (directory / canary).read_text()):  # written, not yet flushed
        time.sleep(0.01)
    return int(text)


def in_thread(looks: ProcessLooks, canary: str) -> tuple[threading.Thread, list[LookOutcome]]:
    answers: list[LookOutcome] = []
    thread = threading.Thread(target=lambda: answers.append(looks.run(look(canary, 20))))
    thread.start()
    return thread, answers


def in_threads(canary: str, minutes: int) -> LookOutcome:
    threads = ThreadLooks(ScriptedSource())
    try:
        return threads.run(look(canary, minutes))
    finally:
        threads.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def exited(child: int) -> bool:
    """Whether this process's child has ended, every thread of it: its leader shows as a
    zombie while other threads still exit, and they still hold its end of the pipe."""
    return os.waitid(os.P_PID, child, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def test_a_late_answer_is_dropped_never_given_to_the_next_look(
    gates: Gates, gated: partial[GatedSource]
) -> None:
    looks = ProcessLooks(gated, processes=1, timeout=20.0)
    try:
        with pytest.raises(LookOverran):
            looks.run(look("gated-a", 20), timeout=0.3)
        gates.open("a")  # the one worker now answers the abandoned look (an A/A "same" look)
        result, state = looks.run(look("bad", 40))
        expected, expected_state = in_threads("bad", 40)
        assert result.verdict is Verdict.FAIL
        assert result == expected
        assert state.to_json() == expected_state.to_json()
    finally:
        looks.close()


def test_a_look_waits_for_a_busy_worker_and_the_wait_counts_against_its_limit(
    gates: Gates, gated: partial[GatedSource], tmp_path: Path
) -> None:
    looks = ProcessLooks(gated, processes=1, timeout=20.0)
    try:
        thread, answers = in_thread(looks, "gated-a")
        holder(tmp_path, "gated-a")  # the only worker is busy with it
        started = time.monotonic()
        with pytest.raises(LookOverran):
            looks.run(look("bad", 40), timeout=0.4)
        assert 0.35 < time.monotonic() - started < 1.5
        gates.open("a")
        thread.join(20)
        # the busy look got its own answer, and the next look its own
        assert answers == [in_threads("same", 20)]
        assert looks.run(look("bad", 40)) == in_threads("bad", 40)
    finally:
        looks.close()


def test_a_worker_killed_mid_look_fails_that_look_only_and_is_replaced(
    gates: Gates, gated: partial[GatedSource], tmp_path: Path
) -> None:
    looks = ProcessLooks(gated, processes=2, timeout=20.0)
    try:
        killed_thread, killed = in_thread(looks, "gated-a")
        victim = holder(tmp_path, "gated-a")
        other_thread, other = in_thread(looks, "gated-b")
        survivor = holder(tmp_path, "gated-b")
        assert victim != survivor
        os.kill(victim, signal.SIGKILL)
        killed_thread.join(20)
        [(result, state)] = killed
        assert result.verdict is Verdict.ERROR
        assert "died" in result.reason
        assert state == look("gated-a", 20).state  # nothing counted
        assert other_thread.is_alive()  # the other worker's look is still running, untouched
        gates.open("b")
        other_thread.join(20)
        assert other == [in_threads("same", 20)]
        assert looks.run(look("bad", 40)) == in_threads("bad", 40)
        # the killed worker was replaced; the other one is the same process
        pids = looks.worker_pids()
        assert len(pids) == 2
        assert survivor in pids
        assert victim not in pids
        assert all(alive(pid) for pid in pids)
    finally:
        gates.open("a")
        gates.open("b")
        looks.close()


def spawned_children() -> list[int]:
    """This process's children that are multiprocessing workers (not its resource tracker)."""
    children: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return [
        pid
        for pid in children
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes() and alive(pid)
    ]


def test_close_ends_every_worker_even_one_in_a_look(
    gated: partial[GatedSource], tmp_path: Path
) -> None:
    before = set(spawned_children())
    looks = ProcessLooks(gated, processes=2, timeout=20.0)
    thread, answers = in_thread(looks, "gated-a")  # never opened: only close() ends it
    holder(tmp_path, "gated-a")
    pids = looks.worker_pids()
    assert set(pids) <= set(spawned_children())
    started = time.monotonic()
    looks.close()
    assert time.monotonic() - started < 5.0
    thread.join(10)
    [(result, _)] = answers  # the look in flight answered error, as a dead worker's would
    assert result.verdict is Verdict.ERROR
    assert not any(alive(pid) for pid in pids)
    assert not Path(f"/proc/{pids[0]}").exists()  # reaped, not left as a zombie
    assert set(spawned_children()) <= before


ORPHAN_SCRIPT = """
import json, os, signal, sys, threading, time
from functools import partial
from pathlib import Path
from tests.integration.analyses.test_looks import look
from tests.integration.analyses.test_look_workers import GatedSource, holder
from analyzer.analyses.looks import ProcessLooks
directory = sys.argv[1]
looks = ProcessLooks(partial(GatedSource, directory), processes=2)
threading.Thread(target=looks.run, args=(look("gated-a", 20),), daemon=True).start()
holder(Path(directory), "gated-a")  # one worker busy in a look that never ends, one idle
print(json.dumps(sorted(looks.worker_pids())), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no atexit: as the OOM killer would
"""


def test_workers_busy_or_idle_exit_when_the_api_process_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "pids.json"  # a file, not a pipe: a leaked worker would hold a pipe open
    with out.open("w") as sink:
        subprocess.run(
            [sys.executable, "-c", ORPHAN_SCRIPT, str(tmp_path)],
            cwd=ROOT,
            stdout=sink,
            timeout=60,
            check=False,
        )
    pids = json.loads(next(x for x in out.read_text().splitlines() if x.startswith("[")))
    assert len(pids) == 2
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if alive(pid)] == []


def test_ctrl_c_in_the_terminal_leaves_the_workers_to_the_api_process() -> None:
    looks = ProcessLooks(ScriptedSource, processes=1, timeout=20.0)
    try:
        [pid] = looks.worker_pids()
        os.kill(pid, signal.SIGINT)  # what a terminal's Ctrl-C sends the whole process group
        time.sleep(0.3)
        assert looks.run(look("bad", 40)) == in_threads("bad", 40)
        assert looks.worker_pids() == [pid]
        assert alive(pid)
    finally:
        looks.close()


class FragileSource(ScriptedSource):
    """Cannot be built while the file ``broken`` exists in its directory."""

    def __init__(self, directory: str) -> None:
        if (Path(directory) / "broken").exists():
            raise RuntimeError("the source is broken")
        super().__init__()


def test_a_replacement_that_cannot_start_fails_looks_at_once_and_is_retried_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("analyzer.analyses.worker_pool._RESTART_BACKOFF_SECONDS", 1.0)
    looks = ProcessLooks(partial(FragileSource, str(tmp_path)), processes=1, timeout=20.0)
    try:
        [first] = looks.worker_pids()
        (tmp_path / "broken").touch()
        os.kill(first, signal.SIGKILL)
        while not exited(first):  # died while idle: found by the next look, before it is sent
            time.sleep(0.01)
        started = time.monotonic()
        result, state = looks.run(look("bad", 40))  # its replacement cannot build the source
        assert result.verdict is Verdict.ERROR
        assert "the source is broken" in result.reason
        assert state == look("bad", 40).state
        assert time.monotonic() - started < 15  # the replacement's start, not the 20 s limit
        (tmp_path / "broken").unlink()
        time.sleep(1.1)  # past the backoff: the next look starts a worker again, and waits
        assert looks.run(look("bad", 40)) == in_threads("bad", 40)
        assert first not in looks.worker_pids()
    finally:
        looks.close()
