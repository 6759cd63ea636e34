"""What the hot statements cost through ``Connection.execute`` and as ``DriverStatement``s.

A fresh Argo look's transaction locks its session row and the ledger head, then writes (issue
20, ``analyzer/driver_sql.py``). This times transactions of the two locks on a scratch
PostgreSQL database migrated by Alembic: through SQLAlchemy's ``Connection.execute`` (before)
and through ``DriverStatement`` (now), alternating, plus an empty transaction (the pool's
checkout, its ping and the commit) for reference. CPU of this process (``time.process_time``)
per transaction, medians over ``--rounds``.

    CANARY_ANALYZER_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/driver_sql.py [--transactions 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from sqlalchemy import Engine  # noqa: E402

from analyzer.analyses.service import _SESSION_LOCK  # noqa: E402
from analyzer.db import alembic_config, make_engine  # noqa: E402
from analyzer.ledger.store import _HEAD_LOCK  # noqa: E402
from tests import pg  # noqa: E402

KEY = {"b_namespace": "risk", "b_model": "fraud", "b_canary": "c", "b_baseline": "b", "b_key": "k"}


def variants(engine: Engine) -> dict[str, Callable[[], None]]:
    session_lock, head_lock = _SESSION_LOCK[False], _HEAD_LOCK

    def empty() -> None:
        with engine.begin():
            pass

    def connection_execute() -> None:
        with engine.begin() as conn:
            conn.execute(session_lock.statement, KEY).first()
            conn.execute(head_lock.statement).first()

    def driver_statement() -> None:
        with engine.begin() as conn:
            session_lock.first(conn, KEY)
            head_lock.first(conn, {})

    return {
        "empty transaction": empty,
        "Connection.execute": connection_execute,
        "DriverStatement": driver_statement,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with pg.scratch_database(pg.maintenance_url(), durable=True) as db:
        url = db.render_as_string(hide_password=False)
        command.upgrade(alembic_config(url), "head")
        engine = make_engine(url)
        try:
            runs: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for name, run in variants(engine).items():
                    for _ in range(50):  # warm: compiled, prepared on the server
                        run()
                    started = time.process_time()
                    for _ in range(args.transactions):
                        run()
                    spent = (time.process_time() - started) * 1000 / args.transactions
                    runs.setdefault(name, []).append(spent)
            medians = {name: round(statistics.median(v), 3) for name, v in runs.items()}
            print(json.dumps({
                "cpu_ms_per_transaction": medians,
                "transactions": args.transactions, "rounds": args.rounds,
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }))  # fmt: skip
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
