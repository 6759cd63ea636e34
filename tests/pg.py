"""PostgreSQL for tests: one scratch database per test that needs a clean one.

``CANARY_ANALYZER_TEST_DATABASE_URL`` names a maintenance database on the server (``.ci/run``
creates a scratch one per run). The schema is built once per session by Alembic into a template
database; each test then gets ``CREATE DATABASE … TEMPLATE`` (a file copy, ~50 ms), so tests can
commit for real, run several processes, and never see each other's rows.

Where the server comes from (:func:`choose_server`): ``CANARY_ANALYZER_TEST_DATABASE_URL`` when
set; else a throwaway PostgreSQL 15 container started with testcontainers when a Docker engine
answers (``DOCKER_HOST``, or ``/var/run/docker.sock``), stopped at the end of the session; else
the local server at ``DEFAULT_URL``. In CI (``CI`` set) a missing server fails loudly; locally
the tests are skipped with the reason.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal
from urllib.parse import urlsplit

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DOCKER_SOCKET = "/var/run/docker.sock"
POSTGRES_IMAGE = "postgres:15-alpine"  # the version production and CI run


class PostgresUnavailableError(RuntimeError):
    pass


def maintenance_url() -> URL:
    return make_url(os.environ.get("CANARY_ANALYZER_TEST_DATABASE_URL", DEFAULT_URL))


def docker_reachable(environ: Mapping[str, str] | None = None, *, timeout: float = 2.0) -> bool:
    """True when a Docker engine answers its ``/_ping`` (at ``DOCKER_HOST`` or the socket)."""
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", f"unix://{DOCKER_SOCKET}")
    parts = urlsplit(host)
    try:
        if parts.scheme == "unix":
            if not os.path.exists(parts.path):
                return False
            transport = httpx.HTTPTransport(uds=parts.path)
            with httpx.Client(transport=transport, timeout=timeout) as client:
                answer = client.get("http://docker/_ping")
        elif parts.scheme in ("tcp", "http"):
            answer = httpx.get(f"http://{parts.netloc}/_ping", timeout=timeout)
        else:
            return False  # ssh:// and npipe:// engines: not probed, use the env URL instead
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.text.strip() == "OK"


ServerSource = Literal["env", "docker", "local"]


def choose_server(environ: Mapping[str, str], *, docker: bool) -> ServerSource:
    """Which PostgreSQL the session uses: the configured one, a container, or the local one."""
    if environ.get("CANARY_ANALYZER_TEST_DATABASE_URL"):
        return "env"
    return "docker" if docker else "local"


@contextmanager
def container_server() -> Iterator[URL]:
    """A PostgreSQL container for this session (testcontainers), its maintenance URL."""
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(POSTGRES_IMAGE, driver="psycopg") as container:
        yield make_url(container.get_connection_url())


def check_reachable(url: URL) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except OperationalError as exc:
        raise PostgresUnavailableError(
            f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)}: {exc.orig}"
        ) from exc
    finally:
        engine.dispose()


def _admin(url: URL, *statements: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def create_database(
    url: URL, name: str, template: str | None = None, *, durable: bool = False
) -> URL:
    """``durable``: commits wait for the WAL flush, as the server's default and production
    have it (benchmarks); otherwise they do not (tests)."""
    suffix = f" TEMPLATE {template}" if template else ""
    statements = [f'CREATE DATABASE "{name}"{suffix}']
    if not durable:
        # A test's commits need not wait for the WAL flush: no test crashes the server, and
        # what the tests inject (a dropped connection before COMMIT, a killed client) is
        # unchanged. On a loaded machine the flush waits were most of the commit-heavy tests'
        # time. A benchmark must not do this: it would hide a commit's real latency.
        statements.append(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    _admin(url, *statements)
    return url.set(database=name)


def drop_database(url: URL, name: str) -> None:
    _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BackgroundDropper:
    """Drops scratch databases on a thread of its own, one at a time.

    PostgreSQL 15's ``DROP DATABASE`` waits for a forced checkpoint (0.3–1 s here): done inline
    it was the largest part of most tests' teardown. A dropped database is one no test uses, so
    the next test need not wait for it; :meth:`drain` (end of session, and at exit) waits for
    every drop and reports any that failed.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[URL, str]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failures: list[str] = []

    def submit(self, url: URL, name: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pg-dropper", daemon=True)
                self._thread.start()
                atexit.register(self.drain)
        self._queue.put((url, name))

    def drain(self) -> list[str]:
        """Wait until every submitted drop has run; returns the failures so far."""
        self._queue.join()
        return list(self.failures)

    def _run(self) -> None:
        while True:
            url, name = self._queue.get()
            try:
                drop_database(url, name)
            except Exception as exc:  # reported by drain(), never lost
                self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()


dropper = BackgroundDropper()


class TemplateCopies:
    """Keeps ``ahead`` copies of a template database made in advance, on a thread of its own.

    ``CREATE DATABASE … TEMPLATE`` costs 0.1–0.5 s, paid by every test that wants a clean
    database; made while the previous test runs, the next test takes one ready. A copy that
    could not be made is raised by :meth:`take` (never a silent fallback).
    """

    def __init__(self, url: URL, template: str, *, ahead: int = 2) -> None:
        self._url, self._template = url, template
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._room = threading.Semaphore(ahead)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-copier", daemon=True)
        self._thread.start()

    def take(self) -> URL:
        made = self._ready.get(timeout=120)
        self._room.release()
        if isinstance(made, BaseException):
            raise made
        return self._url.set(database=made)

    def stop(self) -> None:
        """Stop making copies; the unused ones are dropped."""
        self._stopped.set()
        self._room.release()  # wake the thread if it waits for room
        self._thread.join(timeout=120)
        while not self._ready.empty():
            made = self._ready.get_nowait()
            if isinstance(made, str):
                dropper.submit(self._url, made)

    def _run(self) -> None:
        while True:
            self._room.acquire()
            if self._stopped.is_set():
                return
            name = f"ca_test_{uuid.uuid4().hex[:12]}"
            try:
                create_database(self._url, name, self._template)
            except Exception as exc:  # handed to the test that takes it
                self._ready.put(exc)
            else:
                self._ready.put(name)


_copies: dict[tuple[str, str], TemplateCopies] = {}
_copies_lock = threading.Lock()


def template_copies(url: URL, template: str) -> TemplateCopies:
    key = (url.render_as_string(hide_password=False), template)
    with _copies_lock:
        if key not in _copies:
            _copies[key] = TemplateCopies(url, template)
        return _copies[key]


def stop_template_copies(template: str) -> None:
    """Before the template is dropped: stop copying it (the unused copies are dropped)."""
    with _copies_lock:
        stopping = [key for key in _copies if key[1] == template]
        copiers = [_copies.pop(key) for key in stopping]
    for copier in copiers:
        copier.stop()


@contextmanager
def scratch_database(
    url: URL,
    template: str | None = None,
    *,
    drop_in_background: bool = True,
    durable: bool = False,
) -> Iterator[URL]:
    """A database for one test or benchmark, dropped afterwards. Benchmarks pass ``durable``
    (commits wait for the WAL flush, as in production; see :func:`create_database`)."""
    if template is not None and not durable:
        created = template_copies(url, template).take()
        name = str(created.database)
    else:
        name = f"ca_test_{uuid.uuid4().hex[:12]}"
        created = create_database(url, name, template, durable=durable)
    try:
        yield created
    finally:
        if drop_in_background:
            dropper.submit(url, name)
        else:
            drop_database(url, name)
