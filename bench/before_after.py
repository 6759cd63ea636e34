#!/usr/bin/env python3
"""Why a blue/green verification (before/after) is weaker than a canary (concurrent): the
false-fail rate of an identical new revision (A/A) when the error rate drifts with time.

Each run judges an error-rate metric (``proportion``, tolerance +0.1 pp, alpha 0.05) with the
real ``judge()`` at every look of a 15-minute window (15 looks, 600 requests per arm per minute).
The world's error rate drifts linearly by ``drift`` (relative, per hour); the two revisions are
identical. Three ways of getting the baseline arm:

* concurrent (a canary): both arms at the same minutes — the drift cancels;
* adjacent before/after (blue/green, default offset): the baseline from the 15 minutes before
  the cut — the drift over 15 minutes is attributed to the new revision;
* same hour yesterday (blue/green, offset 86400 s): with a purely daily pattern the drift
  cancels; a trend across days does not (``--daily-trend``).

    python bench/before_after.py            # 400 runs per cell (~2 min on 2 shared vCPUs)
    python bench/before_after.py --runs 100 # a quick look
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from analyzer.domain.observation import EventCount, ProportionObservation
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import MetricKind, Verdict
from analyzer.judge import JudgeState, judge

BASE_RATE = 0.01
LOOKS, PER_MINUTE = 15, 600
SPEC = MetricSpec(name="errors", kind=MetricKind.PROPORTION, tolerance=0.001)
PROFILE = AnalysisProfile(name="bg", metrics=(SPEC,), alpha=0.05)


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + half) / (1 + z * z / n)


def rate_at(minute: float, drift_per_hour: float) -> float:
    return BASE_RATE * (1 + drift_per_hour * minute / 60.0)


def run(rng: np.random.Generator, drift: float, offset_minutes: float, daily_trend: float) -> bool:
    """One A/A verification; True when it failed (a false fail)."""
    state: JudgeState | None = None
    b_events = b_total = c_events = c_total = 0
    for k in range(LOOKS):
        now = float(k)  # minutes after the cut
        then = now - offset_minutes
        # a daily offset sees the same hour of the day, plus whatever changed across days
        same_hour = offset_minutes >= 24 * 60
        b_rate = rate_at(now, drift) * (1 - daily_trend) if same_hour else rate_at(then, drift)
        c_rate = rate_at(now, drift)
        b_events += int(rng.binomial(PER_MINUTE, min(b_rate, 1.0)))
        c_events += int(rng.binomial(PER_MINUTE, min(c_rate, 1.0)))
        b_total += PER_MINUTE
        c_total += PER_MINUTE
        obs = ProportionObservation(
            baseline=EventCount(events=b_events, total=b_total),
            canary=EventCount(events=c_events, total=c_total),
        )
        profile = AnalysisProfile(
            name=PROFILE.name, metrics=PROFILE.metrics, alpha=PROFILE.alpha,
            bake_elapsed=(k + 1) / LOOKS,
        )  # fmt: skip
        result, state = judge(profile, {"errors": obs}, state)
        if result.verdict is Verdict.FAIL:
            return True
    return False


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--daily-trend", type=float, default=0.1,
                    help="relative change of the error rate from yesterday to today")  # fmt: skip
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.time()
    print(f"runs={args.runs} seed={args.seed} base error rate {BASE_RATE:.0%}, tolerance +0.1 pp")
    print("| drift of the error rate per hour | concurrent (canary) | adjacent before/after | "
          f"same hour yesterday ({args.daily_trend:+.0%} across days) |")  # fmt: skip
    print("|---|---|---|---|")
    for drift in (0.0, 0.5, 1.0, 2.0):
        cells = []
        for offset, trend in ((0.0, 0.0), (15.0, 0.0), (24 * 60.0, args.daily_trend)):
            fails = sum(run(rng, drift, offset, trend) for _ in range(args.runs))
            cells.append(f"{fails / args.runs:.1%} (≤{wilson_upper(fails, args.runs):.1%})")
        print(f"| {drift:+.0%} | " + " | ".join(cells) + " |")
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
