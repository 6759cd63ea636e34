"""How long the ``canary-analyzer`` command takes for commands that do little: the import cost.

Runs each command ``--runs`` times as a fresh process (``python -m analyzer.cli …``) and prints
the median wall time; ``--compare DIR`` interleaves the same commands from another checkout
(e.g. ``git archive main`` unpacked in DIR) so both see the same machine noise, and prints the
ratio. Commands: ``--help``; ``token create`` (no database, no network); ``rollout list``
against a closed port (the API client path, exits 3); ``judge`` of the README's example (the
analysis path: numpy and scipy are needed there).

    .venv/bin/python bench/cli_startup_bench.py [--runs 7] [--compare DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "judge" / "healthy-canary.json"
COMMANDS = {
    "help": ["--help"],
    "token create": ["token", "create", "--subject", "bench", "--role", "viewer"],
    "rollout list (API down)": ["rollout", "list", "--url", "http://127.0.0.1:9", "--token", "t"],
    "judge example": ["judge", str(EXAMPLE)],
}


def one(checkout: Path, args: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run. On a loaded machine the CPU time is
    the steadier of the two: waiting for a core does not count."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_ANALYZER_")}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer.cli", *args],
        env=env | {"PYTHONPATH": str(checkout)}, cwd=checkout,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped by wait4 above
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compare", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    checkouts = {"this": ROOT} | ({"compare": args.compare} if args.compare else {})
    times: dict[str, dict[str, list[float]]] = {n: {c: [] for c in COMMANDS} for n in checkouts}
    cpu: dict[str, dict[str, list[float]]] = {n: {c: [] for c in COMMANDS} for n in checkouts}
    for i in range(args.runs):
        for command, argv in COMMANDS.items():
            # Alternate which checkout goes first: the first of a pair runs on a colder cache.
            order = list(checkouts.items())
            for name, checkout in order if i % 2 == 0 else reversed(order):
                wall, used = one(checkout, argv)
                times[name][command].append(wall)
                cpu[name][command].append(used)
    medians = {n: {c: statistics.median(v) for c, v in t.items()} for n, t in times.items()}
    cpu_medians = {n: {c: statistics.median(v) for c, v in t.items()} for n, t in cpu.items()}
    for command in COMMANDS:
        this_wall, this_cpu = medians["this"][command], cpu_medians["this"][command]
        line = f"{command:26s} this {this_wall:.2f} s (cpu {this_cpu:.2f} s)"
        if args.compare:
            wall, used = medians["compare"][command], cpu_medians["compare"][command]
            line += (
                f"  compare {wall:.2f} s (cpu {used:.2f} s)"
                f"  ratio {this_wall / wall:.2f} (cpu {this_cpu / used:.2f})"
            )
        print(line)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({"runs": times, "cpu": cpu, "median": medians, "cpu_median": cpu_medians})
        )


if __name__ == "__main__":
    main()
