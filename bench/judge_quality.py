#!/usr/bin/env python3
"""Statistical quality of the canary judge against naive baselines (seeded; not part of pytest).

Simulated canaries produce Prometheus-like *cumulative* counts per arm at every look (error and
request counters, latency bucket counters, decision counters). The judge is consulted at every
look. To run thousands of replicates in minutes, the judge's decision rule is evaluated
vectorized over replicates with the same ``analyzer.stats`` functions and the same boundaries the
judge computes; ``--check`` replicates per scenario are also run through the real
``analyzer.judge.judge`` look by look, and the script fails if the two disagree.

    python bench/judge_quality.py            # full run (minutes)
    python bench/judge_quality.py --quick    # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
from scipy import special, stats

from analyzer.domain.observation import (
    CategoricalObservation,
    EventCount,
    HistogramObservation,
    Observation,
    PairedObservation,
    ProportionObservation,
)
from analyzer.domain.profile import AnalysisProfile, MetricSpec
from analyzer.domain.verdict import Direction, MetricKind, Verdict
from analyzer.judge import JudgeState, judge
from analyzer.judge.histogram import SHIFT_WEIGHT, TAIL_LEVELS, TAIL_MIN_EXCEEDANCES
from analyzer.judge.metric import (
    DEFAULT_MIXTURE_SCALE,
    DEFAULT_OMNIBUS_SPENDING,
    default_spending,
    spend_share,
)
from analyzer.stats import (
    SpendingFunction,
    boundaries,
    log_e_one_sided,
    log_e_two_sided,
    ordinal_effect,
    pearson_chi2,
    psi,
    rate_difference,
)
from analyzer.stats.radial import radial_boundaries

ALPHA = 0.05
Z_NAIVE = stats.norm.isf(ALPHA)
LAT_BOUNDS = (*[round(5.0 * 1.25**k, 3) for k in range(24)], math.inf)  # 5 ms .. 827 ms, +Inf
NEVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Scenario:
    kind: str
    name: str
    looks: int
    per_look: int
    horizon: int
    probs_b: np.ndarray
    probs_c: np.ndarray


def first_true(mask: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, NEVER where none."""
    hit = mask.any(axis=-1)
    return np.where(hit, mask.argmax(axis=-1), NEVER)


def simulate(rng: np.random.Generator, sc: Scenario, reps: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative per-arm counts, shape (reps, looks, categories)."""
    size = (reps, sc.looks)
    b = rng.multinomial(sc.per_look, sc.probs_b, size=size).cumsum(axis=1)
    c = rng.multinomial(sc.per_look, sc.probs_c, size=size).cumsum(axis=1)
    return b.astype(np.float64), c.astype(np.float64)


# ----------------------------------------------------------------------------------------------
# the judge's rule, vectorized over replicates (must agree with analyzer.judge; see --check)
# ----------------------------------------------------------------------------------------------
def judge_components(
    sc: Scenario, b: np.ndarray, c: np.ndarray
) -> list[tuple[float, int, np.ndarray]]:
    """(weight, first look index, z[reps, looks]) for each component the judge would build."""
    if sc.kind == "proportion":
        eff = rate_difference(b[..., 1], b.sum(-1), c[..., 1], c.sum(-1), 0.0)
        return [(1.0, 0, eff.z)]
    if sc.kind == "categorical":
        return [(1.0, 0, ordinal_effect(b, c).z)]
    comps = [(SHIFT_WEIGHT, 0, ordinal_effect(b, c).z)]
    n_min = np.arange(1, sc.looks + 1) * sc.per_look
    finite = np.log(np.asarray(LAT_BOUNDS[:-1]))
    for level in TAIL_LEVELS:
        start = int(np.argmax(n_min * (1 - level) >= TAIL_MIN_EXCEEDANCES))
        pooled = b[:, start] + c[:, start]
        target = vector_quantile(pooled, level)
        j = np.abs(finite[None, :] - np.log(target)[:, None]).argmin(axis=1)
        above = np.arange(len(LAT_BOUNDS))[None, :] > j[:, None]  # buckets above the bound
        x_b = (b * above[:, None, :]).sum(-1)
        x_c = (c * above[:, None, :]).sum(-1)
        z = rate_difference(x_b, b.sum(-1), x_c, c.sum(-1), 0.0).z
        z[:, :start] = -1e9  # not started: never crosses
        comps.append(((1 - SHIFT_WEIGHT) / len(TAIL_LEVELS), start, z))
    return comps


def vector_quantile(counts: np.ndarray, q: float) -> np.ndarray:
    """Interpolated quantile per row of bucket counts (same rule as analyzer.stats.quantile)."""
    upper = np.asarray(LAT_BOUNDS)
    lower = np.concatenate(([0.0], upper[:-1]))
    cum = counts.cumsum(-1)
    rank = q * cum[..., -1]
    k = np.minimum((cum < rank[..., None]).sum(-1), len(upper) - 1)
    ck = np.take_along_axis(counts, k[..., None], -1)[..., 0]
    before = np.take_along_axis(cum, k[..., None], -1)[..., 0] - ck
    inside = np.where(ck > 0, (rank - before) / np.maximum(ck, 1e-300), 1.0)
    lo, hi = lower[k], upper[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.where(lo > 0, lo * (hi / np.where(lo > 0, lo, 1.0)) ** inside, hi * inside)
    return np.where(np.isinf(hi), lo, val)


def judge_first_fail(
    sc: Scenario,
    b: np.ndarray,
    c: np.ndarray,
    spending: str,
    horizon: bool,
    alpha: float = ALPHA,
) -> np.ndarray:
    comps = judge_components(sc, b, c)
    if not horizon:
        return e_process_first_fail(sc, comps, alpha)
    n = np.arange(1, sc.looks + 1) * sc.per_look
    exact = is_exact(sc)
    sf = SpendingFunction.parse(spending or kind_spending(sc))
    share = spend_share(MetricKind(sc.kind), exact=exact)
    fail = np.zeros(b.shape[:2], dtype=bool)
    if exact:  # the bench's proportions have tolerance 0: the exact conditional test
        fail = exact_first_fail(sc, c[..., 1], b[..., 1], c.sum(-1), b.sum(-1), alpha * share, sf)
    else:
        for w, start, z in comps:
            infos = list(n[start:] / 2.0 / (sc.horizon / 2.0))
            fracs = list(n[start:] / sc.horizon)
            crit = np.full(sc.looks, np.inf)
            crit[start:] = boundaries(infos, fracs, alpha * share * w, sf)
            fail |= z >= crit
    if share >= 1.0:  # no reserve (bench/spending_frontier.py explores this)
        return first_true(fail)
    reserve = e_process_first_fail(sc, comps, alpha * (1 - share))
    return np.minimum(first_true(fail), reserve)


def is_exact(sc: Scenario) -> bool:
    """The judge's exact conditional test applies (proportions; the bench uses tolerance 0)."""
    return sc.kind == "proportion"


def kind_spending(sc: Scenario) -> str:
    """The judge's default spending for the scenario's kind (categorical: ordered)."""
    return default_spending(MetricKind(sc.kind), ordered=True, exact=is_exact(sc))


def exact_first_fail(
    sc: Scenario,
    x_h: np.ndarray,
    x_o: np.ndarray,
    n_h: np.ndarray,
    n_o: np.ndarray,
    alpha: float,
    sf: SpendingFunction,
) -> np.ndarray:
    """``analyzer.stats.exact`` vectorized over replicates: fail[reps, looks] of the exact
    conditional test on the cumulative harm-arm events ``x_h`` (the other arm's ``x_o``;
    requests ``n_h``, ``n_o``). Lattices are indexed by the absolute harm-arm count."""
    reps, looks = x_h.shape
    total = (x_h + x_o).astype(np.int64)
    width = int(total[:, -1].max()) + 2
    cells = np.arange(width)[None, :]
    masses = np.zeros((reps, width))
    masses[:, 0] = 1.0
    spent = np.zeros(reps)
    fail = np.zeros((reps, looks), dtype=bool)
    prev_t, prev_h, prev_o = np.zeros(reps, dtype=np.int64), np.zeros(reps), np.zeros(reps)
    for k in range(looks):
        d = total[:, k] - prev_t
        if d.max() > 0:
            share = harm_shares(n_h[:, k] - prev_h, n_o[:, k] - prev_o, n_h[:, k], n_o[:, k])
            pmf = _binomial_rows(d, share, int(d.max()) + 1)
            spread = masses * pmf[:, :1]
            for j in range(1, pmf.shape[1]):
                spread[:, j:] += masses[:, : width - j] * pmf[:, j : j + 1]
            masses = np.where(spread > 1e-14, spread, 0.0)  # the judge trims the same mass
        fracs = np.minimum(n_h[:, k], n_o[:, k]) / sc.horizon
        allowed = np.maximum(np.array([sf.spent(alpha, f) for f in fracs]) - spent, 0.0)
        tail = np.cumsum(masses[:, ::-1], axis=1)[:, ::-1]
        fits = np.concatenate([tail <= allowed[:, None] * (1 + 1e-12), np.ones((reps, 1), bool)], 1)
        j = fits.argmax(axis=1)
        top = width - 1 - (masses[:, ::-1] > 0).argmax(axis=1)  # last cell holding mass
        spent += np.concatenate([tail, np.zeros((reps, 1))], 1)[np.arange(reps), j]
        masses = np.where(cells >= j[:, None], 0.0, masses)
        fail[:, k] = (j <= top) & (x_h[:, k] >= j)  # above the support: no count fits (inf)
        prev_t, prev_h, prev_o = total[:, k], n_h[:, k], n_o[:, k]
    return fail


def harm_shares(dh: np.ndarray, do: np.ndarray, n_h: np.ndarray, n_o: np.ndarray) -> np.ndarray:
    """``analyzer.stats.exact.harm_share`` vectorized (the real judge() checks agree on it)."""
    floored = np.maximum(dh, 0.5)
    share = floored / (floored + np.maximum(do, 0.0))
    return np.where(dh + do > 0, share, n_h / np.maximum(n_h + n_o, 1.0))


def _binomial_rows(n: np.ndarray, p: np.ndarray, width: int) -> np.ndarray:
    """pmf[r, j] = P(Binomial(n_r, p_r) = j) for j < width."""
    j = np.arange(width)[None, :].astype(np.float64)
    nn = n[:, None].astype(np.float64)
    pp = np.clip(p[:, None], 1e-300, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = (
            special.gammaln(nn + 1)
            - special.gammaln(j + 1)
            - special.gammaln(np.maximum(nn - j, 0) + 1)
            + j * np.log(pp)
            + (nn - j) * np.log1p(-np.minimum(pp, 1 - 1e-16))
        )
    return np.where(j <= nn, np.exp(log_pmf), 0.0)


def e_process_first_fail(
    sc: Scenario, comps: list[tuple[float, int, np.ndarray]], alpha: float
) -> np.ndarray:
    neff = np.arange(1, sc.looks + 1) * sc.per_look / 2.0
    weights = np.array([w for w, _, _ in comps])
    stacked = np.stack(
        [math.log(w) + log_e_one_sided(z, neff, DEFAULT_MIXTURE_SCALE) for w, _, z in comps]
    )
    for i, (w, start, _) in enumerate(comps):
        stacked[i, :, :start] = math.log(w)  # a component not started yet is an e-value of 1
    idle = np.log(np.maximum(1.0 - weights.sum(), 1e-300))
    log_e = np.logaddexp(np.logaddexp.reduce(stacked, axis=0), idle)
    return first_true(log_e >= math.log(1 / alpha))


def omnibus_first_fail(
    sc: Scenario, b: np.ndarray, c: np.ndarray, alpha: float = ALPHA
) -> np.ndarray:
    neff = np.arange(1, sc.looks + 1) * sc.per_look / 2.0
    log_e = log_e_two_sided(pearson_chi2(b, c), neff, DEFAULT_MIXTURE_SCALE, b.shape[-1] - 1)
    return first_true(log_e >= math.log(1 / alpha))


def omnibus_horizon_first_fail(
    sc: Scenario, b: np.ndarray, c: np.ndarray, spending: str, alpha: float = ALPHA
) -> np.ndarray:
    """The unordered omnibus test with a horizon: alpha spent on sqrt(X**2) (radial lattice)
    plus the omnibus e-process reserve, as ``judge.sequential.decide_omnibus``."""
    n = np.arange(1, sc.looks + 1) * sc.per_look
    infos = list(n / 2.0 / (sc.horizon / 2.0))
    fracs = list(n / sc.horizon)
    dof = b.shape[-1] - 1
    share = spend_share(MetricKind.CATEGORICAL)
    crit = radial_boundaries(infos, fracs, alpha * share, SpendingFunction.parse(spending), dof)
    spent = first_true(np.sqrt(pearson_chi2(b, c)) >= np.asarray(crit))
    return np.minimum(spent, omnibus_first_fail(sc, b, c, alpha * (1 - share)))


# ----------------------------------------------------------------------------------------------
# naive baselines, consulted at every look exactly like the judge
# ----------------------------------------------------------------------------------------------
def naive_methods(sc: Scenario, b: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    n_b, n_c = b.sum(-1), c.sum(-1)
    out: dict[str, np.ndarray] = {}
    if sc.kind == "proportion":
        x_b, x_c = b[..., 1], c[..., 1]
        pooled = (x_b + x_c) / (n_b + n_c)
        se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-300) * (1 / n_b + 1 / n_c))
        out["naive z each look"] = first_true((x_c / n_c - x_b / n_b) / se >= Z_NAIVE)
        p_fisher = stats.hypergeom.sf(x_c - 1, n_b + n_c, x_b + x_c, n_c)
        out["naive Fisher each look"] = first_true(p_fisher <= ALPHA)
        ratio = (x_c / n_c) > 1.5 * np.maximum(x_b / n_b, 1e-300)
        out["rule: ratio > 1.5 and >= 5 errors"] = first_true(ratio & (x_c >= 5))
        return out
    if sc.kind == "histogram":
        out["naive Mann-Whitney each look"] = first_true(ordinal_effect(b, c).z >= Z_NAIVE)
        p99_b, p99_c = vector_quantile(b, 0.99), vector_quantile(c, 0.99)
        rule = (p99_c > 1.1 * p99_b) & (np.minimum(n_b, n_c) >= 1000)
        out["rule: canary p99 > 1.1x baseline"] = first_true(rule)
        return out
    chi2 = pearson_chi2(b, c)
    out["naive chi-square each look"] = first_true(stats.chi2.sf(chi2, b.shape[-1] - 1) <= ALPHA)
    out["naive ordinal MW each look"] = first_true(ordinal_effect(b, c).z >= Z_NAIVE)
    out["rule: PSI > 0.1"] = first_true(psi(b, c) > 0.1)
    out["rule: PSI > 0.01"] = first_true(psi(b, c) > 0.01)
    return out


def fixed_horizon(sc: Scenario, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """One look at N: the reference power no sequential method can beat."""
    if sc.kind == "proportion":
        z = rate_difference(b[:, -1, 1], b[:, -1].sum(-1), c[:, -1, 1], c[:, -1].sum(-1)).z
    else:
        z = ordinal_effect(b[:, -1], c[:, -1]).z
    return np.where(z >= Z_NAIVE, sc.looks - 1, NEVER)


# ----------------------------------------------------------------------------------------------
# the real judge, look by look, on a few replicates
# ----------------------------------------------------------------------------------------------
def spec_for(
    sc: Scenario, *, horizon: bool, spending: str | None, ordered: bool = True
) -> MetricSpec:
    kind = MetricKind(sc.kind)
    return MetricSpec(
        name="m",
        kind=kind,
        direction=Direction.INCREASE,
        tolerance=0.0,
        horizon=sc.horizon if horizon else None,
        spending=spending or None,
        categories=("approve", "review", "decline") if kind is MetricKind.CATEGORICAL else (),
        ordered=ordered,
    )


def observation(sc: Scenario, b: np.ndarray, c: np.ndarray) -> Observation:
    if sc.kind == "proportion":
        return ProportionObservation(
            baseline=EventCount(events=int(b[1]), total=int(b.sum())),
            canary=EventCount(events=int(c[1]), total=int(c.sum())),
        )
    ib, ic = tuple(int(x) for x in b), tuple(int(x) for x in c)
    if sc.kind == "histogram":
        return HistogramObservation(bounds=LAT_BOUNDS, baseline=ib, canary=ic)
    return CategoricalObservation(
        categories=("approve", "review", "decline"), baseline=ib, canary=ic
    )


def real_judge_first_fail(
    sc: Scenario, b: np.ndarray, c: np.ndarray, spec: MetricSpec
) -> tuple[np.ndarray, float]:
    profile = AnalysisProfile(name="bench", metrics=(spec,), alpha=ALPHA)
    out = np.full(b.shape[0], NEVER)
    calls, elapsed = 0, 0.0
    for r in range(b.shape[0]):
        state: JudgeState | None = None
        for k in range(sc.looks):
            obs = {"m": observation(sc, b[r, k], c[r, k])}
            t0 = time.perf_counter()
            result, state = judge(profile, obs, state)
            state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
            elapsed += time.perf_counter() - t0
            calls += 1
            if result.verdict is Verdict.FAIL:
                out[r] = k
                break
    return out, 1000.0 * elapsed / max(calls, 1)


# ----------------------------------------------------------------------------------------------
# scenarios and report
# ----------------------------------------------------------------------------------------------
def _lat_probs(shift: float = 1.0, tail_frac: float = 0.0, tail_mult: float = 1.0) -> np.ndarray:
    upper = np.asarray(LAT_BOUNDS)
    cdf = lambda s: stats.norm.cdf((np.log(upper / s) - math.log(50.0)) / 0.6)  # noqa: E731
    mix = (1 - tail_frac) * cdf(shift) + tail_frac * cdf(shift * tail_mult)
    return np.diff(mix, prepend=0.0)


def scenarios() -> list[Scenario]:
    err = lambda p: np.array([1 - p, p])  # noqa: E731
    mix_b = np.array([0.90, 0.07, 0.03])
    return [
        Scenario("proportion", "errors A/A, 40 looks", 40, 250, 10_000, err(0.001), err(0.001)),
        Scenario("proportion", "errors A/A, 400 looks", 400, 25, 10_000, err(0.001), err(0.001)),
        Scenario("proportion", "errors 0.1% -> 0.3%", 50, 200, 10_000, err(0.001), err(0.003)),
        Scenario("proportion", "errors 0.1% -> 1%", 50, 200, 10_000, err(0.001), err(0.01)),
        Scenario("histogram", "latency A/A, 40 looks", 40, 500, 20_000, _lat_probs(), _lat_probs()),
        Scenario(
            "histogram", "latency A/A, 400 looks", 400, 50, 20_000, _lat_probs(), _lat_probs()
        ),
        Scenario(
            "histogram", "latency +2% uniform", 40, 500, 20_000, _lat_probs(), _lat_probs(1.02)
        ),
        Scenario(
            "histogram",
            "latency tail: 1.3% x3",
            40,
            500,
            20_000,
            _lat_probs(),
            _lat_probs(1.0, 0.013, 3.0),
        ),
        Scenario("categorical", "decisions A/A, 40 looks", 40, 500, 20_000, mix_b, mix_b),
        Scenario("categorical", "decisions A/A, 400 looks", 400, 50, 20_000, mix_b, mix_b),
        Scenario(
            "categorical",
            "decisions 90/7/3 -> 89/7.5/3.5",
            40,
            500,
            20_000,
            mix_b,
            np.array([0.89, 0.075, 0.035]),
        ),
    ]


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + half) / (1 + z * z / n)


def summarize(first: np.ndarray, sc: Scenario) -> dict[str, float | None]:
    hit = first < NEVER
    k = int(hit.sum())
    median = float(np.median((first[hit] + 1) * sc.per_look)) if k else None
    return {
        "reject": k / len(first),
        "wilson_upper": wilson_upper(k, len(first)),
        "median_n": median,
    }


def run_scenario(
    rng: np.random.Generator,
    sc: Scenario,
    reps: int,
    spending: str,
    check: int,
    omnibus_spending: str = DEFAULT_OMNIBUS_SPENDING,
) -> dict[str, dict[str, float | None]]:
    b, c = simulate(rng, sc, reps)
    spending = spending or kind_spending(sc)
    firsts = {
        f"judge, horizon ({spending})": judge_first_fail(sc, b, c, spending, horizon=True),
        "judge, no horizon (e-process)": judge_first_fail(sc, b, c, spending, horizon=False),
    }
    if sc.kind == "categorical":
        firsts["judge, unordered omnibus (e-process)"] = omnibus_first_fail(sc, b, c)
        firsts[f"judge, unordered omnibus, horizon ({omnibus_spending})"] = (
            omnibus_horizon_first_fail(sc, b, c, omnibus_spending)
        )
    firsts.update(naive_methods(sc, b, c))
    firsts["fixed horizon, one look at N"] = fixed_horizon(sc, b, c)
    for horizon in (True, False):
        spec = spec_for(sc, horizon=horizon, spending=spending)
        real, _ = real_judge_first_fail(sc, b[:check], c[:check], spec)
        label = f"judge, horizon ({spending})" if horizon else "judge, no horizon (e-process)"
        mine = np.minimum(firsts[label][:check], NEVER)
        if not np.array_equal(real, mine):
            sys.exit(
                f"MISMATCH in {sc.name} / {label}: judge {real.tolist()} vs bench {mine.tolist()}"
            )
    if sc.kind == "categorical":
        label = f"judge, unordered omnibus, horizon ({omnibus_spending})"
        spec = spec_for(sc, horizon=True, spending=omnibus_spending, ordered=False)
        real, _ = real_judge_first_fail(sc, b[:check], c[:check], spec)
        mine = np.minimum(firsts[label][:check], NEVER)
        if not np.array_equal(real, mine):
            sys.exit(
                f"MISMATCH in {sc.name} / {label}: judge {real.tolist()} vs bench {mine.tolist()}"
            )
    return {name: summarize(f, sc) for name, f in firsts.items()}


def fmt(cell: dict[str, float | None], aa: bool) -> str:
    reject = cell["reject"] or 0.0
    text = f"{100 * reject:.1f}%"
    if aa:
        return f"{text} (≤{100 * (cell['wilson_upper'] or 0):.1f}%)"
    median = cell["median_n"]
    return f"{text} [{median:,.0f}]" if median is not None else text


def report(results: dict[str, dict[str, dict[str, float | None]]], kinds: dict[str, str]) -> str:
    lines = []
    for kind in ("proportion", "histogram", "categorical"):
        names = [n for n in results if kinds[n] == kind]
        if not names:
            continue
        methods = list(results[names[0]])
        lines.append(f"\n**{kind}**\n")
        lines.append("| method | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for m in methods:
            cells = [fmt(results[n][m], "A/A" in n) for n in names]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_aa(
    rng: np.random.Generator, reps: int, spending: str
) -> dict[str, dict[str, dict[str, float | None]]]:
    """A/A for a whole profile: errors, latency and decisions judged together, alpha/3 each
    (weighted e-Bonferroni); a false abort is any metric failing at any look."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for looks in (40, 400):
        group = [sc for sc in scenarios() if sc.name.endswith(f"A/A, {looks} looks")]
        cell: dict[str, dict[str, float | None]] = {}
        for horizon in (True, False):
            first = np.full(reps, NEVER)
            for sc in group:
                b, c = simulate(rng, sc, reps)
                f = judge_first_fail(sc, b, c, spending, horizon, alpha=ALPHA / len(group))
                first = np.minimum(first, f)
            named = spending or "defaults per kind"
            label = f"judge, horizon ({named})" if horizon else "judge, no horizon (e-process)"
            cell[label] = summarize(first, group[0])
        out[f"profile A/A, {looks} looks"] = cell
    return out


def wilson_lower(k: int, n: int, z: float = 1.96) -> float:
    return 1.0 - wilson_upper(n - k, n, z)


HEALTHY = (
    # (scenario index of the A/A run at 40 looks, tolerance, ordered, label)
    (0, 0.0, True, "errors, tolerance 0"),
    (0, 0.001, True, "errors, tolerance 0.1 pp (presets)"),
    (4, 0.0, True, "latency, tolerance 0"),
    (4, 0.10, True, "latency, tolerance 10 % (presets)"),
    (8, 0.0, True, "decisions ordered, tolerance 0"),
    (8, 0.01, True, "decisions ordered, tolerance 0.01"),
    (8, 0.0, False, "decisions unordered"),
)


def healthy_pass(rng: np.random.Generator, reps: int) -> dict[str, dict[str, float | int | None]]:
    """A healthy canary with a horizon (N = the planned total, reached at the 40th look),
    through the real judge look by look: does it pass by the horizon, and when?"""
    out: dict[str, dict[str, float | int | None]] = {}
    for index, tolerance, ordered, label in HEALTHY:
        sc = scenarios()[index]
        n_runs = reps if ordered else max(reps // 4, 20)  # the radial lattice is slower
        b, c = simulate(rng, sc, n_runs)
        spec = replace(
            spec_for(sc, horizon=True, spending=None, ordered=ordered), tolerance=tolerance
        )
        profile = AnalysisProfile(name="bench", metrics=(spec,), alpha=ALPHA)
        passed_at: list[int] = []
        fails = 0
        for r in range(n_runs):
            state: JudgeState | None = None
            first_pass: int | None = None
            verdict = Verdict.INCONCLUSIVE
            for k in range(sc.looks):
                result, state = judge(profile, {"m": observation(sc, b[r, k], c[r, k])}, state)
                verdict = result.verdict
                if verdict is Verdict.FAIL:
                    break
                if verdict is Verdict.PASS and first_pass is None:
                    first_pass = k
            if verdict is Verdict.FAIL:
                fails += 1
            elif verdict is Verdict.PASS and first_pass is not None:
                passed_at.append((first_pass + 1) * sc.per_look)
        k_pass = len(passed_at)
        out[label] = {
            "runs": n_runs,
            "passed_by_horizon": k_pass / n_runs,
            "wilson_lower": wilson_lower(k_pass, n_runs),
            "failed": fails / n_runs,
            "median_n_to_pass": float(np.median(passed_at)) if passed_at else None,
            "horizon": sc.horizon,
        }
    return out


def time_judge(rng: np.random.Generator, spending: str) -> dict[str, dict[str, float]]:
    """Per-call wall time of judge() on one typical metric, 40 looks, best of 7 repetitions
    (the minimum is the least disturbed by other load on a shared machine)."""
    out: dict[str, dict[str, float]] = {}
    picks = {"proportion": 2, "histogram": 7, "categorical": 10, "categorical, unordered": 10}
    for kind, index in picks.items():
        sc = scenarios()[index]
        b, c = simulate(rng, sc, 1)
        for horizon in (True, False):
            ordered = kind != "categorical, unordered"
            spec = spec_for(sc, horizon=horizon, spending=spending, ordered=ordered)
            profile = AnalysisProfile(name="bench", metrics=(spec,), alpha=ALPHA)
            looks = [{"m": observation(sc, b[0, k], c[0, k])} for k in range(sc.looks)]
            for round_trip in (False, True):
                best = math.inf
                for _ in range(7):
                    state: JudgeState | None = None
                    t0 = time.perf_counter()
                    for obs in looks:
                        _, state = judge(profile, obs, state)
                        if round_trip:
                            state = JudgeState.from_json(json.loads(json.dumps(state.to_json())))
                    best = min(best, (time.perf_counter() - t0) / sc.looks)
                key = ("horizon" if horizon else "no horizon") + (
                    ", state JSON" if round_trip else ""
                )
                out.setdefault(kind, {})[key] = round(1000 * best, 3)
    return out


PAIRED_CATS = ("approve", "decline")


def print_paired(rng: np.random.Generator, reps: int) -> None:
    t0 = time.time()
    rows = paired_quality(rng, reps)
    print("\n**paired (shadow) judge, 20 looks x 1,000 paired requests, every look judged**\n")
    print("| scenario | runs | fail by 20 k (Wilson 95 %) | pass by 20 k | median pairs to fail |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        median = row["median_n_to_fail"]
        print(
            f"| {name} | {row['runs']} | {100 * float(row['fail'] or 0):.1f}% "
            f"({max(0.0, 100 * float(row['fail_wilson_lower'] or 0)):.1f}–"
            f"{100 * float(row['fail_wilson_upper'] or 0):.1f}%) | "
            f"{100 * float(row['pass'] or 0):.1f}% | "
            + (f"{median:,.0f}" if median is not None else "–")
            + " |"
        )
    print(f"(paired: {time.time() - t0:.0f} s)")


def paired_runs(
    rng: np.random.Generator,
    reps: int,
    *,
    disagree: float,
    adverse_share: float,
    margin: float,
    adverse_tolerance: float | None,
    looks: int,
    per_look: int,
    bake_clock: bool,
) -> dict[str, float | int | None]:
    """Shadow runs through the real ``judge()`` at every look: each request is decided by both
    models; a share ``disagree`` is decided differently, ``adverse_share`` of those
    approve→decline. Returns fail / pass rates by the last look with Wilson bounds."""
    settings: dict[str, object] = {}
    if adverse_tolerance is not None:
        settings = {"adverse": PAIRED_CATS, "adverse_tolerance": adverse_tolerance}
    spec = MetricSpec(name="decisions", kind=MetricKind.PAIRED, tolerance=margin,
                      categories=PAIRED_CATS, extra=settings)  # fmt: skip
    base = AnalysisProfile(name="shadow", metrics=(spec,), alpha=ALPHA)
    fails, passes, fail_n = 0, 0, []
    # per look: agree-approve, adverse (approve→decline), reverse (decline→approve), agree-decline
    probs = np.array([
        0.9 * (1 - disagree), disagree * adverse_share,
        disagree * (1 - adverse_share), 0.1 * (1 - disagree),
    ])  # fmt: skip
    counts = rng.multinomial(per_look, probs, size=(reps, looks)).cumsum(axis=1)
    for r in range(reps):
        state: JudgeState | None = None
        for k in range(looks):
            a, b, c, d = (int(x) for x in counts[r, k])
            obs = PairedObservation(categories=PAIRED_CATS, pairs=((a, b), (c, d)))
            profile = replace(base, bake_elapsed=(k + 1) / looks) if bake_clock else base
            result, state = judge(profile, {"decisions": obs}, state)
            if result.verdict is Verdict.FAIL:
                fails += 1
                fail_n.append((k + 1) * per_look)
                break
        else:
            passes += result.verdict is Verdict.PASS
    return {
        "runs": reps,
        "fail": fails / reps,
        "fail_wilson_upper": wilson_upper(fails, reps),
        "fail_wilson_lower": wilson_lower(fails, reps),
        "pass": passes / reps,
        "median_n_to_fail": float(np.median(fail_n)) if fail_n else None,
    }


def paired_quality(rng: np.random.Generator, reps: int) -> dict[str, dict[str, float | int | None]]:
    """Issue 15's acceptance: the paired (shadow) judge under every-look peeking, 20 looks of
    1,000 paired requests (20 k): A/A at the null boundary (true disagreement = the 1 % margin)
    and the 1 → 2 % shift, without a horizon (e-process) and on a rollout's bake clock."""
    out: dict[str, dict[str, float | int | None]] = {}
    grid = [
        ("A/A: 1 % disagree, margin 1 %", 0.01, 0.5, None),
        ("1 → 2 % disagree, margin 1 %", 0.02, 0.5, None),
        ("1 → 1.3 % disagree, margin 1 %", 0.013, 0.5, None),
        ("A/A + adverse test: 1 %, symmetric", 0.01, 0.5, 0.005),
        ("1 → 2 %, 3/4 adverse, adverse tol 0.5 %", 0.02, 0.75, 0.005),
        ("healthy: 0.5 % disagree, margin 1 %", 0.005, 0.5, None),
    ]
    for clock in (False, True):
        for label, p, share, adverse in grid:
            name = f"{label} [{'bake clock' if clock else 'e-process'}]"
            out[name] = paired_runs(
                rng, reps, disagree=p, adverse_share=share, margin=0.01,
                adverse_tolerance=adverse, looks=20, per_look=1000, bake_clock=clock,
            )  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--aa-reps", type=int, default=4000, help="replicates for A/A scenarios")
    ap.add_argument("--check", type=int, default=10, help="replicates also run through judge()")
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument(
        "--spending",
        default="",
        help="alpha spending with a horizon (default: the judge's per kind)",
    )
    ap.add_argument(
        "--omnibus-spending",
        default=DEFAULT_OMNIBUS_SPENDING,
        help="alpha spending of the unordered omnibus test with a horizon",
    )
    ap.add_argument("--quick", action="store_true", help="200 replicates, 2 checked")
    ap.add_argument(
        "--pass-reps", type=int, default=400, help="runs per healthy-canary pass scenario"
    )
    ap.add_argument("--only", default="", help="run scenarios whose name contains this")
    ap.add_argument("--json", default="", help="write the results to this file")
    ap.add_argument(
        "--paired-only", action="store_true", help="only the paired (shadow) judge's table"
    )
    ap.add_argument("--paired-reps", type=int, default=2000, help="runs per paired scenario")
    args = ap.parse_args()
    if args.paired_only:
        print_paired(np.random.default_rng(args.seed), 100 if args.quick else args.paired_reps)
        return
    reps, check = (200, 2) if args.quick else (args.reps, args.check)
    aa_reps = 200 if args.quick else args.aa_reps
    rng = np.random.default_rng(args.seed)
    results, kinds = {}, {}
    t0 = time.time()
    for sc in scenarios():
        if args.only and args.only not in sc.name:
            continue
        n = aa_reps if "A/A" in sc.name else reps
        results[sc.name] = run_scenario(rng, sc, n, args.spending, check, args.omnibus_spending)
        kinds[sc.name] = sc.kind
        print(f"{sc.name}: done ({time.time() - t0:.0f} s)", file=sys.stderr)
    named = args.spending or "per-kind defaults"
    print(f"reps={reps} (A/A: {aa_reps}) seed={args.seed} alpha={ALPHA} spending={named}")
    print("cells: reject rate by N [median requests per arm at detection]; A/A: (Wilson 95% upper)")
    print(report(results, kinds))
    if not args.only:
        whole = profile_aa(rng, aa_reps, args.spending)
        print("\n**whole profile (errors + latency + decisions, alpha/3 each)**\n")
        print("| method | " + " | ".join(whole) + " |")
        print("|---|" + "---|" * len(whole))
        for m in next(iter(whole.values())):
            print(f"| {m} | " + " | ".join(fmt(whole[n][m], True) for n in whole) + " |")
    if not args.only:
        healthy = healthy_pass(rng, 50 if args.quick else args.pass_reps)
        print("\n**healthy canary with a horizon: passes by the horizon (real judge)**\n")
        print(
            "| metric | runs | passed by the horizon (Wilson lower) | failed | median n to pass |"
        )
        print("|---|---|---|---|---|")
        for label, row in healthy.items():
            median = row["median_n_to_pass"]
            print(
                f"| {label} | {row['runs']} | {100 * float(row['passed_by_horizon'] or 0):.1f}% "
                f"(≥{100 * float(row['wilson_lower'] or 0):.1f}%) | "
                f"{100 * float(row['failed'] or 0):.1f}% | "
                + (f"{median:,.0f} of {row['horizon']:,}" if median is not None else "–")
                + " |"
            )
    if not args.only:
        print_paired(rng, 100 if args.quick else args.paired_reps)
    compute = time_judge(rng, args.spending)
    print("\njudge() wall time per call and metric, ms (best of 7 x 40 looks):\n")
    cols = list(next(iter(compute.values())))
    print("| kind | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for kind, row in compute.items():
        print(f"| {kind} | " + " | ".join(f"{row[c]:.2f}" for c in cols) + " |")
    print(f"total {time.time() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "compute_ms": compute}, fh, indent=1)


if __name__ == "__main__":
    main()
