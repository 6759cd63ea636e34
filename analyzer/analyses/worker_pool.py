"""A lean pool of spawned worker processes, one duplex pipe each, driven by the callers' threads.

Why not ``concurrent.futures.ProcessPoolExecutor``: each call through it wakes a queue feeder
thread and the executor's manager thread in the caller's process, and passes through a shared
call queue and result queue. Here the calling thread itself takes an idle worker, writes the
job on that worker's pipe and waits on the same pipe with the GIL released; no other thread
runs on that path. The hop alone (a look out, its answer back) measured 0.56 ms of CPU per
call through the executor and 0.36 ms here, 0.35 against 0.20 ms of it in the caller's
process (``bench/look_hop.py``; docs/benchmarks.md, "A leaner hop to the look workers").

The contract, which :class:`WorkerPool.call` keeps for every job:

* the job waits for an idle worker when all are busy, and that wait counts against its limit;
* a job that overruns its limit raises :class:`CallTimedOut`; its worker finishes it, and the
  late reply is read and dropped by a short-lived drain thread before the worker is idle again,
  so it can never be taken for the reply to another job (replies also carry the job's number);
* a worker that dies (end of file on its pipe) raises :class:`WorkerDied` for the job it held
  and is replaced by a new process; the other workers and their jobs are not touched;
* an exception raised by the job in the worker is raised again in the caller;
* :class:`WorkersUnavailable` when the pool is closed, or no worker can start.

Workers are *spawned*, not forked (the API process has threads whose held locks a fork would
copy); each runs ``init`` once, which returns the handler it applies to every job. A worker ends
when its pipe reaches end of file (the pool closed it, or the parent died) and, as a backstop
for a worker busy in a job when its parent dies, when its parent process is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from itertools import count
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Handler = Callable[[Any], Any]
# The job number of a worker's first message: ready, or why it could not start.
_READY = 0
_NUMBER = struct.Struct("!Q")
# After a worker that was replaced fails to start, the next attempt waits this long: a source
# that cannot be built (a bad URL in the settings) must not respawn at the rate of the looks.
_RESTART_BACKOFF_SECONDS = 10.0


class CallTimedOut(Exception):  # noqa: N818 -- a condition of the call, not a failure
    """The job was not answered within its limit (waiting for a worker included)."""


class WorkerDied(Exception):  # noqa: N818 -- the name says what happened
    """The worker holding the job ended before answering."""


class WorkersUnavailable(Exception):  # noqa: N818
    """The pool is closed, or none of its workers could start (the message says which)."""


class RemoteTraceback(Exception):  # noqa: N818 -- carries text, as concurrent.futures' does
    """The worker's traceback, attached as the cause of an exception raised by a job."""


class _State(Enum):
    STARTING = "starting"  # spawned; its ready message not read yet
    IDLE = "idle"
    BUSY = "busy"  # a caller holds it
    DRAINING = "draining"  # a caller gave up on its job; the late reply is still to be read
    FAILED = "failed"  # could not start; retried after a backoff


@dataclass(eq=False, slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    state: _State = _State.STARTING
    last_job: int = _READY
    error: str = ""
    retry_at: float = 0.0


def _frame(number: int, body: object) -> bytes:
    """A message: the job's number, then its pickled body (a reply's number can be checked
    without unpickling what it carries)."""
    return _NUMBER.pack(number) + pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL)


def _number(message: bytes) -> int:
    number: int = _NUMBER.unpack_from(message)[0]
    return number


def _body(message: bytes) -> Any:
    # Only this process and its own worker hold the pipe's two ends.
    return pickle.loads(memoryview(message)[_NUMBER.size :])  # noqa: S301


class WorkerPool:
    """``processes`` spawned workers, each applying the handler ``init()`` returns to its jobs.

    ``init`` must be picklable (it crosses to the spawned process). Nothing is started until
    :meth:`start` or the first :meth:`call`.
    """

    def __init__(self, init: Callable[[], Handler], *, processes: int, name: str) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._init = init
        self._processes = processes
        self._name = name
        self._context = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._workers: list[_Worker] = []
        self._closed = False
        self._numbers = count(_READY + 1)  # next() on it is atomic under the GIL

    # --- start-up -------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the workers if they are not running yet (returns before they are ready)."""
        with self._cond:
            if self._closed:
                raise WorkersUnavailable("the pool is closed")
            if not self._workers:
                self._workers = [self._spawn() for _ in range(self._processes)]

    def wait_ready(self, timeout: float) -> None:
        """Start the workers and wait until each is ready; :class:`WorkersUnavailable` naming
        the first that could not start, or when they are not all ready within ``timeout``."""
        self.start()
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(w.state is _State.STARTING for w in self._workers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkersUnavailable(f"not ready within {timeout:g} s")
                self._cond.wait(remaining)
            failed = [w.error for w in self._workers if w.state is _State.FAILED]
        if failed:
            raise WorkersUnavailable(failed[0])

    def _spawn(self) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        # The parent's pid comes from the parent: read in the worker after a slow start, it
        # could already be the reaper's.
        process = self._context.Process(
            target=_serve,
            args=(theirs, self._init, os.getpid()),
            name=f"{self._name}-worker",
            daemon=True,  # ended by multiprocessing's exit handler if close() is never called
        )
        process.start()
        theirs.close()  # the worker's end lives in the worker only: its death is our EOF
        worker = _Worker(process=process, conn=ours)
        self._drain_later(worker)  # reads the ready message
        return worker

    # --- calls ----------------------------------------------------------------------------

    def call(self, job: object, *, timeout: float) -> Any:
        """The handler's answer to ``job`` (see the module docstring for the failures)."""
        deadline = time.monotonic() + timeout
        number = next(self._numbers)
        message = _frame(number, job)  # before a worker is taken: a job that cannot be pickled
        worker = self._acquire(deadline)
        worker.last_job = number
        try:
            worker.conn.send_bytes(message)
            reply = self._reply(worker, number, deadline)
        except (EOFError, OSError) as exc:
            self._lost(worker)
            raise WorkerDied from exc
        except BaseException:  # interrupted (a signal's exception in the main thread)
            self._abandon(worker)  # its answer is still owed: drained, never handed on
            raise
        if reply is None:
            self._abandon(worker)
            raise CallTimedOut
        self._release(worker)  # the exchange is complete, whatever the reply turns out to be
        ok, value = _body(reply)
        if ok:
            return value
        error, remote = value
        raise error from RemoteTraceback(remote)

    @staticmethod
    def _reply(worker: _Worker, number: int, deadline: float) -> bytes | None:
        """The reply to job ``number``, or None when ``deadline`` passes first."""
        while True:
            remaining = deadline - time.monotonic()
            # poll() waits in select/poll with the GIL released
            if remaining <= 0 or not worker.conn.poll(remaining):
                return None
            reply = worker.conn.recv_bytes()
            if _number(reply) == number:  # anything else is not ours (cannot be: drained)
                return reply

    def _acquire(self, deadline: float) -> _Worker:
        while True:
            with self._cond:
                if not self._workers:
                    self.start()
                worker = self._take_idle(deadline)
            # An idle worker has nothing to say; something to read is its end of file (it
            # died while idle): replace it and take another, this job has not been sent.
            if not worker.conn.poll(0):
                return worker
            self._lost(worker)

    def _take_idle(self, deadline: float) -> _Worker:
        while True:
            if self._closed:
                raise WorkersUnavailable("the pool is closed")
            now = time.monotonic()
            for worker in self._workers:
                if worker.state is _State.IDLE:
                    worker.state = _State.BUSY
                    return worker
            self._restart_failed(now)
            if all(w.state is _State.FAILED for w in self._workers):
                raise WorkersUnavailable(self._workers[0].error)
            if now >= deadline:
                raise CallTimedOut
            self._cond.wait(deadline - now)

    def _release(self, worker: _Worker) -> None:
        with self._cond:
            if worker.state is _State.BUSY:
                worker.state = _State.IDLE
                self._cond.notify()

    def _abandon(self, worker: _Worker) -> None:
        with self._cond:
            if self._closed:
                return
            worker.state = _State.DRAINING
        self._drain_later(worker)

    def _drain_later(self, worker: _Worker) -> None:
        # A thread per start or overrun, never per call: it blocks on the pipe until the
        # expected message arrives (or the worker ends), so nothing polls on a timer.
        threading.Thread(
            target=self._drain, args=(worker,), name=f"{self._name}-drain", daemon=True
        ).start()

    def _drain(self, worker: _Worker) -> None:
        expected = worker.last_job
        try:
            while True:
                message = worker.conn.recv_bytes()
                if _number(message) == expected:
                    break
        except (EOFError, OSError):
            if expected == _READY:  # it ended before it was ready: a failed start, not a loss
                self._failed_start(worker)
            else:
                self._lost(worker)
            return
        ok, value = _body(message) if expected == _READY else (True, None)
        with self._cond:
            if not ok:
                worker.state, worker.error = _State.FAILED, str(value)
                worker.retry_at = time.monotonic() + _RESTART_BACKOFF_SECONDS
            elif worker.state in (_State.STARTING, _State.DRAINING):
                worker.state = _State.IDLE
            self._cond.notify_all()

    def _lost(self, worker: _Worker) -> None:
        """The worker ended (or must): reap it, and put a new one in its place unless closed."""
        _reap(worker)
        worker.conn.close()  # by the one thread that was using it
        with self._cond:
            if worker not in self._workers:
                return
            index = self._workers.index(worker)
            if self._closed:
                worker.state = _State.FAILED
                return
            log.warning("worker_pool.replace", pool=self._name, pid=worker.process.pid)
            self._workers[index] = self._spawn()
            self._cond.notify_all()

    def _failed_start(self, worker: _Worker) -> None:
        _reap(worker)
        worker.conn.close()
        with self._cond:
            worker.state = _State.FAILED
            worker.error = f"the worker exited (code {worker.process.exitcode}) before it was ready"
            worker.retry_at = time.monotonic() + _RESTART_BACKOFF_SECONDS
            self._cond.notify_all()

    def _restart_failed(self, now: float) -> None:
        for index, worker in enumerate(self._workers):
            if worker.state is _State.FAILED and now >= worker.retry_at:
                _reap(worker)
                worker.conn.close()
                self._workers[index] = self._spawn()

    # --- introspection and shutdown -------------------------------------------------------

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and benchmarks)."""
        with self._cond:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def close(self) -> None:
        """End every worker: an idle one at once (its pipe closed), one in a job by SIGTERM
        (its caller gets :class:`WorkerDied`), then wait for all; none is left behind."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
            self._cond.notify_all()
        for worker in workers:
            if worker.state in (_State.IDLE, _State.FAILED):  # no thread reads its pipe
                worker.conn.close()  # an idle worker's recv ends with EOF: a normal exit
            else:  # a thread waits on this pipe; its EOF wakes it
                worker.process.terminate()
        for worker in workers:
            _reap(worker, grace=5.0)


def _reap(worker: _Worker, *, grace: float = 1.0) -> None:
    process = worker.process
    if process.pid is None:
        return
    process.join(0 if not process.is_alive() else grace)
    if process.is_alive():
        process.kill()
        process.join(grace)


# --- the worker's side --------------------------------------------------------------------------


def _serve(conn: Connection, init: Callable[[], Handler], parent: int) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the API process stops us (our
    # pipe's end of file), so a worker does not die with a traceback in the middle of a look.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    try:
        handler = init()
    except BaseException as exc:  # reported to the parent, which decides
        traceback.print_exc()  # the "output above" the parent's error message points to
        conn.send_bytes(_frame(_READY, (False, f"{type(exc).__name__}: {exc}")))
        return
    conn.send_bytes(_frame(_READY, (True, None)))
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the pool closed our pipe, or the parent is gone
        number = _number(message)
        try:
            reply: tuple[bool, Any] = (True, handler(_body(message)))
        except Exception as exc:  # raised again in the caller
            reply = (False, (exc, traceback.format_exc()))
        try:
            data = _frame(number, reply)
        except Exception:  # an answer that cannot cross processes
            failure = RuntimeError(f"the worker's answer could not be pickled: {reply[1]!r}")
            data = _frame(number, (False, (failure, traceback.format_exc())))
        try:
            conn.send_bytes(data)
        except OSError:
            return


def _exit_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """End this worker when the API process is gone (killed, or stopped without closing the
    pool) even while it is busy in a job: an orphaned worker would hold its memory and
    inherited descriptors forever. (An idle worker already ends at its pipe's end of file.)"""
    while True:
        time.sleep(poll_seconds)
        if os.getppid() != parent:
            sys.stderr.flush()
            os._exit(0)
