"""The synthetic fleet source: a tick's counts never depend on the window that asks, on what
was asked before, or on later moves; kept draws give the numbers fresh ones would."""

from __future__ import annotations

from datetime import UTC, datetime

from analyzer.domain.fleet import FleetRateQuery
from analyzer.metrics.synthetic.fleet import SyntheticFleetSource

MODELS = [f"m-{i}" for i in range(6)]
QUERY = FleetRateQuery(name="errors", events="e", total="t")
T0 = 1_800_000_000.0  # a multiple of 60 s


def _source(history: dict[str, list[tuple[float, str]]]) -> SyntheticFleetSource:
    return SyntheticFleetSource(
        seed=3,
        models=MODELS,
        serving=lambda m: history.get(m, []),
        rate_of=lambda m, uri, base: base + (0.3 if uri.endswith("/bad") else 0.0),
    )


def _read(source: SyntheticFleetSource, start: float, ready: float, at: float) -> dict[str, tuple]:
    got = source.read(
        [QUERY], namespace="n", models=MODELS, before_end=datetime.fromtimestamp(start, UTC),
        after_start=datetime.fromtimestamp(ready, UTC), at=datetime.fromtimestamp(at, UTC),
    )["errors"]  # fmt: skip
    return {
        m: (w.after_events, w.after_total, w.before_events, w.before_total) for m, w in got.items()
    }


def test_kept_draws_are_the_fresh_ones_and_follow_the_moves() -> None:
    history: dict[str, list[tuple[float, str]]] = {"m-1": [(T0, "s3://m-1/bad")]}
    warm = _source(history)
    for at in (T0 + 600, T0 + 1200, T0 + 3000):  # the same blocks asked again and again
        _read(warm, T0, T0, at)
    fresh = _source(history)
    assert _read(warm, T0, T0, T0 + 3600) == _read(fresh, T0, T0, T0 + 3600)
    # a move changes the rates of the ticks after it only: the draws before it stay
    history["m-2"] = [(T0 + 1800, "s3://m-2/bad")]
    moved = _read(warm, T0, T0, T0 + 3600)
    assert moved == _read(_source(history), T0, T0, T0 + 3600)
    before_move = _read(warm, T0, T0, T0 + 1740)
    assert before_move["m-2"] == _read(_source({}), T0, T0, T0 + 1740)["m-2"]
    bad = moved["m-1"]
    assert bad[0] / bad[1] > 0.2 > bad[2] / bad[3]
