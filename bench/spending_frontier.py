#!/usr/bin/env python3
"""Error-rate detection time against power for several alpha-spending designs (seeded).

For the issue-12 error scenarios of ``bench/judge_quality.py`` (A/A at 40 and 400 looks,
0.1 % -> 0.3 % and 0.1 % -> 1 % at N = 10,000 per arm, looks every 200), evaluates the judge's
horizon rule for each test (``normal``: the Gaussian lattice on the restricted-variance z, the
judge's test with a tolerance; ``exact``: the exact conditional test the judge uses with
tolerance 0), each spending function and each share of alpha given to alpha spending (the rest
is the e-process reserve; share 1 means no reserve), on the same simulated data for every
design. Cells: reject rate [median requests per arm at detection]; A/A: (Wilson 95 % upper).

    python bench/spending_frontier.py                  # both tests, ~8 min on 2 shared vCPUs
    python bench/spending_frontier.py --method exact   # the exact test only
"""

from __future__ import annotations

import argparse
from unittest import mock

import judge_quality as jq  # bench/ is on sys.path when the script is run from the repo root
import numpy as np

DESIGNS = {
    "normal": ((0.75, 0.9, 1.0), ("hsd:0", "hsd:1", "hsd:2", "hsd:3", "pocock")),
    "exact": ((0.8, 0.85, 0.9, 1.0), ("pocock", "hsd:1", "hsd:2", "hsd:2.5", "hsd:3", "hsd:4")),
}
SCENARIOS = (
    "errors A/A, 40 looks",
    "errors A/A, 400 looks",
    "errors 0.1% -> 0.3%",
    "errors 0.1% -> 1%",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--aa-reps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--method", choices=("normal", "exact", "both"), default="both")
    args = ap.parse_args()
    by_name = {sc.name: sc for sc in jq.scenarios()}
    rng = np.random.default_rng(args.seed)
    data = {
        name: jq.simulate(rng, by_name[name], args.aa_reps if "A/A" in name else args.reps)
        for name in SCENARIOS
    }
    print(f"seed={args.seed} reps={args.reps} (A/A: {args.aa_reps}) alpha={jq.ALPHA}\n")
    print("| test | share spent | spending | " + " | ".join(SCENARIOS) + " |")
    print("|---|---|---|" + "---|" * len(SCENARIOS))
    methods = ("normal", "exact") if args.method == "both" else (args.method,)
    for method in methods:
        shares, spendings = DESIGNS[method]
        for share in shares:
            for spending in spendings:
                cells = []
                for name in SCENARIOS:
                    sc = by_name[name]
                    b, c = data[name]
                    # share 1.0: the reserve gets alpha 0, its threshold is never reached
                    with (
                        mock.patch.object(jq, "spend_share", lambda *_a, s=share, **_k: s),
                        mock.patch.object(jq, "is_exact", lambda _sc, m=method: m == "exact"),
                    ):
                        first = jq.judge_first_fail(sc, b, c, spending, horizon=True)
                    cells.append(jq.fmt(jq.summarize(first, sc), "A/A" in name))
                row = f"| {method} | {share:g} | {spending} | " + " | ".join(cells) + " |"
                print(row, flush=True)


if __name__ == "__main__":
    main()
