"""Load a ``promserver.Scenario`` into the fake Datadog API, as the Datadog Agent would send it.

The same seeded generator feeds ``SyntheticSource`` and Prometheus, so tick-aligned windows give
*identical* counts from all three. Names and tags are what the Agent's OpenMetrics check makes of
the scraped series (namespace ``knative`` for the queue-proxy, ``fraud`` for the model server):
``revision_app_request_latencies_bucket`` becomes ``knative.revision_app_request_latencies.bucket``
with an ``upper_bound`` tag (cumulative over the bound, ``inf`` last), counters become
``<name>.count`` submitted as monotonic counts (the increment per check run), and labels become
tags. Broken revisions are broken the Datadog way: another bucket layout, no ``upper_bound:inf``
bucket, points that stop early (stale). A pod restart is invisible in Datadog (the Agent's
monotonic counts skip the reset), so that revision is simply the baseline here.
"""

from __future__ import annotations

import math

import numpy as np
import promserver

from analyzer.metrics.synthetic.generator import (
    bucket_probabilities,
    events_per_tick,
    multinomial_per_tick,
    paired_probabilities,
    samples_per_step,
    stream,
    traffic,
)
from tests.fakes.datadog import FakeDatadog


def _bound(bound_ms: float) -> str:
    return "inf" if math.isinf(bound_ms) else f"{bound_ms:g}"


def load(fake: FakeDatadog, scenario: promserver.Scenario) -> int:
    """Add every revision's series to ``fake``; return the number of points added."""
    return sum(_load_revision(fake, scenario, revision) for revision in scenario.revisions)


def _load_revision(fake: FakeDatadog, scenario: promserver.Scenario, revision: str) -> int:
    added = 0
    behaviour = scenario.revisions[revision]
    special = scenario.specials.get(revision, promserver.Special())
    last = scenario.ticks - special.stop_before_end_ticks
    times = scenario.origin.timestamp() + scenario.tick_seconds * np.arange(1, last + 1)
    requests = traffic(
        scenario.seed, revision, behaviour,
        ticks=scenario.ticks, tick=scenario.tick_seconds, rate=scenario.request_rate,
    )  # fmt: skip
    seed = scenario.seed

    def add(metric: str, tags: dict[str, str], kind: str, values: np.ndarray) -> None:
        nonlocal added
        fake.add(metric, tags, kind, times, values[:last])  # type: ignore[arg-type]
        added += last

    knative = {"namespace_name": promserver.NAMESPACE, "revision_name": revision}
    probs = bucket_probabilities(behaviour, special.buckets_ms)
    per_bucket = multinomial_per_tick(seed, "latency", revision, requests, probs)
    cumulative_le = np.cumsum(per_bucket, axis=1)
    for i, bound in enumerate(special.buckets_ms):
        if math.isinf(bound) and special.drop_inf:
            continue
        tags = {**knative, "upper_bound": _bound(bound)}
        add("knative.revision_app_request_latencies.bucket", tags, "count", cumulative_le[:, i])
    errors = events_per_tick(seed, "errors", revision, requests, behaviour.error_rate)
    for cls, per_tick in (("2xx", requests - errors), ("5xx", errors)):
        tags = {**knative, "response_code_class": cls}
        add("knative.revision_app_request_count.count", tags, "count", per_tick)

    business = {
        "namespace": promserver.NAMESPACE,
        "model": promserver.MODEL,
        "revision": revision,
    }
    fp_rate = behaviour.event_rates.get("false_positives", behaviour.error_rate)
    fps = events_per_tick(seed, "false_positives", revision, requests, fp_rate)
    add("fraud.false_positives.count", business, "count", fps)
    add("fraud.legit_transactions_labelled.count", business, "count", requests)
    mix = list(behaviour.decision_mix)
    per_decision = multinomial_per_tick(seed, "decisions", revision, requests, mix)
    for i, category in enumerate(promserver.CATEGORIES):
        tags = {**business, "decision": category}
        add("fraud.model_decisions.count", tags, "count", per_decision[:, i])
    # the shadow path's paired decisions, the revision as challenger of the first revision
    incumbent = next(iter(scenario.revisions.values()))
    paired = paired_probabilities(incumbent.decision_mix, behaviour.shadow_disagreement)
    cells = multinomial_per_tick(seed, promserver.SHADOW_METRIC, revision, requests, paired)
    k = len(promserver.CATEGORIES)
    for i, inc in enumerate(promserver.CATEGORIES):
        for j, chal in enumerate(promserver.CATEGORIES):
            tags = {**business, "incumbent": inc, "challenger": chal}
            add("fraud.model_shadow_decisions.count", tags, "count", cells[:, i * k + j])
    cpu = samples_per_step(seed, "cpu", revision, behaviour, scenario.ticks)
    add("fraud.model_cpu_utilisation", business, "gauge", cpu)
    # A DogStatsD distribution of request latency (ms): a few requests per tick, each a
    # point of its own, for percentile queries (p99:...).
    rng = stream(seed, "distribution", revision)
    median = behaviour.latency_median_ms * (1 + behaviour.latency_shift)
    per_tick = 4
    values = rng.lognormal(math.log(median), behaviour.latency_sigma, size=last * per_tick)
    fake.add(
        "fraud.request_latency", business, "distribution",
        np.repeat(times, per_tick), values,
    )  # fmt: skip
    added += values.size
    return added
