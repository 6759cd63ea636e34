#!/usr/bin/env python3
"""Fleet rollouts: false rollbacks across A/A fleets, harmful models caught, and the cost of a
look (seeded; not part of pytest).

Each simulated fleet is ``--models`` per-merchant models (log-normal traffic around
``--requests-per-minute``, error rates uniform in 0.3-3 %) rolled out by the real wave rules
(``analyzer.fleets.plan``, ``judge``, ``progress``) with a look every ``--look-minutes``. Counts
are drawn minute by minute from what each model serves at that minute, so a rolled-back model
goes back to its old rate at once. Scenarios:

* ``aa``: every new version is identical (any rollback is false; any failed wave too);
* ``aa-drift``: identical versions, while every model's error rate rises by 3 points halfway
  through each wave (a time effect the concurrent controls must absorb);
* ``harmful``: ``--harmful`` models get +10 points of errors on the new version.

Models of passed waves are watched until the fleet ends (``analyzer.fleets.watch``);
``--no-watch`` judges each model in its own wave only (as before the watch), ``--watch-after N``
watches N more minutes after the last wave passes.

    python bench/fleet_bench.py --quick          # seconds
    python bench/fleet_bench.py                  # 200 fleets per scenario (minutes; run nice)
    python bench/fleet_bench.py --watch-after 60 # a one-hour watch after the last wave
    python bench/fleet_bench.py --look-cost-only # CPU per look at 500 models
    python bench/fleet_bench.py --prometheus     # + the Prometheus time of a 500-model look
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from analyzer.domain.fleet import ModelPhase, RateWindows
from analyzer.domain.verdict import Verdict
from analyzer.fleets.judge import FleetMetric, FleetPolicy, WaveLook, judge_wave
from analyzer.fleets.plan import WaveSpec, cut_waves
from analyzer.fleets.progress import (
    FleetStatus,
    after_look,
    after_watch,
    initial_state,
    watch_ends,
    wave_look,
)
from analyzer.fleets.watch import judge_watch, watch_look, watch_targets
from analyzer.logging import configure_logging

ROOT = Path(__file__).resolve().parent.parent
METRIC = FleetMetric(name="errors", tolerance=0.01, safety_max=0.25)


@dataclass
class FleetOutcome:
    status: str
    false_rollbacks: int
    false_discoveries: int  # rolled back on their own evidence (not with a failed wave)
    harmful_caught: int
    harmful: int
    caught_by_tercile: list[tuple[int, bool]]  # (traffic tercile 0..2, caught) per harmful model
    upgraded: int
    looks: int
    minutes: int
    judge_cpu: list[float]


class SimulatedFleet:
    """Per-minute counts of every model, drawn from what it serves at that minute."""

    def __init__(self, rng: np.random.Generator, n: int, rpm: float, horizon: int) -> None:
        self.rng = rng
        self.traffic = rpm * rng.lognormal(0.0, 0.8, size=n)
        self.base = rng.uniform(0.003, 0.03, size=n)
        self.req = np.zeros((horizon + 1, n))
        self.err = np.zeros((horizon + 1, n))
        self.minute = 0

    def advance(self, minutes: int, rate: np.ndarray) -> None:
        for _ in range(minutes):
            r = self.rng.poisson(self.traffic)
            e = self.rng.binomial(r, np.clip(rate, 0.0, 1.0))
            self.req[self.minute + 1] = self.req[self.minute] + r
            self.err[self.minute + 1] = self.err[self.minute] + e
            self.minute += 1

    def windows(self, names: list[str], start: int, ready: int) -> dict[str, RateWindows]:
        now = self.minute
        width = now - ready
        lo = max(start - width, 0)
        after_r = self.req[now] - self.req[ready]
        after_e = self.err[now] - self.err[ready]
        before_r = self.req[start] - self.req[lo]
        before_e = self.err[start] - self.err[lo]
        return {
            name: RateWindows(
                after_events=float(after_e[i]),
                after_total=float(after_r[i]),
                before_events=float(before_e[i]),
                before_total=float(before_r[i]),
            )
            for i, name in enumerate(names)
        }


def run_fleet(seed: int, args: argparse.Namespace, scenario: str) -> FleetOutcome:
    rng = np.random.default_rng(seed)
    names = [f"merchant-{i:04d}" for i in range(args.models)]
    index = {m: i for i, m in enumerate(names)}
    plan = [
        WaveSpec(percent=p, dwell_seconds=args.dwell * 60.0, deadline_seconds=args.deadline * 60.0)
        for p in args.plan
    ]
    waves = cut_waves(f"fleet-{seed}", names, plan)
    policy = FleetPolicy(alpha=args.alpha, waves=len(waves))
    harmful = set()
    if scenario == "harmful":
        harmful = {names[i] for i in rng.choice(args.models, size=args.harmful, replace=False)}
    harm = np.array([0.10 if m in harmful else 0.0 for m in names])
    # the mirror windows need a past: as long as the fleet can last (a watched wave's grows back)
    history = len(waves) * args.deadline + args.watch_after
    horizon = history + len(waves) * args.deadline + args.watch_after + args.look_minutes
    sim = SimulatedFleet(rng, args.models, args.requests_per_minute, horizon)
    sim.advance(history, sim.base)
    state, upgrades = initial_state(waves, now=float(sim.minute * 60))
    new = np.zeros(args.models, dtype=bool)
    new[[index[m] for m in upgrades]] = True
    cpu: list[float] = []
    discovered: set[str] = set()
    looks = 0
    watch_seconds = args.watch_after * 60.0
    while state.status is FleetStatus.PROGRESSING:
        ready_minute = int(state.wave_ready_at // 60)
        for _ in range(args.look_minutes):
            drift = 0.0
            if scenario == "aa-drift" and sim.minute - ready_minute >= args.dwell // 2:
                drift = 0.03
            sim.advance(1, sim.base + drift + harm * new)
        now = float(sim.minute * 60)
        judgement = None
        started = time.process_time()
        if state.watch_until is None:
            counts = {"errors": sim.windows(names, int(state.wave_started_at // 60), ready_minute)}
            judgement = judge_wave([METRIC], policy, wave_look(state, waves, counts, now=now))
        final = watch_ends(state, waves, judgement, now=now, watch_seconds=watch_seconds)
        watched = []
        for target in watch_targets(state, waves) if args.watch else ():
            counts = {
                "errors": sim.windows(
                    names, int(target.before_end // 60), int(target.after_start // 60)
                )
            }
            look = watch_look(state, waves, target, counts, now=now, final=final)
            watched.append(judge_watch([METRIC], policy, look))
        cpu.append(time.process_time() - started)
        looks += 1
        if judgement is None:
            step = after_watch(state, watched, now=now)
        else:
            step = after_look(
                state, waves, judgement, now=now, watched=watched, watch_seconds=watch_seconds
            )
        if judgement is None or judgement.verdict is not Verdict.FAIL:
            discovered.update(step.rollbacks)
        else:
            discovered.update(m for w in watched for m in w.rollbacks)
        new[[index[m] for m in step.rollbacks]] = False
        new[[index[m] for m in step.upgrades]] = True
        state = step.state
    rolled = state.models_in(ModelPhase.ROLLED_BACK)
    cuts = np.quantile(sim.traffic, [1 / 3, 2 / 3])
    terciles = [
        (int(np.searchsorted(cuts, sim.traffic[index[m]])), m in rolled) for m in sorted(harmful)
    ]
    return FleetOutcome(
        status=state.status.value,
        false_rollbacks=sum(1 for m in rolled if m not in harmful),
        false_discoveries=sum(1 for m in discovered if m not in harmful),
        harmful_caught=sum(1 for m in rolled if m in harmful),
        harmful=len(harmful),
        caught_by_tercile=terciles,
        upgraded=len(state.models_in(ModelPhase.JUDGED)),
        looks=looks,
        minutes=sim.minute - history,
        judge_cpu=cpu,
    )


def scenario_summary(args: argparse.Namespace, scenario: str) -> dict[str, object]:
    outcomes = [run_fleet(args.seed + k, args, scenario) for k in range(args.fleets)]
    n = len(outcomes)
    any_false = sum(1 for o in outcomes if o.false_rollbacks > 0)
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    cpu = [c for o in outcomes for c in o.judge_cpu]
    summary: dict[str, object] = {
        "scenario": scenario,
        "fleets": n,
        "fleets_with_any_false_rollback": any_false,
        "share_with_any_false_rollback": round(any_false / n, 4),
        "false_rollbacks_total": sum(o.false_rollbacks for o in outcomes),
        "fleets_with_any_false_discovery": sum(1 for o in outcomes if o.false_discoveries),
        "statuses": statuses,
        "median_minutes": statistics.median(o.minutes for o in outcomes),
        "median_models_upgraded": statistics.median(o.upgraded for o in outcomes),
        "median_judge_ms_per_look": round(1000 * statistics.median(cpu), 3),
    }
    if scenario == "harmful":
        caught = sum(o.harmful_caught for o in outcomes)
        total = sum(o.harmful for o in outcomes)
        summary["harmful_caught"] = f"{caught}/{total}"
        for tercile, label in enumerate(("quietest third", "middle third", "busiest third")):
            hits = [c for o in outcomes for t, c in o.caught_by_tercile if t == tercile]
            summary[f"caught_{label.replace(' ', '_')}"] = f"{sum(hits)}/{len(hits)}"
    return summary


def look_cost(models: int, repeats: int) -> dict[str, object]:
    """CPU of one look at ``models`` wave models (two metrics) with as many controls."""
    rng = np.random.default_rng(7)
    wave = tuple(f"w-{i:04d}" for i in range(models))
    controls = tuple(f"c-{i:04d}" for i in range(models))

    def counts() -> dict[str, RateWindows]:
        out = {}
        for name in wave + controls:
            n_a, n_b = rng.poisson(600), rng.poisson(600)
            out[name] = RateWindows(
                after_events=float(rng.binomial(n_a, 0.01)),
                after_total=float(n_a),
                before_events=float(rng.binomial(n_b, 0.01)),
                before_total=float(n_b),
            )
        return out

    metrics = [METRIC, FleetMetric(name="timeouts", tolerance=0.01)]
    look = WaveLook(
        wave=wave,
        controls=controls,
        counts={"errors": counts(), "timeouts": counts()},
        dwell_over=True,
    )
    policy = FleetPolicy(waves=4)
    times = []
    for _ in range(repeats):
        started = time.process_time()
        verdict = judge_wave(metrics, policy, look).verdict
        times.append(time.process_time() - started)
    assert verdict in tuple(Verdict)
    return {
        "models": models,
        "controls": models,
        "metrics": 2,
        "repeats": repeats,
        "median_cpu_s": round(statistics.median(times), 4),
        "max_cpu_s": round(max(times), 4),
    }


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prometheus_cost(models: int, repeats: int) -> dict[str, object]:
    """Wall time of one look's Prometheus queries (two metrics) at ``models`` models."""
    import httpx

    sys.path.insert(0, str(ROOT / "tests" / "integration" / "prometheus"))
    import fleetdata
    import promserver

    from analyzer.domain.fleet import FleetRateQuery
    from analyzer.metrics.prometheus import PrometheusClient, RetryPolicy
    from analyzer.metrics.prometheus.fleet import PrometheusFleetSource

    found = promserver.binaries()
    if found is None:
        return {"skipped": "prometheus/promtool not installed"}
    import tempfile

    names = [f"merchant-{i:04d}" for i in range(models)]
    tick, ticks = 15.0, 480
    end = promserver.aligned_end(tick)
    scenario = fleetdata.FleetScenario(
        seed=5,
        origin=end - timedelta(seconds=tick * ticks),
        ticks=ticks,
        tick_seconds=tick,
        models=names,
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fleetdata.write_openmetrics(work / "f.om", scenario, fleetdata.generate(scenario))
        promserver.backfill(found[1], work / "f.om", work / "data")
        running = promserver.start(found[0], work / "data", work)
        try:
            with httpx.Client() as http:
                client = PrometheusClient(
                    base_url=running.url, http=http, timeout=30.0, retry=RetryPolicy(attempts=1)
                )
                source = PrometheusFleetSource(client)
                queries = [
                    FleetRateQuery(
                        name=name,
                        events=f'{fleetdata.COUNTER}{{namespace="{{namespace}}",code!="OK"}}',
                        total=f'{fleetdata.COUNTER}{{namespace="{{namespace}}"}}',
                        model_label="vModelId",
                    )
                    for name in ("errors", "errors-again")
                ]
                walls, cpus = [], []
                for _ in range(repeats):
                    started, cpu0 = time.perf_counter(), time.process_time()
                    got = source.read(
                        queries,
                        namespace=fleetdata.NAMESPACE,
                        models=names,
                        before_end=scenario.at(240),
                        after_start=scenario.at(240),
                        at=scenario.at(480),
                    )
                    walls.append(time.perf_counter() - started)
                    cpus.append(time.process_time() - cpu0)
                assert len(got["errors"]) == models
                # a look late in a fleet: the current wave and three watched waves, each on its
                # own windows (one query per metric and wave: 8 queries)
                watch_walls, prom_cpu = [], []
                for _ in range(repeats):
                    started, prom0 = time.perf_counter(), _proc_cpu(running.process.pid)
                    for k in range(4):
                        source.read(
                            queries,
                            namespace=fleetdata.NAMESPACE,
                            models=names,
                            before_end=scenario.at(240 + 40 * k),
                            after_start=scenario.at(240 + 40 * k),
                            at=scenario.at(480),
                        )
                    watch_walls.append(time.perf_counter() - started)
                    prom_cpu.append(_proc_cpu(running.process.pid) - prom0)
        finally:
            running.stop()
    return {
        "models": models,
        "queries_per_look": 2,
        "median_wall_s": round(statistics.median(walls), 4),
        "median_client_cpu_s": round(statistics.median(cpus), 4),
        "with_3_watched_waves": {
            "queries_per_look": 8,
            "median_wall_s": round(statistics.median(watch_walls), 4),
            "median_prometheus_cpu_s": round(statistics.median(prom_cpu), 4),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleets", type=int, default=200)
    parser.add_argument("--models", type=int, default=400)
    parser.add_argument("--harmful", type=int, default=5)
    parser.add_argument("--plan", type=float, nargs="+", default=[2, 10, 50, 100])
    parser.add_argument("--dwell", type=int, default=60, help="minutes")
    parser.add_argument("--deadline", type=int, default=180, help="minutes")
    parser.add_argument("--look-minutes", type=int, default=10)
    parser.add_argument("--requests-per-minute", type=float, default=10.0)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        help="judge each model during its own wave only (the behaviour before the watch)",
    )
    parser.add_argument(
        "--watch-after", type=int, default=0, help="minutes of watch after the last wave passes"
    )
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--scenarios", nargs="+", default=["aa", "aa-drift", "harmful"])
    parser.add_argument("--quick", action="store_true", help="10 fleets per scenario")
    parser.add_argument("--look-cost-only", action="store_true")
    parser.add_argument("--prometheus", action="store_true")
    args = parser.parse_args()
    configure_logging("warning", "console")
    if args.quick:
        args.fleets = 10
    results: dict[str, object] = {"look_cost": look_cost(500, 30 if not args.quick else 5)}
    if args.prometheus:
        results["prometheus"] = prometheus_cost(500, 5)
    if not args.look_cost_only:
        results["scenarios"] = [scenario_summary(args, s) for s in args.scenarios]
        results["settings"] = {
            k: v for k, v in vars(args).items() if k not in ("look_cost_only", "prometheus")
        }
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
