"""Canaries found in Prometheus history from revision labels alone (no manifest).

A revision that starts taking traffic while another one serves was a canary of it. From the
traffic series of each revision of a model (the profile's own traffic query with the revision
matcher taken out, summed by the revision label, one point per step), :func:`infer_canaries`
(pure) finds every such pair: the canary's analysis starts with its first step of traffic, and
ends when one of the two stops taking traffic — the baseline (the canary was **promoted**) or the
canary (it was **rolled back**: ``aborted``) — or at the end of the period (``in progress``). The
looks are taken every ``interval`` from the start, at most ``max_looks``.

Only a profile whose traffic query names the revision with an exact matcher
(``revision_name="{revision}"``) can be discovered this way; a regular-expression matcher (the
KServe preset's pod prefix) cannot give revision names back, and the command asks for a manifest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from analyzer.backtests.replay import Happened, PlannedLook, RecordedCanary
from analyzer.domain.errors import InvalidInputError
from analyzer.domain.model import ModelRef
from analyzer.domain.verdict import MetricKind
from analyzer.metrics.base import MetricQuery, validate_revision
from analyzer.metrics.prometheus.client import PrometheusClient
from analyzer.metrics.templates import render
from analyzer.profiles import LoadedProfile

_MATCHER = re.compile(r'\s*,?\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"\{revision\}"\s*,?')

# revision -> ((unix seconds, requests in the step ending then), ...) in time order
Activity = Mapping[str, Sequence[tuple[float, float]]]


@dataclass(frozen=True, kw_only=True, slots=True)
class TrafficQuery:
    """The discovery query: a profile's traffic counter, by revision label."""

    selector: str  # the counter selector without the revision matcher, placeholders filled
    label: str  # the revision label

    def promql(self, step_seconds: int) -> str:
        return f"sum by ({self.label}) (increase({self.selector}[{step_seconds}s]))"


def _template(loaded: LoadedProfile) -> tuple[str, MetricQuery]:
    for kind, key in ((MetricKind.PROPORTION, "total"), (MetricKind.HISTOGRAM, "selector"),
                      (MetricKind.CATEGORICAL, "selector")):  # fmt: skip
        for spec in loaded.profile.metrics:
            query = loaded.queries[spec.name]
            if spec.kind is kind and getattr(query, key):
                return str(getattr(query, key)), query
    raise InvalidInputError(
        "the profile has no traffic counter (a proportion's total, a histogram or a categorical"
        " selector) to find revisions by; give --canaries",
        field="--profile",
    )


def traffic_query(loaded: LoadedProfile, model: ModelRef) -> TrafficQuery:
    """The profile's traffic counter with its exact revision matcher taken out."""
    template, _ = _template(loaded)
    match = _MATCHER.search(template)
    if match is None:
        raise InvalidInputError(
            "the profile's traffic query does not name the revision with an exact matcher "
            '(label="{revision}"), so revisions cannot be read back from Prometheus; give '
            "--canaries",
            field="--profile",
        )
    both_sides = match.group(0).strip().startswith(",") and match.group(0).strip().endswith(",")
    selector = template[: match.start()] + ("," if both_sides else "") + template[match.end() :]
    selector = selector.replace("{,", "{").replace(",}", "}")
    values = {"namespace": model.namespace, "model": model.name, "window": "0s"}
    return TrafficQuery(selector=render(selector, values, field="query"), label=match.group(1))


def read_activity(
    client: PrometheusClient,
    query: TrafficQuery,
    *,
    since: datetime,
    until: datetime,
    step: timedelta,
) -> dict[str, list[tuple[float, float]]]:
    """Requests per step of every revision in ``(since, until]`` (a source failure raises)."""
    seconds = max(1, int(step.total_seconds()))
    series = client.range(query.promql(seconds), since + step, until, seconds)
    activity: dict[str, list[tuple[float, float]]] = {}
    for one in series:
        revision = one.labels.get(query.label)
        if revision:
            activity.setdefault(revision, []).extend(one.points)
    return activity


def _active(points: Sequence[tuple[float, float]]) -> dict[float, float]:
    return {t: v for t, v in points if v >= 1.0}


def _ending(
    canary: dict[float, float], baseline: dict[float, float], times: Sequence[float], start: float
) -> tuple[float, str]:
    """The last time both served, and what happened next."""
    last = start
    for t in (t for t in times if t >= start):
        if t in canary and t in baseline:
            last = t
        elif t in canary:
            return last, "promoted"
        elif t in baseline:
            return last, "aborted"
        else:
            return last, "ended"
    return last, "in progress"


def infer_canaries(
    activity: Activity,
    *,
    model: ModelRef,
    step: timedelta,
    interval: timedelta,
    max_looks: int,
) -> list[RecordedCanary]:
    """Every (baseline, canary) pair the traffic shows, oldest first (see the module doc)."""
    active = {r: _active(points) for r, points in activity.items() if _active(points)}
    valid = {}
    for revision, steps in active.items():
        try:
            valid[validate_revision(revision, field="revision")] = steps
        except InvalidInputError:
            continue  # a label value that is not a revision name cannot be a canary
    times = sorted({t for steps in valid.values() for t in steps})
    first = {r: min(steps) for r, steps in valid.items()}
    found = []
    for canary in sorted(valid, key=lambda r: (first[r], r)):
        began = first[canary]
        serving = [r for r in valid if r != canary and first[r] < began and began in valid[r]]
        if not serving:
            continue
        baseline = max(serving, key=lambda r: (valid[r][began], r))
        last, outcome = _ending(valid[canary], valid[baseline], times, began)
        start = datetime.fromtimestamp(began, UTC) - step
        end = datetime.fromtimestamp(last, UTC)
        count = max(1, min(max_looks, int((end - start) / interval)))
        looks = tuple(PlannedLook(start=start, end=start + interval * (k + 1))
                      for k in range(count))  # fmt: skip
        found.append(
            RecordedCanary(
                id=f"{model}:{canary}",
                model=model,
                baseline=baseline,
                canary=canary,
                looks=looks,
                happened=Happened(outcome=outcome),
            )
        )
    return found
