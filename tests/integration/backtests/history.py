"""Recorded canaries for backtests: 20 canaries of one model in a real, backfilled Prometheus.

Ten canaries are harmless copies of the baseline (independent traffic: each revision's seed
differs), ten carry a regression of a different kind (latency, errors, false positives, the
decision mix). The manifest says when each was analysed and what it really was, as a team
would write it from its release notes and incident reviews. Used by the tests and by
``bench/backtest_bench.py``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "prometheus"))

import promserver

from analyzer.metrics.synthetic import RevisionBehaviour

TICK = 15.0
TICKS = 480  # two hours of 15 s scrapes
RATE = 20.0
SEED = 20261206
BASELINE = "fraud-00100"
BASE = RevisionBehaviour(weight=1.0, event_rates={"false_positives": 0.01})
FP = {"false_positives": 0.01}

# the regressions, round robin over the bad canaries
REGRESSIONS = (
    RevisionBehaviour(weight=1.0, latency_shift=0.15, event_rates=FP),
    RevisionBehaviour(weight=1.0, error_rate=0.02, event_rates=FP),
    RevisionBehaviour(weight=1.0, event_rates={"false_positives": 0.03}),
    RevisionBehaviour(weight=1.0, decision_mix=(0.80, 0.12, 0.08), event_rates=FP),
)
PROFILE = Path(__file__).with_name("profile-current.yaml")
CANDIDATE = Path(__file__).with_name("profile-candidate.yaml")


def canary_names(count: int = 20) -> list[str]:
    return [f"fraud-{101 + i:05d}" for i in range(count)]


def is_bad(index: int) -> bool:
    return index % 2 == 1


def behaviours(count: int = 20) -> dict[str, RevisionBehaviour]:
    out = {BASELINE: BASE}
    for i, name in enumerate(canary_names(count)):
        out[name] = REGRESSIONS[(i // 2) % len(REGRESSIONS)] if is_bad(i) else BASE
    return out


# Driven rollouts (the ledger test): four models, each a canary walked 10 % -> 50 % -> 100 % by
# the engine, every step dwelling DWELL_S with a look every INTERVAL_S, from ROLLOUT_START_S
# after the origin. Each canary's traffic follows the split its rollout asks for (the step
# weight w of the two arms: w / (100 - w) times the baseline's rate), so the judge's
# sample-ratio check sees the split it expects.
ROLLOUT_START_S = 600
DWELL_S = 1200
INTERVAL_S = 300
ROLLOUT_STEPS = (10, 50, 100)
ROLLOUTS = {  # model name -> (canary revision, truth, behaviour before the split is applied)
    "scorer-a": ("scorer-a-00002", "good", BASE),
    "scorer-b": ("scorer-b-00002", "bad", REGRESSIONS[0]),
    "scorer-c": ("scorer-c-00002", "good", BASE),
    "scorer-d": ("scorer-d-00002", "bad", REGRESSIONS[1]),
}


def rollout_behaviours() -> dict[str, RevisionBehaviour]:
    out = {}
    for canary, _, behaviour in ROLLOUTS.values():
        schedule = tuple(
            # a generator tick counts at its end: the one ending at a step's start still
            # belongs to the step before
            (float(ROLLOUT_START_S + k * DWELL_S) + TICK, w / (100 - w) if w < 100 else 1.0)
            for k, w in enumerate(ROLLOUT_STEPS)
        )
        out[canary] = replace(behaviour, weight=0.0, weight_schedule=schedule)
    return out


def scenario(count: int = 20) -> promserver.Scenario:
    end = promserver.aligned_end(TICK)
    return promserver.Scenario(
        seed=SEED,
        origin=end - timedelta(seconds=TICK * TICKS),
        ticks=TICKS,
        tick_seconds=TICK,
        request_rate=RATE,
        revisions=behaviours(count) | rollout_behaviours(),
    )


def manifest(
    origin: datetime, *, count: int = 20, looks: int = 12, interval_s: int = 300
) -> dict[str, Any]:
    """Each canary analysed for ``looks`` looks every ``interval_s``, starts staggered by 15 min
    inside the first hour, with a bake over its whole analysis."""
    canaries = []
    for i, name in enumerate(canary_names(count)):
        start = origin + timedelta(minutes=15 * (i % 4))
        canaries.append(
            {
                "id": f"c{i + 1:02d}",
                "model": f"{promserver.NAMESPACE}/{promserver.MODEL}",
                "baseline": BASELINE,
                "canary": name,
                "start": start.isoformat(),
                "interval": f"{interval_s}s",
                "looks": looks,
                "bake": f"{looks * interval_s}s",
                "truth": "bad" if is_bad(i) else "good",
            }
        )
    return {"canaries": canaries}


def write_manifest(path: Path, origin: datetime, **kwargs: Any) -> Path:
    path.write_text(yaml.safe_dump(manifest(origin, **kwargs), sort_keys=False))
    return path


def start_prometheus(workdir: Path, scn: promserver.Scenario) -> promserver.RunningPrometheus:
    found = promserver.binaries()
    assert found is not None, "prometheus and promtool must be installed"
    prometheus_bin, promtool = found
    openmetrics = workdir / "data.om"
    promserver.write_openmetrics(openmetrics, scn)
    promserver.backfill(promtool, openmetrics, workdir / "data")
    return promserver.start(prometheus_bin, workdir / "data", workdir)


# Revisions one after another (the discovery test): 00301 serves; 00302 joins at 10 min and is
# promoted at 40 min (00301 stops); 00303, 30 % slower, joins at 70 min and is rolled back at
# 90 min. Nothing but the traffic says so: no manifest, no ledger.
SEQUENCE = {
    "fraud-00301": replace(BASE, weight_schedule=((40 * 60.0 + TICK, 0.0),)),
    "fraud-00302": replace(BASE, weight=0.0, weight_schedule=((10 * 60.0 + TICK, 1.0),)),
    "fraud-00303": replace(
        REGRESSIONS[0],
        latency_shift=0.3,
        weight=0.0,
        weight_schedule=((70 * 60.0 + TICK, 1.0), (90 * 60.0 + TICK, 0.0)),
    ),
}


def sequence_scenario() -> promserver.Scenario:
    end = promserver.aligned_end(TICK)
    return promserver.Scenario(
        seed=SEED,
        origin=end - timedelta(seconds=TICK * TICKS),
        ticks=TICKS,
        tick_seconds=TICK,
        request_rate=RATE,
        revisions=SEQUENCE,
    )
