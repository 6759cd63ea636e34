"""A rollout-engine process for the crash and replica tests.

    python -m tests.integration.rollouts.worker DATABASE_URL REPLICA_ID

Ticks until no rollout is active or awaiting its abort's confirmation (or 120 s pass). The
tests kill it with SIGKILL at random moments and start it again.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

from sqlalchemy import text

from analyzer.db import make_engine
from analyzer.ledger.store import Ledger
from analyzer.logging import configure_logging
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from tests.integration.rollouts.durable import ByNameAnalyzer, TableTarget


def main(url: str, replica: str) -> None:
    configure_logging("warning")
    engine = make_engine(url, pool_size=2)
    ledger = Ledger(engine)
    rollout_engine = RolloutEngine(
        engine, ledger, TableTarget(engine), ByNameAnalyzer(), OpenGates(),
        replica_id=replica, lease=timedelta(seconds=2), batch=5,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rollout_engine.tick()
        with engine.connect() as conn:
            active = conn.execute(
                text(
                    "SELECT count(*) FROM rollouts WHERE state IN ('pending', 'progressing') "
                    "OR (state IN ('aborted', 'failed') AND (pending_move IS NOT NULL "
                    "OR (applied_weight IS NOT NULL AND applied_weight <> 0)))"
                )
            ).scalar_one()
        if active == 0:
            return
        time.sleep(0.01)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
