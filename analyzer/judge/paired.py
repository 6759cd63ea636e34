"""``paired`` metrics: a shadow run's challenger judged decision by decision against the
incumbent on the *same* requests (docs/strategies.md, docs/statistics.md "Paired decisions").

The evidence is a table of paired decisions (incumbent row, challenger column), e.g. from the
counter ``model_shadow_decisions_total{incumbent="approve",challenger="decline"}``. Two
components, each a one-sample test over requests, judged by the shared sequential stage (an
e-process without a horizon, alpha spending with one), so they are anytime-valid like every
other kind:

* ``disagreement``: the share of requests the two models decide differently, against
  ``tolerance`` (the disagreement the model owner accepts, e.g. 0.01 = 1 % of decisions);
* ``adverse_shift`` (when ``adverse: {from, to}`` is set): McNemar's question — does the
  challenger move requests in the adverse direction (incumbent approve → challenger decline)
  more than the reverse? — against ``adverse_tolerance`` (default half the ``tolerance``), as
  the paired difference of the two models' rates of the adverse outcome.

Pairing is what makes this strong: both models see the same application, so the between-request
variation cancels, and disagreements are counted directly rather than inferred from two mixes.
"""

from __future__ import annotations

from analyzer.domain.observation import PairedObservation
from analyzer.domain.profile import MetricSpec
from analyzer.domain.result import JsonValue
from analyzer.judge.evidence import Evidence, pct
from analyzer.judge.sequential import Component
from analyzer.stats.effects import paired_disagreement, paired_shift


def adverse_move(spec: MetricSpec) -> tuple[str, str] | None:
    """The ``(incumbent decision, challenger decision)`` pair that counts as adverse, if set."""
    raw = spec.extra.get("adverse")
    if raw is None:
        return None
    pair = list(raw)  # type: ignore[call-overload]  # a 2-sequence, validated when parsed
    return str(pair[0]), str(pair[1])


def adverse_tolerance(spec: MetricSpec) -> float:
    value = spec.extra.get("adverse_tolerance")
    if value is None:
        return (spec.tolerance or 0.0) / 2.0
    return float(value)  # type: ignore[arg-type]  # validated where the spec is parsed


def paired_evidence(spec: MetricSpec, obs: PairedObservation) -> Evidence:
    n = obs.total
    d = obs.disagreements
    margin = spec.tolerance or 0.0
    move = adverse_move(spec)
    share = 0.5 if move is not None else 1.0
    eff = paired_disagreement(d, n, margin)
    components = [
        Component(
            name="disagreement",
            weight=share,
            theta=float(eff.theta),
            se=float(eff.se),
            neff=float(eff.neff),
            margin=margin,
        )
    ]
    rate = d / n if n else 0.0
    estimate: dict[str, JsonValue] = {"disagreement_rate": rate, "pairs": n, "disagreements": d}
    summary = f"challenger disagrees on {pct(rate)} of {n} paired requests ({d})"
    harm = f"disagreement beyond {pct(margin)}"
    if move is not None:
        worse, better = obs.count(*move), obs.count(move[1], move[0])
        tol = adverse_tolerance(spec)
        shift = paired_shift(worse, better, n, tol)
        components.append(
            Component(
                name="adverse_shift",
                weight=share,
                theta=float(shift.theta),
                se=float(shift.se),
                neff=float(shift.neff),
                margin=tol,
            )
        )
        net = (worse - better) / n if n else 0.0
        estimate |= {"adverse": worse, "reverse": better, "adverse_shift": net}
        summary += f"; {move[0]}→{move[1]} {worse} vs {move[1]}→{move[0]} {better}"
        harm += f" or a net {move[0]}→{move[1]} shift beyond {pct(tol)}"
    table: dict[str, JsonValue] = {
        inc: dict(zip(obs.categories, row, strict=True))
        for inc, row in zip(obs.categories, obs.pairs, strict=True)
    }
    return Evidence(
        components=tuple(components),
        n_baseline=n,
        n_canary=n,
        summary=summary,
        harm=harm,
        estimate=estimate,
        descriptive={"pairs": table},
    )
