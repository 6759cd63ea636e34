"""ChainWatch: incremental verification of the ledger in the serving process (PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from analyzer.api.metrics import ApiMetrics
from analyzer.ledger.store import Ledger
from analyzer.ledger.watch import ChainStatus, ChainWatch
from tests.integration.ledger.helpers import T0, traffic
from tests.integration.ledger.test_ledger_postgres import _disable_guard, _seed

pytestmark = pytest.mark.postgres


def _append(ledger: Ledger, n: int) -> None:
    for i in range(n):
        ledger.record(traffic({"credit-00007": 100 - i, "credit-00008": i}))


def test_new_entries_are_verified_check_after_check(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)  # 6 entries
    seen: list[ChainStatus] = []
    watch = ChainWatch(ledger, clock=lambda: T0, report=seen.append)
    assert watch.check().verified_seq == 6
    _append(ledger, 3)
    status = watch.check()
    assert (status.intact, status.verified_seq) == (True, 9)
    assert [s.verified_seq for s in seen] == [6, 9]


def test_an_entry_altered_after_it_was_verified_is_caught_at_the_next_link(
    pg_engine: Engine,
) -> None:
    ledger = _seed(pg_engine)
    watch = ChainWatch(ledger, clock=lambda: T0)
    watch.check()
    # seq 6 (already verified) rewritten with its hash recomputed would need the next entry's
    # prev_hash to follow; here its payload changes and the next append links to the stored hash
    _disable_guard(pg_engine, "UPDATE ledger_entries SET actor = 'mallory' WHERE seq = 5")
    _append(ledger, 1)
    assert watch.check().intact  # the watch checks what is new, not seq 5 again ...
    broken = Ledger(pg_engine).verify()  # ... the full verification (daily CronJob) does
    assert broken.first_bad_seq == 5


def test_a_broken_new_entry_is_reported_and_stays_reported(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    seen: list[ChainStatus] = []
    watch = ChainWatch(ledger, clock=lambda: T0, report=seen.append)
    watch.check()
    _append(ledger, 2)  # seq 7, 8
    _disable_guard(pg_engine, "UPDATE ledger_entries SET actor = 'mallory' WHERE seq = 8")
    status = watch.check()
    assert not status.intact
    assert status.first_bad_seq == 8
    assert status.verified_seq == 6
    assert "columns do not match" in (status.problem or "")
    assert watch.check() == status  # sticky: a ledger is investigated, not repaired
    assert [s.intact for s in seen] == [True, False, False]


def test_at_start_it_checks_the_last_history_entries(pg_engine: Engine) -> None:
    ledger = _seed(pg_engine)
    _disable_guard(pg_engine, "UPDATE ledger_entries SET actor = 'mallory' WHERE seq = 2")
    assert ChainWatch(ledger, history=3).check().intact  # starts at seq 3: seq 2 is the CronJob's
    status = ChainWatch(ledger, history=5).check()  # starts at seq 1: links 2..6 checked
    assert (status.intact, status.first_bad_seq) == (False, 2)
    assert not ChainWatch(ledger, history=100).check().intact  # from genesis


def test_the_status_is_exported_as_gauges() -> None:
    metrics = ApiMetrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    assert value("canary_analyzer_ledger_chain_intact") == 0  # a Gauge starts at 0 ...
    metrics.chain_checked(ChainStatus(intact=True, verified_seq=42, checked_at=T0))
    assert value("canary_analyzer_ledger_chain_intact") == 1
    assert value("canary_analyzer_ledger_chain_verified_seq") == 42
    assert value("canary_analyzer_ledger_chain_checked_timestamp_seconds") == T0.timestamp()
    later = T0 + timedelta(minutes=1)
    metrics.chain_checked(ChainStatus(intact=False, verified_seq=42, checked_at=later))
    assert value("canary_analyzer_ledger_chain_intact") == 0
