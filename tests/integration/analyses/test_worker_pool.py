"""``WorkerPool`` on its own: what crosses the pipe besides looks (errors, unpicklable jobs)."""

from __future__ import annotations

import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from analyzer.analyses.worker_pool import RemoteTraceback, WorkerPool


def answer(job: Any) -> Any:
    if job == "sleep":
        time.sleep(1.0)
        return "slept"
    if job == "raise":
        raise ValueError("the job failed in the worker")
    if job == "unpicklable answer":
        return threading.Lock()
    return ("done", job)


def answering() -> Callable[[Any], Any]:
    return answer


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(answering, processes=1, name="test")
    workers.wait_ready(timeout=60)
    yield workers
    workers.close()


def test_a_job_is_answered_by_the_worker(pool: WorkerPool) -> None:
    assert pool.call({"n": 1}, timeout=10) == ("done", {"n": 1})


def test_an_exception_in_the_worker_is_raised_in_the_caller_with_its_traceback(
    pool: WorkerPool,
) -> None:
    with pytest.raises(ValueError, match="failed in the worker") as raised:
        pool.call("raise", timeout=10)
    assert isinstance(raised.value.__cause__, RemoteTraceback)
    assert "def answer" not in str(raised.value.__cause__)  # text, not source
    assert "answer" in str(raised.value.__cause__)  # the worker's frames
    assert pool.call(2, timeout=10) == ("done", 2)  # the one worker is free again


def test_a_job_that_cannot_be_pickled_fails_before_taking_a_worker(pool: WorkerPool) -> None:
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        pool.call(threading.Lock(), timeout=10)
    assert pool.call(3, timeout=10) == ("done", 3)


def test_an_answer_that_cannot_be_pickled_is_an_error_in_the_caller(pool: WorkerPool) -> None:
    with pytest.raises(RuntimeError, match="could not be pickled"):
        pool.call("unpicklable answer", timeout=10)
    assert pool.call(4, timeout=10) == ("done", 4)


class Interrupted(Exception):  # noqa: N818 -- what a signal handler raised
    pass


def interrupt(signum: int, frame: object) -> None:
    raise Interrupted


def test_a_call_interrupted_by_a_signal_leaves_its_late_answer_to_be_dropped(
    pool: WorkerPool,
) -> None:
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)  # while the one worker sleeps in "sleep"
        with pytest.raises(Interrupted):
            pool.call("sleep", timeout=10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # the next job waits for the worker to finish "sleep", and gets its own answer
    assert pool.call(5, timeout=10) == ("done", 5)
