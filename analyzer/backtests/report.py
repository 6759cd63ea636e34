"""What ``backtest`` prints: a table per canary and a summary per profile, or the same as JSON.

The table puts profiles side by side (one column each), so "what would the candidate profile
have said about last month's canaries, and how does that compare with the current one and with
what happened" is one screen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from analyzer.backtests.replay import CanaryReplay, ProfileSummary, summarize
from analyzer.domain.verdict import Verdict


def summaries(replays: Sequence[CanaryReplay], labels: Sequence[str]) -> list[ProfileSummary]:
    return [summarize(label, replays) for label in labels]


def report_json(replays: Sequence[CanaryReplay], labels: Sequence[str]) -> dict[str, Any]:
    return {
        "profiles": list(labels),
        "canaries": [r.to_json() for r in replays],
        "summary": [s.to_json() for s in summaries(replays, labels)],
    }


def _said(replay: CanaryReplay) -> str:
    at = replay.decided_at
    if replay.verdict in (Verdict.PASS, Verdict.FAIL) and at is not None:
        return f"{replay.verdict.value} @{at + 1}"
    return replay.verdict.value


def _happened(replay: CanaryReplay) -> str:
    happened = replay.canary.happened
    if happened is None:
        return "-"
    if happened.decided_at is not None:
        return f"{happened.outcome} (fail @{happened.decided_at + 1})"
    return happened.outcome


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.0f} s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return [line.rstrip() for line in lines]


def report_text(replays: Sequence[CanaryReplay], labels: Sequence[str]) -> str:
    """Per canary: truth, what happened, and each profile's verdict at its deciding look
    (1-based); then per profile: outcomes against the truth, and time to decide."""
    by_canary: dict[str, dict[str, CanaryReplay]] = {}
    for replay in replays:
        by_canary.setdefault(replay.canary.id, {})[replay.profile] = replay
    rows = [["canary", "model", "looks", "truth", "happened", *labels]]
    for canary_id, mine in by_canary.items():
        first = next(iter(mine.values()))
        rows.append(
            [
                canary_id,
                str(first.canary.model),
                str(len(first.canary.looks)),
                "-" if first.canary.truth is None else first.canary.truth.value,
                _happened(first),
                *(_said(mine[label]) for label in labels),
            ]
        )
    lines = _table(rows)
    lines.append("")
    head = ["profile", "canaries", "pass", "fail", "undecided", "error"]
    head += ["caught", "missed", "false aborts", "miss rate", "false-abort rate"]
    head += ["median to decide", "median to stop a bad one", "differs from what happened"]
    table = [head]
    for s in summaries(replays, labels):
        v, o = s.verdicts, s.outcomes
        table.append(
            [
                s.profile, str(s.canaries), str(v["pass"]), str(v["fail"]),
                str(v["inconclusive"]), str(v["error"]), str(o["caught"]), str(o["missed"]),
                str(o["false_abort"]), _rate(s.miss_rate), _rate(s.false_abort_rate),
                "-" if s.median_looks_to_decide is None
                else f"{s.median_looks_to_decide:g} looks, {_seconds(s.median_seconds_to_decide)}",
                _seconds(s.median_seconds_to_fail_bad),
                "-" if s.disagreements is None else str(s.disagreements),
            ]
        )  # fmt: skip
    lines += _table(table)
    return "\n".join(lines) + "\n"
