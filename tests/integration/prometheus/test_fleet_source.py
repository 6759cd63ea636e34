"""The fleet source against a real Prometheus backfilled with 400 per-merchant models: one
query per metric for the whole wave and its controls, exact counts, validated names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import fleetdata
import httpx
import promserver
import pytest

from analyzer.domain.errors import InvalidInputError
from analyzer.domain.fleet import FleetRateQuery
from analyzer.metrics.prometheus import PrometheusClient, RetryPolicy
from analyzer.metrics.prometheus.fleet import PrometheusFleetSource, fleet_query

MODELS = [f"merchant-{i:04d}" for i in range(400)]
TICK = 15.0
TICKS = 160  # 40 minutes
SWITCH = 80  # the wave's upgrade, 20 minutes in
ERRORS = FleetRateQuery(
    name="errors",
    events=f'{fleetdata.COUNTER}{{namespace="{{namespace}}",code!="OK"}}',
    total=f'{fleetdata.COUNTER}{{namespace="{{namespace}}"}}',
    model_label="vModelId",
)


@pytest.fixture(scope="module")
def fleet(
    prometheus_binaries: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[fleetdata.FleetScenario, fleetdata.FleetTruth, str]]:
    end = promserver.aligned_end(TICK)
    scenario = fleetdata.FleetScenario(
        seed=17,
        origin=end - timedelta(seconds=TICK * TICKS),
        ticks=TICKS,
        tick_seconds=TICK,
        models=MODELS,
        switches=dict.fromkeys(MODELS[:40], SWITCH),
        new_rates={"merchant-0003": 0.2},
    )
    truth = fleetdata.generate(scenario)
    workdir = tmp_path_factory.mktemp("fleet-prometheus")
    fleetdata.write_openmetrics(workdir / "fleet.om", scenario, truth)
    prometheus_bin, promtool = prometheus_binaries
    promserver.backfill(promtool, workdir / "fleet.om", workdir / "data")
    running = promserver.start(prometheus_bin, workdir / "data", workdir)
    try:
        yield scenario, truth, running.url
    finally:
        running.stop()


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def _source(url: str, transport: httpx.BaseTransport | None = None) -> PrometheusFleetSource:
    http = httpx.Client(transport=transport) if transport else httpx.Client()
    client = PrometheusClient(
        base_url=url, http=http, timeout=10.0, retry=RetryPolicy(attempts=2, initial_backoff=0.01)
    )
    return PrometheusFleetSource(client)


def test_one_query_per_metric_reads_every_model_exactly(
    fleet: tuple[fleetdata.FleetScenario, fleetdata.FleetTruth, str],
) -> None:
    scenario, truth, url = fleet
    transport = CountingTransport()
    source = _source(url, transport)
    look = 140  # 15 minutes after the switch
    got = source.read(
        [ERRORS],
        namespace=fleetdata.NAMESPACE,
        models=MODELS,
        before_end=scenario.at(SWITCH),
        after_start=scenario.at(SWITCH),
        at=scenario.at(look),
    )
    assert transport.requests == 1  # the whole fleet in one query
    counts = got["errors"]
    assert len(counts) == len(MODELS)
    width = look - SWITCH
    for i, model in enumerate(MODELS):
        after = truth.window(i, SWITCH, look)
        before = truth.window(i, SWITCH - width, SWITCH)
        windows = counts[model]
        assert (windows.after_events, windows.after_total) == after, model
        assert (windows.before_events, windows.before_total) == before, model
    # the harmful model's new version shows in its own counts
    bad = counts["merchant-0003"]
    assert bad.after_events / bad.after_total > 0.1 > bad.before_events / bad.before_total


def test_a_share_of_good_requests_reads_as_the_complement(
    fleet: tuple[fleetdata.FleetScenario, fleetdata.FleetTruth, str],
) -> None:
    # the way a latency is judged (good = the histogram's bucket at the bound): here the "OK"
    # requests are the good ones, so the events must be exactly the errors
    scenario, _, url = fleet
    within = FleetRateQuery(
        name="slow",
        good=f'{fleetdata.COUNTER}{{namespace="{{namespace}}",code="OK"}}',
        total=f'{fleetdata.COUNTER}{{namespace="{{namespace}}"}}',
        model_label="vModelId",
    )
    when = {
        "namespace": fleetdata.NAMESPACE,
        "models": MODELS[:60],
        "before_end": scenario.at(SWITCH),
        "after_start": scenario.at(SWITCH),
        "at": scenario.at(140),
    }
    got = _source(url).read([ERRORS, within], **when)  # type: ignore[arg-type]
    assert got["slow"] == got["errors"]
    assert sum(w.after_events for w in got["slow"].values()) > 0
    text = fleet_query(within, namespace="m", models=["a"], window_seconds=60, offset_seconds=60)
    assert 'code="OK",vModelId=~"a"' in text
    assert '"after-good"' in text
    assert '"after-events"' not in text


def test_only_the_models_asked_for_come_back(
    fleet: tuple[fleetdata.FleetScenario, fleetdata.FleetTruth, str],
) -> None:
    scenario, _, url = fleet
    wave = ["merchant-0001", "merchant-0002", "not-deployed.anywhere"]
    got = _source(url).read(
        [ERRORS],
        namespace=fleetdata.NAMESPACE,
        models=wave,
        before_end=scenario.at(SWITCH),
        after_start=scenario.at(SWITCH + 4),
        at=scenario.at(SWITCH + 44),
    )
    assert set(got["errors"]) == {"merchant-0001", "merchant-0002"}  # no series: no entry


def test_model_names_are_validated_before_any_request() -> None:
    transport = CountingTransport()
    source = _source("http://127.0.0.1:9", transport)
    scenario_time = promserver.aligned_end(TICK)
    for bad in ('evil"}or vector(1)', "Upper", "a|b"):
        with pytest.raises(InvalidInputError):
            source.read(
                [ERRORS],
                namespace=fleetdata.NAMESPACE,
                models=[bad],
                before_end=scenario_time - timedelta(minutes=20),
                after_start=scenario_time - timedelta(minutes=10),
                at=scenario_time,
            )
    assert transport.requests == 0


def test_the_query_escapes_dots_and_refuses_odd_selectors() -> None:
    text = fleet_query(
        ERRORS,
        namespace="merchants",
        models=["shop.a", "shop-b"],
        window_seconds=600,
        offset_seconds=900,
    )
    assert 'vModelId=~"shop\\\\.a|shop-b"' in text
    assert text.count("sum by (vModelId)") == 4
    assert "offset 900s" in text
    odd = FleetRateQuery(name="x", events="rate(x[5m])", total="y", model_label="vModelId")
    with pytest.raises(InvalidInputError) as err:
        fleet_query(odd, namespace="m", models=["a"], window_seconds=60, offset_seconds=60)
    assert err.value.field == "events"
    with pytest.raises(InvalidInputError):
        FleetRateQuery(name="x", events="x", total="y", model_label="bad-label")
