"""``make_engine``'s check of pooled PostgreSQL connections (``check_connections_on_checkout``):
a connection the server closed is never handed out, whether it was returned a moment ago
(checked by its socket) or long ago (pinged, as ``pool_pre_ping`` does); one in steady use is
not pinged."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text

from analyzer.db import PING_AFTER_IDLE_SECONDS, check_connections_on_checkout, make_engine

pytestmark = pytest.mark.postgres


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def checked(pg_url: str) -> Iterator[tuple[Engine, Clock, list[int]]]:
    """An engine with one pooled connection, the check on a clock of the test's, and the
    pings it sent."""
    engine = create_engine(pg_url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    clock, pings = Clock(), []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(1)
        return bool(ping(dbapi_connection))

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    check_connections_on_checkout(engine, ping_after_idle=10.0, clock=clock)
    yield engine, clock, pings
    engine.dispose()


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pg_url: str, pid: int) -> None:
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def test_a_connection_in_steady_use_is_not_pinged(checked: tuple[Engine, Clock, list[int]]) -> None:
    engine, clock, pings = checked
    first = _backend(engine)
    for _ in range(20):
        clock.now += 1.0  # a transaction a second: never idle for 10 s
        assert _backend(engine) == first
    assert pings == []
    clock.now += 10.5  # idle longer than that: pinged once, still the same connection
    assert _backend(engine) == first
    assert pings == [1]


@pytest.mark.parametrize(
    ("idle", "pings_sent"),
    [(0.01, []), (60.0, [1])],  # returned a moment ago: told by its socket; long ago: pinged
)
def test_a_connection_the_server_closed_is_replaced_before_use(
    checked: tuple[Engine, Clock, list[int]], pg_url: str, idle: float, pings_sent: list[int]
) -> None:
    engine, clock, pings = checked
    first = _backend(engine)
    _terminate(pg_url, first)
    clock.now += idle
    assert _backend(engine) != first  # no error reached the caller
    assert pings == pings_sent


def test_make_engine_checks_postgresql_connections_this_way(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        assert engine.pool._pre_ping is False
        first = _backend(engine)
        _terminate(pg_url, first)
        assert _backend(engine) != first
    finally:
        engine.dispose()
    assert PING_AFTER_IDLE_SECONDS >= 1.0
    explicit = make_engine(pg_url, pool_pre_ping=True)  # a caller's own choice is kept
    try:
        assert explicit.pool._pre_ping is True
    finally:
        explicit.dispose()


def test_a_connection_whose_descriptor_is_past_1024_is_checked_too(
    checked: tuple[Engine, Clock, list[int]], pg_url: str
) -> None:
    """``select.select`` refuses descriptors past FD_SETSIZE; a busy replica has that many."""
    engine, clock, pings = checked
    engine.dispose()
    null = os.open(os.devnull, os.O_RDONLY)
    held = [null, *(os.dup(null) for _ in range(1100))]
    try:
        with engine.connect() as conn:
            assert conn.connection.driver_connection.fileno() > 1024  # type: ignore[union-attr]
        first = _backend(engine)
        _terminate(pg_url, first)
        clock.now += 0.01
        assert _backend(engine) != first
        assert pings == []
    finally:
        for fd in held:
            os.close(fd)
