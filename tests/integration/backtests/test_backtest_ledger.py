"""``backtest --from ledger``: driven rollouts recorded in the ledger, re-read from Prometheus.

Four rollouts (two harmless canaries, two regressions) are driven by the real engine on
PostgreSQL, their looks judged by ``ProfileAnalyzer`` against the real, backfilled Prometheus,
with a manual clock inside the recorded history. The backtest then finds them in the ledger:
replayed with the profile they ran with, every recorded look gets the same verdict and every
outcome agrees with what happened; the summary matches the known truth; a candidate profile is
compared side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import history
import httpx
import promserver
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import URL, Engine

from analyzer.analyses.catalog import ProfileCatalog
from analyzer.analyses.looks import ThreadLooks
from analyzer.analyses.service import AnalysisRequest, AnalysisService, Bake
from analyzer.backtests.ledger import canaries_from_ledger
from analyzer.cli import main
from analyzer.db import make_engine
from analyzer.domain.events import EventType, LedgerEvent
from analyzer.domain.model import ModelRef, Tier
from analyzer.domain.rollout import RolloutState, Step, StepPlan, Strategy
from analyzer.domain.verdict import Verdict
from analyzer.ledger.store import Ledger
from analyzer.metrics.prometheus import PrometheusSource
from analyzer.rollouts.control import Actor, StartRollout
from analyzer.rollouts.engine import RolloutEngine
from analyzer.rollouts.ports import OpenGates
from analyzer.rollouts.repository import plan_to_json
from analyzer.rollouts.service import RolloutService
from analyzer.targets.memory.target import InMemoryTarget
from analyzer.wiring import ProfileAnalyzer
from tests import pg

pytestmark = pytest.mark.prometheus
NAMESPACE = promserver.NAMESPACE
PROFILES = {
    # what the rollouts ran with: Knative latency and errors (the only series these models have)
    "knative-current": {"name": "knative-current", "alpha": 0.05,
                        "metrics": [{"use": "knative/latency"}, {"use": "knative/errors"}]},
    # a candidate that gives up on latency regressions below +40 %
    "knative-candidate": {"name": "knative-candidate", "alpha": 0.05,
                          "metrics": [{"use": "knative/latency", "tolerance": 0.4},
                                      {"use": "knative/errors"}]},
}  # fmt: skip


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Driven:
    pg_url: str
    profiles: Path
    rollouts: dict[str, str]  # model name -> rollout id
    start: datetime
    states: dict[str, RolloutState]
    prometheus_url: str


@pytest.fixture(scope="module")
def module_pg_url(pg_server: URL, pg_template: str) -> Iterator[str]:
    """One migrated database for the module: the rollouts are driven once, then only read."""
    with pg.scratch_database(pg_server, template=pg_template) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def pg_engine(module_pg_url: str) -> Iterator[Engine]:
    engine = make_engine(module_pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def driven(
    pg_engine: Engine, module_pg_url: str, history_prometheus: promserver.RunningPrometheus,
    recorded: promserver.Scenario, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Driven]:  # fmt: skip
    pg_url = module_pg_url
    profiles = tmp_path_factory.mktemp("profiles")
    for name, document in PROFILES.items():
        (profiles / f"{name}.yaml").write_text(yaml.safe_dump(document))
    start = recorded.origin + timedelta(seconds=history.ROLLOUT_START_S)
    clock = Clock(start)
    ledger = Ledger(pg_engine, clock=clock)
    target = InMemoryTarget()
    plan = StepPlan(
        steps=tuple(Step(weight=w, dwell=timedelta(seconds=history.DWELL_S))
                    for w in history.ROLLOUT_STEPS),
        analysis_interval=timedelta(seconds=history.INTERVAL_S),
        max_bake=timedelta(seconds=2 * history.DWELL_S + history.INTERVAL_S),
    )  # fmt: skip
    with httpx.Client() as http:
        source = PrometheusSource(base_url=history_prometheus.url, http=http, timeout=10.0)
        looks = ThreadLooks(source)
        analyzer = ProfileAnalyzer(ProfileCatalog(profiles), looks)
        service = RolloutService(pg_engine, ledger, target, clock=clock)
        engine = RolloutEngine(pg_engine, ledger, target, analyzer, OpenGates(), clock=clock,
                               replica_id="backtest-test")  # fmt: skip
        ids = {}
        for model, (canary, _, _) in history.ROLLOUTS.items():
            ref = ModelRef(namespace=NAMESPACE, name=model)
            target.add_model(ref, stable_revision=history.BASELINE, canary_revision=canary)
            rollout = service.start(
                StartRollout(model=ref, tier=Tier.STANDARD, baseline_revision=history.BASELINE,
                             canary_revision=canary, profile="knative-current", plan=plan),
                Actor(subject="alice", roles=frozenset({"operator"})),
            )  # fmt: skip
            ids[model] = rollout.id
        end = start + timedelta(seconds=len(history.ROLLOUT_STEPS) * history.DWELL_S)
        while clock.now <= end:
            engine.tick()
            clock.now += timedelta(seconds=history.INTERVAL_S)
        looks.close()
    states = {model: service.get(rid).state for model, rid in ids.items()}
    return Driven(pg_url=pg_url, profiles=profiles, rollouts=ids, start=start, states=states,
                 prometheus_url=history_prometheus.url)  # fmt: skip


def run_cli(driven: Driven, *args: str, truth: Path | None = None) -> dict[str, Any]:
    env = {k: None for k in os.environ if k.startswith("CANARY_ANALYZER_")}
    env |= {"CANARY_ANALYZER_DATABASE_URL": driven.pg_url, "CANARY_ANALYZER_LOG_LEVEL": "warning",
            "CANARY_ANALYZER_API__PROFILES_DIR": str(driven.profiles)}  # fmt: skip
    extra = ["--prometheus-url", driven.prometheus_url]
    extra += ["--truth", str(truth)] if truth is not None else []
    done = CliRunner().invoke(main, ["backtest", "--from", "ledger", *args, *extra,
                                     "--format", "json"], env=env)  # fmt: skip
    assert done.exit_code == 0, (done.stderr, done.exception)
    return dict(json.loads(done.stdout))


def test_the_rollouts_were_driven_as_their_truth_says(driven: Driven) -> None:
    """The premise: good canaries promoted, regressions aborted, by the engine on real data."""
    for model, (_, truth, _) in history.ROLLOUTS.items():
        expected = RolloutState.PROMOTED if truth == "good" else RolloutState.ABORTED
        assert driven.states[model] is expected, model


def test_the_ledger_gives_each_rollout_its_looks_steps_and_outcome(
    driven: Driven, pg_engine: Engine
) -> None:
    found = canaries_from_ledger(Ledger(pg_engine))
    canaries = {c.id: c for c in found if not c.id.startswith("session-")}
    assert set(canaries) == set(driven.rollouts.values())
    for model, rollout_id in driven.rollouts.items():
        canary = canaries[rollout_id]
        assert canary.canary == history.ROLLOUTS[model][0]
        assert canary.baseline == history.BASELINE
        first = canary.looks[0]
        assert first.start == driven.start
        assert first.end == driven.start + timedelta(seconds=history.INTERVAL_S)
        assert first.alpha_divisor == 2  # two judged steps: 10 % and 50 %
        assert first.canary_weight == 0.1
        assert first.bake_elapsed == pytest.approx(history.INTERVAL_S / history.DWELL_S)
        if history.ROLLOUTS[model][1] == "good":
            assert {look.segment for look in canary.looks} == {0, 1}
            assert canary.happened is not None
            assert canary.happened.outcome == "promoted"
        else:
            assert canary.happened is not None
            assert canary.happened.outcome == "aborted"
            assert canary.happened.decided_at == len(canary.looks) - 1


def test_replayed_with_its_own_profile_every_look_and_outcome_agrees(
    driven: Driven, pg_engine: Engine, tmp_path: Path
) -> None:
    truth = tmp_path / "truth.yaml"
    truth.write_text(yaml.safe_dump({canary: t for canary, t, _ in history.ROLLOUTS.values()}))
    report = run_cli(
        driven,
        "--profile",
        str(driven.profiles / "knative-current.yaml"),
        "--profile",
        str(driven.profiles / "knative-candidate.yaml"),
        "--until",
        (driven.start + timedelta(minutes=1)).isoformat(),
        truth=truth,
    )  # fmt: skip (--until: the rollouts, not the analysis sessions of the test below)
    recorded = {c.id: c for c in canaries_from_ledger(Ledger(pg_engine))}
    current = [r for r in report["canaries"] if r["profile"] == "knative-current"]
    assert len(current) == 4
    for row in current:
        canary = recorded[row["canary"]]
        judged = [(i, v) for i, v in enumerate(row["verdicts"]) if v is not None]
        # the very verdicts the service recorded, look for look
        assert [v for _, v in judged] == [canary.looks[i].recorded.value for i, _ in judged]  # type: ignore[union-attr]
        assert row["agrees_with_what_happened"] is True
    summary = {s["profile"]: s for s in report["summary"]}
    assert summary["knative-current"]["outcomes"]["caught"] == 2
    assert summary["knative-current"]["outcomes"]["passed"] == 2
    assert summary["knative-current"]["disagreements_with_what_happened"] == 0
    # the candidate would have let the +15 % latency regression through to 50 %
    latency_bad = driven.rollouts["scorer-b"]
    candidate = {r["canary"]: r for r in report["canaries"] if r["profile"] == "knative-candidate"}
    assert candidate[latency_bad]["outcome"] == "missed"
    assert candidate[latency_bad]["agrees_with_what_happened"] is False
    assert summary["knative-candidate"]["outcomes"]["missed"] == 1
    assert summary["knative-candidate"]["disagreements_with_what_happened"] == 1


def test_since_until_and_model_select_rollouts(driven: Driven) -> None:
    profile = "knative-current"  # by name, from the service's profile catalog, as rollouts do
    later = (driven.start + timedelta(minutes=1)).isoformat()
    before_sessions = (driven.start + timedelta(minutes=30)).isoformat()
    selected = run_cli(driven, "--profile", profile, "--since", later, "--until", before_sessions)
    assert selected["canaries"] == []
    report = run_cli(driven, "--profile", profile, "--model", f"{NAMESPACE}/scorer-c",
                     "--until", later)  # fmt: skip
    assert [r["canary"] for r in report["canaries"]] == [driven.rollouts["scorer-c"]]
    assert Verdict(report["canaries"][0]["verdict"]) is Verdict.PASS


# --- analysis sessions (the Argo web provider's looks) ----------------------------------------


@pytest.fixture(scope="module")
def sessions(
    pg_engine: Engine, driven: Driven, history_prometheus: promserver.RunningPrometheus,
    recorded: promserver.Scenario,
) -> dict[str, str]:  # fmt: skip
    """Two Argo-style analyses (one harmless canary, one +15 % latency regression) asked every
    5 minutes for 7 looks with a bake, through AnalysisService: canary revision -> truth."""
    loaded = ProfileCatalog(driven.profiles).resolve("knative-current")[1]
    clock = Clock(recorded.origin + timedelta(minutes=70))
    ledger = Ledger(pg_engine, clock=clock)
    names = history.canary_names()
    truth = {names[0]: "good", names[1]: "bad"}
    with httpx.Client() as http:
        looks = ThreadLooks(PrometheusSource(base_url=history_prometheus.url, http=http,
                                             timeout=10.0))  # fmt: skip
        service = AnalysisService(pg_engine, ledger, looks, clock=clock, cache_seconds=0)
        for _ in range(7):
            for canary in truth:
                service.analyze(
                    AnalysisRequest(
                        model=ModelRef(namespace=NAMESPACE, name=promserver.MODEL),
                        canary=canary, baseline=history.BASELINE,
                        profile_name="knative-current", profile=loaded,
                        bake=Bake(looks=7, interval_seconds=300),
                    ),
                    "argo",
                )  # fmt: skip
            clock.now += timedelta(minutes=5)
        looks.close()
    return truth


def test_analysis_sessions_replay_as_they_were_answered(
    driven: Driven, sessions: dict[str, str], pg_engine: Engine, tmp_path: Path
) -> None:
    found = [c for c in canaries_from_ledger(Ledger(pg_engine)) if c.id.startswith("session-")]
    assert {c.canary for c in found} == set(sessions)
    for canary in found:
        assert len(canary.looks) == 7 or canary.happened.decided_at is not None  # type: ignore[union-attr]
        assert {look.start for look in canary.looks} == {canary.looks[0].start}  # cumulative
    truth = tmp_path / "truth.yaml"
    truth.write_text(yaml.safe_dump(sessions))
    report = run_cli(driven, "--profile", str(driven.profiles / "knative-current.yaml"),
                     "--model", f"{NAMESPACE}/{promserver.MODEL}", truth=truth)  # fmt: skip
    rows = {r["canary_revision"]: r for r in report["canaries"]}
    assert set(rows) == set(sessions)
    for canary, expected in sessions.items():
        row = rows[canary]
        assert row["outcome"] == ("caught" if expected == "bad" else "passed"), row
        assert row["agrees_with_what_happened"] is True
        recorded = next(c for c in found if c.canary == canary)
        judged = [v for v in row["verdicts"] if v is not None]
        assert judged == [look.recorded.value for look in recorded.looks][: len(judged)]  # type: ignore[union-attr]


def test_a_blue_green_rollout_replays_with_its_time_matched_baseline_and_no_split(
    pg_engine: Engine, driven: Driven
) -> None:
    """Recorded as the engine records a blue/green rollout (``strategy``, its plan with the
    baseline offset): no split to check, the baseline read an offset earlier."""
    at = driven.start + timedelta(hours=3)  # after everything else in this module's ledger
    model = ModelRef(namespace=NAMESPACE, name="scorer-bg")
    plan = StepPlan(steps=(Step(weight=100, dwell=timedelta(minutes=20)),),
                    analysis_interval=timedelta(minutes=5), strategy=Strategy.BLUE_GREEN,
                    baseline_offset=timedelta(hours=1))  # fmt: skip
    window = {"start": at.isoformat(), "end": (at + timedelta(minutes=5)).isoformat()}
    ledger = Ledger(pg_engine, clock=Clock(at))
    events = [
        LedgerEvent(type=EventType.ROLLOUT_STARTED, actor="alice", model=model, rollout_id="bg-1",
                    revision="bg-00002",
                    data={"baseline_revision": "bg-00001", "canary_revision": "bg-00002",
                          "profile": "knative-current", "plan": [100], "strategy": "blue_green",
                          "step_plan": plan_to_json(plan)}),
        LedgerEvent(type=EventType.TRAFFIC_CHANGED, actor="engine", model=model,
                    rollout_id="bg-1", revision="bg-00002", data={"step": 0, "canary_weight": 100}),
        LedgerEvent(type=EventType.ANALYSIS_RECORDED, actor="engine", model=model,
                    rollout_id="bg-1", revision="bg-00002",
                    data={"step": 0, "weight": 100, "window": window,
                          "result": {"verdict": "inconclusive"}}),
    ]  # fmt: skip
    with pg_engine.begin() as conn:
        ledger.append_many(conn, events)
    (canary,) = canaries_from_ledger(Ledger(pg_engine), since=at - timedelta(seconds=1))
    assert canary.baseline_offset == timedelta(hours=1)
    assert canary.looks[0].canary_weight is None
    assert canary.looks[0].recorded is Verdict.INCONCLUSIVE
    assert canary.happened is not None
    assert canary.happened.outcome == "in progress"
    rollout_ids = {c.id for c in canaries_from_ledger(Ledger(pg_engine), until=at)}
    assert "bg-1" not in rollout_ids
    assert set(driven.rollouts.values()) <= rollout_ids


def test_as_run_replays_each_rollout_with_the_profile_it_recorded(
    driven: Driven, pg_engine: Engine
) -> None:
    until = (driven.start + timedelta(minutes=1)).isoformat()
    report = run_cli(driven, "--profile", "as-run", "--profile", "knative-candidate",
                     "--until", until)  # fmt: skip
    assert report["profiles"] == ["as-run", "knative-candidate"]
    recorded = {c.id: c for c in canaries_from_ledger(Ledger(pg_engine))}
    as_run = [r for r in report["canaries"] if r["profile"] == "as-run"]
    assert {r["canary"] for r in as_run} == set(driven.rollouts.values())
    for row in as_run:
        judged = [(i, v) for i, v in enumerate(row["verdicts"]) if v is not None]
        looks = recorded[row["canary"]].looks
        assert [v for _, v in judged] == [looks[i].recorded.value for i, _ in judged]  # type: ignore[union-attr]
        assert row["agrees_with_what_happened"] is True
    env = {k: None for k in os.environ if k.startswith("CANARY_ANALYZER_")}
    refused = CliRunner().invoke(main, ["backtest", "--from", "prometheus", "--profile", "as-run",
                                        "--canaries", "x.yaml"], env=env)  # fmt: skip
    assert refused.exit_code == 2
    assert "--from ledger" in refused.stderr
